//! Where routing snapshots come from.

pub mod file;
