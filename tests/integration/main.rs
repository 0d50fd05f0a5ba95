//! Integration tests: the real `cti-kaltura` binary, started per test on free loopback ports
//! (IPv4 and IPv6) with its own temp directory, config and routing file, and spoken to over
//! real HTTP/1.1 connections.

mod admin_api;
mod cli;
mod connections;
mod data;
mod fake_edge;
mod framing;
mod harness;
mod health;
mod http;
mod limits;
mod management;
mod operations;
mod proxies;
mod proxy_mode;
mod reload;
mod routes;
mod self_upgrade;
mod snapshot_cli;
