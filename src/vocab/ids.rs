//! Identifiers of routing entities, as the admin data numbers them.

/// A region's, subnet's, group's, server's or content's id in the admin data.
pub type Id = i64;
