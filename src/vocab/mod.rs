//! The shared vocabulary, a leaf every other module may use and that uses none of them: entity
//! ids, route kinds, protocols and encryptions, CIDR parsing and canonical addresses, path
//! rules, and error chains.

pub mod errors;
pub mod ids;
pub mod kinds;
pub mod net;
pub mod path;

pub use errors::error_chain;
pub use ids::Id;
pub use kinds::{Encryption, Protocol, RouteKind};
pub use net::{canonical_ip, parse_cidr};

/// The most edges a consistent selection spreads one content over (`spread`).
pub const MAX_SPREAD: usize = 8;
