//! The stream prober (see `stream_health`).
