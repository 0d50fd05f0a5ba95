//! The pure routing core: from request facts and a snapshot to a decision. No I/O, no async,
//! no locks; the Pingora adapter only translates its answer into HTTP.

pub mod client_ip;
pub mod decide;
pub mod explain;
pub mod location;
pub mod request_path;

pub use decide::{
    decide, decide_with_streams, BadRequest, Decision, EdgeTarget, NotFound, Outcome, RequestFacts,
    RoutingPolicy,
};
pub use request_path::RouteKind;
