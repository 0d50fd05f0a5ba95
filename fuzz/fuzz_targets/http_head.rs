//! The router's own HTTP/1 head parser (`server::http1::parse_head`) and answer writers.
//!
//! Invariants: nothing panics; a head answered on the fast loop has its ranges inside the head,
//! an origin-form target of visible ASCII, the sizes the limits are checked on, and is found
//! again, the same, in the head alone, and not in any shorter prefix of it; the answers built
//! for it are well-formed HTTP/1.1 heads.
#![no_main]

use cti_kaltura::routing::Outcome;
use cti_kaltura::server::answer::Answer;
use cti_kaltura::server::http1::{parse_head, write_answer, HeadParse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_head(data);
    if let HeadParse::Delegate { head_len, .. } = parsed {
        assert!(head_len > 0 && head_len <= data.len());
    }
    let HeadParse::Fast(head) = parsed else {
        return;
    };
    assert!(head.head_len <= data.len());
    assert!(head.head_len.checked_add(head.body_len).is_some());
    let target = &data[head.target.clone()];
    assert!(head.target.end <= head.head_len);
    assert_eq!(target.first(), Some(&b'/'));
    assert!(target.iter().all(|b| (0x21..=0x7e).contains(b) && *b != b'#'));
    // The limit is on the whole target; an absolute-form target is routed by its path.
    assert!(head.size.uri_bytes >= target.len());
    if let Some(value) = head.x_real_ip.clone() {
        assert!(value.end <= head.head_len);
    }
    assert_eq!(parse_head(&data[..head.head_len]), HeadParse::Fast(head.clone()));
    assert!(!matches!(
        parse_head(&data[..head.head_len - 1]),
        HeadParse::Fast(_)
    ));

    // Answers carry the target as a Location (it is what a redirect ends with).
    let location = format!("http://edge.test{}", std::str::from_utf8(target).unwrap());
    for keep_alive in [true, false] {
        let mut out = Vec::new();
        write_answer(&mut out, &Answer::Redirect(location.clone()), false, keep_alive);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let status = response.parse(&out).expect("a well-formed answer");
        assert_eq!(status, httparse::Status::Complete(out.len()));
        assert_eq!(response.code, Some(302));
        let mut out = Vec::new();
        let answer = Answer::of(Outcome::MethodNotAllowed);
        write_answer(&mut out, &answer, false, keep_alive);
        assert!(out.ends_with(answer.body().as_bytes()));
    }
});
