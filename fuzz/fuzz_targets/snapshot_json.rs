//! The snapshot loader on JSON documents (input that starts with `{`; other input gets a
//! `{` in front so it stays on the JSON path). Whatever it accepts must route without panics.
#![no_main]

use cti_kaltura::snapshot::load_snapshot;
use cti_kaltura_fuzz::exercise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let starts_with_brace = data
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    let owned;
    let input = if starts_with_brace {
        data
    } else {
        owned = [b"{".as_slice(), data].concat();
        &owned
    };
    if let Ok(snapshot) = load_snapshot(input, "fuzz") {
        cti_kaltura_fuzz::check_counts(&snapshot, input);
        exercise(&snapshot, data.len() as u64);
    }
});
