//! Streaming sessions through the router: where the references of a proxied manifest point
//! (back to the router as sub-requests, or absolute on the edge). Pure; the rewriting itself is
//! `crate::manifest`.

pub mod rebase;
