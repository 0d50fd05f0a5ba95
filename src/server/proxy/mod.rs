//! Proxy mode: the Pingora `ProxyHttp` adapter (upstream peers, retries, passive health) and
//! the resolver for edges without an address, and the manifests the router fetches and
//! rewrites itself.

pub mod edge_failover;
pub mod edge_resolver;
mod hop_by_hop;
mod manifest_fetch;
pub mod router_proxy;
pub mod stream_watch;
