//! Integration tests: the real `cti-kaltura` binary, started per test on free loopback ports
//! (IPv4 and IPv6) with its own temp directory, config and routing file, and spoken to over
//! real HTTP/1.1 connections.

mod access_log;
mod admin_api;
mod admin_service;
mod cli;
mod config_reload;
mod connections;
mod data;
mod debug_route;
mod fake_edge;
mod framing;
mod harness;
mod health;
mod http;
mod limits;
mod live_dash;
mod live_edge;
mod management;
mod media_edge;
mod postgres;
mod prometheus;
mod proxies;
mod proxy_framing;
mod proxy_mode;
mod raw_edge;
mod real_player;
mod reload;
mod request_metrics;
mod routes;
mod snapshot_cli;
mod stream_health;
mod streaming_proxy;
mod tls;
mod tls_client;
mod upgrade;
