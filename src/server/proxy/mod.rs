//! Proxy mode: the Pingora `ProxyHttp` adapter (upstream peers, retries, passive health) and
//! the resolver for edges without an address.

pub mod edge_resolver;
pub mod router_proxy;
pub mod stream_watch;
