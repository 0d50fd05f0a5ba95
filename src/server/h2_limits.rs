//! The HTTP/2 server's settings for Pingora's h2 server (the `h2` crate), from
//! `router.tls.h2`: the limits against abuse are on by default.
//!
//! - concurrent streams: SETTINGS_MAX_CONCURRENT_STREAMS; a stream over it is refused
//!   (RST_STREAM REFUSED_STREAM) without reaching the router.
//! - header list size: SETTINGS_MAX_HEADER_LIST_SIZE; a larger request is refused (431 or
//!   a stream reset) while decoding.
//! - rapid reset (CVE-2023-44487): streams the client resets before the server took them
//!   are counted; over `max_pending_reset_streams` the connection gets GOAWAY
//!   ENHANCE_YOUR_CALM. Streams the server must reset for the client's protocol errors
//!   (CVE-2025-8671, "MadeYouReset") are bounded by `max_local_error_resets`.
//! - SETTINGS and PING floods: the h2 crate keeps one pending SETTINGS acknowledgement and
//!   one pending PONG, so a flood grows no queue; it answers as fast as the client reads and
//!   the connection's send buffer (`max_send_buffer_size`) bounds what is queued.

use crate::config::H2Config;
use pingora::apps::HttpServerOptions;
use pingora::protocols::http::v2::server::H2Options;
use std::time::Duration;

/// Bytes queued for sending per stream before the stream waits for the client to read.
const MAX_SEND_BUFFER_BYTES: usize = 256 * 1024;

/// The h2 server builder of every HTTP/2 connection.
pub fn h2_options(config: &H2Config) -> H2Options {
    let mut options = H2Options::default();
    options
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(config.max_header_list_bytes)
        .max_pending_accept_reset_streams(config.max_pending_reset_streams)
        .max_local_error_reset_streams(Some(config.max_local_error_resets))
        .max_send_buffer_size(MAX_SEND_BUFFER_BYTES);
    options
}

/// Pingora's server options: an HTTP/2 connection with no open stream closes after the
/// keep-alive timeout, like an idle HTTP/1.1 one.
pub fn server_options(keepalive_timeout: Duration) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(keepalive_timeout);
    options
}
