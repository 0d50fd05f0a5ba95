//! The public listeners: the router's own accept loops, the HTTP/1 loop that reads every
//! request head (framing, limits, keep-alive, lingering close) and answers on the spot, and the
//! hand-over of the rest to the Pingora proxy framework.

pub mod client_limit;
mod coalesced_writes;
pub mod fast_path;
pub mod http1;
mod idle_timer;
pub mod lazy_tcp;
pub mod listeners;
