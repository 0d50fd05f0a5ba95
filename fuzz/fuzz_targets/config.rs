//! The config loader on arbitrary YAML text.
//!
//! Invariants: nothing panics; an error list is non-empty and every error's path starts with
//! `router` or is `(file)`.
#![no_main]

use cti_kaltura::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !cti_kaltura_fuzz::token_files_are_harmless(text) {
        return;
    }
    match Config::from_yaml(text) {
        Ok(_) => {}
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a problem");
            for e in &errors.0 {
                assert!(
                    e.path.starts_with("router") || e.path == "(file)",
                    "error path {:?}: {}",
                    e.path,
                    e.message
                );
            }
        }
    }
});
