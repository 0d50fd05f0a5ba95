//! The snapshot loader on YAML documents (input that would look like JSON gets a `--- ` in
//! front so it goes through the YAML parser as a flow mapping). Whatever it accepts must
//! route without panics.
#![no_main]

use cti_kaltura::snapshot::load_snapshot;
use cti_kaltura_fuzz::exercise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let looks_like_json = data
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    let owned;
    let input = if looks_like_json {
        owned = [b"--- ".as_slice(), data].concat();
        &owned
    } else {
        data
    };
    if let Ok(snapshot) = load_snapshot(input, "fuzz") {
        cti_kaltura_fuzz::check_counts(&snapshot, input);
        exercise(&snapshot, data.len() as u64);
    }
});
