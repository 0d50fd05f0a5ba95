//! The request-path grammar and the whole routing decision on hostile request targets.
//!
//! Input: a raw request target `path[?query]`. Invariants: nothing panics; a path outside the
//! grammar is a bad request; every redirect's Location is `http(s)://host[:port]/…` with an
//! edge host of the snapshot and only visible ASCII.
#![no_main]

use cti_kaltura::routing::request_path::{is_safe_path, is_safe_query, parse_route, Route};
use cti_kaltura::routing::RequestFacts;
use cti_kaltura_fuzz::{client, decide_checked, fixed_snapshot, policies};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(valid) = std::str::from_utf8(data) {
        if let Some(route) = parse_route(valid) {
            // What the grammar accepts is ASCII; VOD and static paths are safe as they are.
            assert!(valid.is_ascii(), "{valid:?}");
            if matches!(route, Route::Vod | Route::Static) {
                assert!(is_safe_path(valid), "{valid:?}");
            }
        }
        let _ = is_safe_query(valid);
    }
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (&*text, None),
    };
    let snapshot = fixed_snapshot();
    let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    for (i, method) in [http::Method::GET, http::Method::HEAD].iter().enumerate() {
        for (j, policy) in policies().iter().enumerate() {
            let k = seed as usize ^ (i * 2 + j);
            let x_real_ip: Option<&[u8]> = match k % 3 {
                0 => None,
                1 => Some(b"10.1.2.3"),
                _ => Some(b"2001:db8::7"),
            };
            let req = RequestFacts {
                method,
                path,
                query,
                peer: client(k / 3),
                x_real_ip,
                random: seed.rotate_left((i * 2 + j) as u32 * 16),
                secure: false,
            };
            decide_checked(snapshot, policy, &req);
        }
    }
});
