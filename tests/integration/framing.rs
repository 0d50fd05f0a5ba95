//! Request framing on the public listener over raw sockets (RFC 9112 §2.2, §3.2, §5, §6): which
//! heads are refused (400, or 501 for an unknown transfer coding) with the connection closed,
//! which are accepted with the connection kept, and that a request hidden inside a body (or
//! behind a refused head) is never answered. Then the lingering close (a client that sends a
//! whole 1 MiB body before reading gets the whole answer and a FIN, never a reset), and proxy
//! mode with an edge whose name does not resolve (502, the router keeps serving).

use crate::data;
use crate::fake_edge::{self, edge, FakeEdge, RegionSpec};
use crate::harness::{try_poll_for, Router, Setup};
use crate::http::{find, shown, take_response, Conn, End, Response};
use crate::prometheus::{metric_sum, scrape, REQUESTS};
use crate::routes::{assert_error, assert_redirect, INVALID};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Per socket read and write: a stuck router fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest the router may take to close a connection it has finished with.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// The first request of every case: a known channel.
const LIVE: &str = "/btv/live/hls/epg_1.m3u8";
const LIVE_LOCATION: &str = "http://edge-a.test/live/one.m3u8";
/// A request pipelined after an accepted one: must be answered, in order.
const PIPELINED: &str = "/vod/pipelined.mp4";
const PIPELINED_LOCATION: &str = "http://edge-a.test/vod/pipelined.mp4";
/// Sent on a connection that must still be open after the case.
const FOLLOW_UP: &str = "/vod/follow-up.mp4";
const FOLLOW_UP_LOCATION: &str = "http://edge-a.test/vod/follow-up.mp4";
/// A request hidden in a body or behind a refused head. Routable (a VOD redirect whose
/// Location repeats the path), so an answer to it names [`MARK`].
const HIDDEN: &[u8] = b"GET /vod/hidden-smuggled.mp4 HTTP/1.1\r\nHost: router.test\r\n\r\n";
const MARK: &[u8] = b"hidden-smuggled";

const NOT_IMPLEMENTED: &str = "Transfer coding not implemented";
const METHOD_NOT_ALLOWED: &str = "Method not allowed";

/// A raw client connection that keeps every byte it received (to look for [`MARK`]).
fn open(addr: SocketAddr) -> Conn {
    Conn::open_with_timeout(addr, IO_TIMEOUT).keep_received()
}

/// What the first answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// A 302 to this Location.
    Redirect(&'static str),
    /// `400 Request invalid` with `Connection: close` (a refusal, counted).
    Refused,
    /// `501 Transfer coding not implemented` with `Connection: close` (a refusal, counted).
    NotImplemented,
    /// `405 Method not allowed`.
    MethodNotAllowed,
    /// Whatever the router does (an answer to the routable head, a refusal, or none).
    Any,
}

/// After the first answer and the pipelined ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The router closes with a FIN (never a reset), sending nothing more.
    Closes,
    /// The connection stays open: a follow-up GET is answered.
    StaysOpen,
}

struct Case {
    name: &'static str,
    /// Sent in one write.
    bytes: Vec<u8>,
    first: First,
    /// Locations of the answers that must follow the first (pipelined requests), in order.
    then: Vec<&'static str>,
    after: After,
}

impl Case {
    fn refusal(&self) -> bool {
        matches!(self.first, First::Refused | First::NotImplemented)
    }
}

/// `GET LIVE HTTP/1.1`, `Host: router.test`, then `lines` (each ending in CRLF) and the empty
/// line.
fn get11(lines: &str) -> Vec<u8> {
    format!("GET {LIVE} HTTP/1.1\r\nHost: router.test\r\n{lines}\r\n").into_bytes()
}

fn get10(lines: &str) -> Vec<u8> {
    format!("GET {LIVE} HTTP/1.0\r\nHost: router.test\r\n{lines}\r\n").into_bytes()
}

/// A plain pipelined GET for [`PIPELINED`].
fn pipelined() -> Vec<u8> {
    format!("GET {PIPELINED} HTTP/1.1\r\nHost: router.test\r\n\r\n").into_bytes()
}

/// A chunked body whose one chunk is [`HIDDEN`], `ext` after the chunk size, `trailer` lines
/// (each ending in CRLF) after the last chunk.
fn chunked_hidden(ext: &str, trailer: &str) -> Vec<u8> {
    let mut body = format!("{:x}{ext}\r\n", HIDDEN.len()).into_bytes();
    body.extend_from_slice(HIDDEN);
    body.extend_from_slice(format!("\r\n0\r\n{trailer}\r\n").as_bytes());
    body
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A head refused before its body: `head` then [`HIDDEN`] right after it.
fn refused(name: &'static str, head: Vec<u8>) -> Case {
    Case {
        name,
        bytes: cat(&[&head, HIDDEN]),
        first: First::Refused,
        then: Vec::new(),
        after: After::Closes,
    }
}

/// A head with a refused Transfer-Encoding: then an empty chunked body and [`HIDDEN`] (which
/// a router taking the body as chunked would answer next).
fn refused_te(name: &'static str, te_lines: &str, first: First) -> Case {
    Case {
        name,
        bytes: cat(&[&get11(te_lines), b"0\r\n\r\n", HIDDEN]),
        first,
        then: Vec::new(),
        after: After::Closes,
    }
}

/// An accepted GET of [`LIVE`] whose `body` holds [`HIDDEN`], then a pipelined request.
fn accepted(name: &'static str, head: Vec<u8>, body: &[u8]) -> Case {
    Case {
        name,
        bytes: cat(&[&head, body, &pipelined()]),
        first: First::Redirect(LIVE_LOCATION),
        then: vec![PIPELINED_LOCATION],
        after: After::StaysOpen,
    }
}

/// A chunked GET whose body breaks at `bad` (after the head), with [`HIDDEN`] after it.
fn bad_chunk(name: &'static str, bad: &[u8]) -> Case {
    Case {
        name,
        bytes: cat(&[&get11("Transfer-Encoding: chunked\r\n"), bad, HIDDEN]),
        first: First::Any,
        then: Vec::new(),
        after: After::Closes,
    }
}

/// A chunked GET whose `body` (holding [`HIDDEN`]) is badly framed, then a pipelined request:
/// a lenient reader would answer the GET and the pipelined request (or the hidden one).
fn bad_chunk_then(name: &'static str, body: &[u8]) -> Case {
    Case {
        name,
        bytes: cat(&[&get11("Transfer-Encoding: chunked\r\n"), body, &pipelined()]),
        first: First::Any,
        then: Vec::new(),
        after: After::Closes,
    }
}

fn cases() -> Vec<Case> {
    let n = HIDDEN.len();
    let cl = |values: &[&str]| -> String {
        values
            .iter()
            .map(|v| format!("Content-Length: {v}\r\n"))
            .collect()
    };
    let size_line = format!("{n:x}\r\n");
    vec![
        // Content-Length.
        refused("cl_zero_then_cl_five_is_refused", get11(&cl(&["0", "5"]))),
        refused("cl_five_then_cl_zero_is_refused", get11(&cl(&["5", "0"]))),
        refused("cl_plus_sign_is_refused", get11(&cl(&["+5"]))),
        refused("cl_negative_is_refused", get11(&cl(&["-1"]))),
        refused(
            "cl_list_of_different_values_is_refused",
            get11(&cl(&["5, 6"])),
        ),
        refused("cl_space_separated_values_is_refused", get11(&cl(&["5 5"]))),
        refused("cl_hex_is_refused", get11(&cl(&["0x10"]))),
        refused("cl_empty_is_refused", get11("Content-Length:\r\n")),
        refused(
            "cl_past_u64_is_refused",
            get11(&cl(&["18446744073709551616"])),
        ),
        accepted(
            "identical_cl_fields_are_one",
            get11(&cl(&[&n.to_string(), &n.to_string()])),
            HIDDEN,
        ),
        accepted(
            "identical_cl_list_elements_are_one",
            get11(&cl(&[&format!("{n}, {n}")])),
            HIDDEN,
        ),
        accepted(
            "cl_list_with_ows_is_one",
            get11(&cl(&[&format!(" {n} ,{n} ")])),
            HIDDEN,
        ),
        // Host.
        refused(
            "http11_without_host_is_refused",
            format!("GET {LIVE} HTTP/1.1\r\n\r\n").into_bytes(),
        ),
        refused("two_hosts_are_refused", get11("Host: other.test\r\n")),
        refused(
            "two_identical_hosts_are_refused",
            get11("Host: router.test\r\n"),
        ),
        refused(
            "two_hosts_in_http10_are_refused",
            get10("Host: other.test\r\n"),
        ),
        refused(
            "host_with_slash_is_refused",
            format!("GET {LIVE} HTTP/1.1\r\nHost: router.test/evil\r\n\r\n").into_bytes(),
        ),
        refused(
            "host_with_userinfo_is_refused",
            format!("GET {LIVE} HTTP/1.1\r\nHost: user@router.test\r\n\r\n").into_bytes(),
        ),
        refused(
            "host_with_space_is_refused",
            format!("GET {LIVE} HTTP/1.1\r\nHost: router test\r\n\r\n").into_bytes(),
        ),
        accepted(
            "host_with_port_is_accepted",
            format!("GET {LIVE} HTTP/1.1\r\nHost: router.test:8080\r\n\r\n").into_bytes(),
            b"",
        ),
        accepted(
            "host_ip_literal_is_accepted",
            format!("GET {LIVE} HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").into_bytes(),
            b"",
        ),
        accepted(
            "host_ipv4_is_accepted",
            format!("GET {LIVE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes(),
            b"",
        ),
        // Content-Length with Transfer-Encoding: the desync pair.
        Case {
            name: "cl_then_te_is_refused",
            bytes: cat(&[
                &get11(&format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    5 + n
                )),
                b"0\r\n\r\n",
                HIDDEN,
            ]),
            first: First::Refused,
            then: Vec::new(),
            after: After::Closes,
        },
        Case {
            name: "te_then_cl_is_refused",
            bytes: cat(&[
                &get11(&format!(
                    "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                    size_line.len()
                )),
                &chunked_hidden("", ""),
            ]),
            first: First::Refused,
            then: Vec::new(),
            after: After::Closes,
        },
        // Transfer-Encoding.
        refused_te(
            "te_xchunked_is_refused",
            "Transfer-Encoding: xchunked\r\n",
            First::Refused,
        ),
        refused_te(
            "te_chunked_then_identity_is_refused",
            "Transfer-Encoding: chunked, identity\r\n",
            First::Refused,
        ),
        refused_te(
            "te_space_before_colon_is_refused",
            "Transfer-Encoding : chunked\r\n",
            First::Refused,
        ),
        refused_te(
            "te_vertical_tab_before_value_is_refused",
            "Transfer-Encoding:\x0bchunked\r\n",
            First::Refused,
        ),
        refused_te(
            "te_chunked_with_parameter_is_refused",
            "Transfer-Encoding: chunked;x=1\r\n",
            First::Refused,
        ),
        refused_te(
            "te_empty_is_refused",
            "Transfer-Encoding:\r\n",
            First::Refused,
        ),
        refused_te(
            "te_gzip_alone_is_refused",
            "Transfer-Encoding: gzip\r\n",
            First::Refused,
        ),
        refused_te(
            "te_chunked_twice_is_refused",
            "Transfer-Encoding: chunked, chunked\r\n",
            First::Refused,
        ),
        refused_te(
            "te_chunked_in_two_fields_is_refused",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            First::Refused,
        ),
        refused_te(
            "te_gzip_then_chunked_is_not_implemented",
            "Transfer-Encoding: gzip, chunked\r\n",
            First::NotImplemented,
        ),
        refused_te(
            "te_gzip_and_chunked_fields_are_not_implemented",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            First::NotImplemented,
        ),
        Case {
            name: "te_in_http10_is_refused",
            bytes: cat(&[
                &get10("Transfer-Encoding: chunked\r\n"),
                b"0\r\n\r\n",
                HIDDEN,
            ]),
            first: First::Refused,
            then: Vec::new(),
            after: After::Closes,
        },
        accepted(
            "chunked_body_then_pipelined_request",
            get11("Transfer-Encoding: chunked\r\n"),
            &chunked_hidden("", ""),
        ),
        accepted(
            "chunked_in_any_case_is_chunked",
            get11("Transfer-Encoding: ChUnKeD\r\n"),
            &chunked_hidden("", ""),
        ),
        accepted(
            "chunked_with_extension_and_trailer_then_pipelined_request",
            get11("Transfer-Encoding: chunked\r\n"),
            &chunked_hidden(";ext=1", "X-Trailer: 1\r\n"),
        ),
        // RFC 9110 §5.6.1 lets a recipient skip empty list elements, and the spec said
        // so; the router refuses them on purpose, as nginx and Pingora do (Pingora, which
        // frames proxied requests, reads only the last field's last element: for it
        // `chunked,` is not chunked at all).
        refused_te(
            "te_empty_element_before_chunked_is_refused",
            "Transfer-Encoding: , chunked\r\n",
            First::Refused,
        ),
        refused_te(
            "te_empty_element_after_chunked_is_refused",
            "Transfer-Encoding: chunked,\r\n",
            First::Refused,
        ),
        refused_te(
            "te_chunked_then_empty_te_field_is_refused",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n",
            First::Refused,
        ),
        // Chunked bodies that break: the GET may be answered, nothing after it.
        bad_chunk("chunk_size_not_hex_closes", b"zz\r\n"),
        bad_chunk(
            "chunk_size_larger_than_data_closes",
            b"10\r\nabc\r\n0\r\n\r\n",
        ),
        bad_chunk("chunk_size_negative_closes", b"-5\r\nabcde\r\n"),
        bad_chunk(
            "chunk_size_overflowing_closes",
            b"ffffffffffffffffff\r\nabc\r\n",
        ),
        bad_chunk_then(
            "chunk_size_line_ending_in_bare_lf_closes",
            &cat(&[format!("{n:x}\n").as_bytes(), HIDDEN, b"\r\n0\r\n\r\n"]),
        ),
        bad_chunk_then(
            "chunk_data_ending_in_bare_lf_closes",
            &cat(&[size_line.as_bytes(), HIDDEN, b"\n0\r\n\r\n"]),
        ),
        bad_chunk_then(
            "trailer_line_ending_in_bare_lf_closes",
            &cat(&[size_line.as_bytes(), HIDDEN, b"\r\n0\r\nX-Trailer: 1\n\r\n"]),
        ),
        // Bad bytes in a head.
        refused("nul_in_field_value_is_refused", get11("X-A: a\0b\r\n")),
        refused("bare_cr_in_field_value_is_refused", get11("X-A: a\rb\r\n")),
        refused("lf_in_field_value_is_refused", get11("X-A: a\nX-B: b\r\n")),
        refused(
            "bare_lf_head_is_refused",
            format!("GET {LIVE} HTTP/1.1\nHost: router.test\n\n").into_bytes(),
        ),
        refused(
            "bare_lf_after_request_line_is_refused",
            format!("GET {LIVE} HTTP/1.1\nHost: router.test\r\n\r\n").into_bytes(),
        ),
        refused(
            "bare_lf_empty_line_is_refused",
            format!("GET {LIVE} HTTP/1.1\r\nHost: router.test\r\n\n").into_bytes(),
        ),
        refused("obs_fold_is_refused", get11("X-A: a\r\n b\r\n")),
        refused("obs_fold_with_tab_is_refused", get11("X-A: a\r\n\tb\r\n")),
        // Targets, versions, keep-alive.
        Case {
            name: "absolute_form_is_routed_by_its_path",
            bytes: cat(&[
                format!("GET http://any.host{LIVE} HTTP/1.1\r\nHost: router.test\r\n\r\n")
                    .as_bytes(),
                &pipelined(),
            ]),
            first: First::Redirect(LIVE_LOCATION),
            then: vec![PIPELINED_LOCATION],
            after: After::StaysOpen,
        },
        accepted("no_body_then_pipelined_request", get11(""), b""),
        accepted(
            "cl_body_then_pipelined_request",
            get11(&cl(&[&n.to_string()])),
            HIDDEN,
        ),
        Case {
            name: "post_with_cl_body_gets_405_then_pipelined_request",
            bytes: cat(&[
                format!("POST {LIVE} HTTP/1.1\r\nHost: router.test\r\nContent-Length: {n}\r\n\r\n")
                    .as_bytes(),
                HIDDEN,
                &pipelined(),
            ]),
            first: First::MethodNotAllowed,
            then: vec![PIPELINED_LOCATION],
            after: After::StaysOpen,
        },
        Case {
            name: "http10_closes_after_the_answer",
            bytes: cat(&[&get10(""), HIDDEN]),
            first: First::Redirect(LIVE_LOCATION),
            then: Vec::new(),
            after: After::Closes,
        },
        Case {
            name: "http10_without_host_is_answered_and_closed",
            bytes: cat(&[format!("GET {LIVE} HTTP/1.0\r\n\r\n").as_bytes(), HIDDEN]),
            first: First::Redirect(LIVE_LOCATION),
            then: Vec::new(),
            after: After::Closes,
        },
        Case {
            name: "http10_keep_alive_stays_open",
            bytes: cat(&[
                &get10("Connection: keep-alive\r\n"),
                format!("GET {PIPELINED} HTTP/1.0\r\nHost: router.test\r\n").as_bytes(),
                b"Connection: keep-alive\r\n\r\n",
            ]),
            first: First::Redirect(LIVE_LOCATION),
            then: vec![PIPELINED_LOCATION],
            after: After::StaysOpen,
        },
        Case {
            name: "connection_close_ignores_what_follows",
            bytes: cat(&[&get11("Connection: close\r\n"), HIDDEN]),
            first: First::Redirect(LIVE_LOCATION),
            then: Vec::new(),
            after: After::Closes,
        },
    ]
}

/// Runs one case on a fresh connection; `Err` says what went wrong. `Ok(true)`: the router
/// refused the request (a 400 or 501, counted as a refusal).
fn run_case(router: &Router, case: &Case) -> Result<bool, String> {
    let mut wire = open(router.v4());
    let outcome = check_case(&mut wire, case);
    // Whatever else happened: nothing hidden was ever answered.
    let _ = wire.until_closed(Duration::from_millis(
        if outcome.is_err() && case.after == After::Closes {
            200
        } else {
            0
        },
    ));
    let hidden = find(wire.received(), MARK).is_some();
    match (outcome, hidden) {
        (Ok(refused), false) => Ok(refused),
        (outcome, hidden) => Err(format!(
            "{}{}\n    received: {:?}",
            match &outcome {
                Ok(_) => String::new(),
                Err(e) => e.clone(),
            },
            if hidden {
                "; THE HIDDEN REQUEST WAS ANSWERED"
            } else {
                ""
            },
            shown(wire.received())
        )),
    }
}

fn check_case(wire: &mut Conn, case: &Case) -> Result<bool, String> {
    wire.try_send(&case.bytes)?;
    let mut refused = case.refusal();
    let mut answers = 0;
    if case.first != First::Any {
        let first = wire.try_read_response(false)?;
        answers += 1;
        let expected: (u16, &str) = match case.first {
            First::Redirect(location) => (302, location),
            First::Refused => (400, INVALID),
            First::NotImplemented => (501, NOT_IMPLEMENTED),
            First::MethodNotAllowed => (405, METHOD_NOT_ALLOWED),
            First::Any => unreachable!(),
        };
        let got = match case.first {
            First::Redirect(_) => first.header("location").unwrap_or_default().to_string(),
            _ => first.text(),
        };
        if (first.status, got.as_str()) != expected {
            return Err(format!(
                "first answer {} {got:?}, expected {} {:?}",
                first.status, expected.0, expected.1
            ));
        }
        if case.refusal() && first.header("connection") != Some("close") {
            return Err(format!("refusal without Connection: close: {first:?}"));
        }
    }
    for location in &case.then {
        let next = wire
            .try_read_response(false)
            .map_err(|e| format!("pipelined answer {answers}: {e}"))?;
        answers += 1;
        if next.status != 302 || next.header("location") != Some(location) {
            return Err(format!(
                "pipelined answer {answers}: {}, expected 302 {location}",
                next.summary()
            ));
        }
    }
    match case.after {
        After::Closes => {
            let end = wire.until_closed(CLOSE_WITHIN)?;
            let mut rest = wire.take_buffered();
            if case.first == First::Any {
                // At most one answer (to the routable GET, or a refusal), and nothing after.
                if let Some(answer) = take_response(&mut rest, false)? {
                    match answer.status {
                        302 => {}
                        400 if answer.text() == INVALID
                            && answer.header("connection") == Some("close") =>
                        {
                            refused = true;
                        }
                        _ => return Err(format!("answered {answer:?}")),
                    }
                }
            }
            if !rest.is_empty() {
                return Err(format!(
                    "more after the answers ({end:?}): {:?}",
                    shown(&rest)
                ));
            }
            match end {
                Some(End::Eof) => Ok(refused),
                Some(End::Reset) => Err("reset (ECONNRESET) instead of a FIN".to_string()),
                None => Err(format!("still open after {CLOSE_WITHIN:?}")),
            }
        }
        After::StaysOpen => {
            if !wire.buffered().is_empty() {
                return Err(format!(
                    "more after the answers: {:?}",
                    shown(wire.buffered())
                ));
            }
            wire.try_send(
                format!("GET {FOLLOW_UP} HTTP/1.1\r\nHost: router.test\r\n\r\n").as_bytes(),
            )
            .map_err(|e| format!("follow-up: {e}"))?;
            let next = wire
                .try_read_response(false)
                .map_err(|e| format!("follow-up: {e}"))?;
            if next.status != 302 || next.header("location") != Some(FOLLOW_UP_LOCATION) {
                return Err(format!(
                    "follow-up answered {}, expected 302 {FOLLOW_UP_LOCATION}",
                    next.summary()
                ));
            }
            if !wire.buffered().is_empty() {
                return Err(format!(
                    "more after the follow-up: {:?}",
                    shown(wire.buffered())
                ));
            }
            Ok(refused)
        }
    }
}

/// `cti_kaltura_requests_total{kind="invalid",outcome="bad_request"}` and
/// `cti_kaltura_client_connections_closed_total{reason="bad_request"}`.
fn refusal_counts(router: &Router) -> (f64, f64) {
    let text = scrape(router);
    (
        metric_sum(
            &text,
            REQUESTS,
            &[("kind", "invalid"), ("outcome", "bad_request")],
        ),
        metric_sum(
            &text,
            "cti_kaltura_client_connections_closed_total",
            &[("reason", "bad_request")],
        ),
    )
}

#[test]
fn request_framing_table() {
    let router = Setup::with(data::standard()).start();
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names repeat");

    let before = refusal_counts(&router);
    let mut failures = Vec::new();
    let mut refused = 0.0;
    for case in &cases {
        match run_case(&router, case) {
            Ok(true) => refused += 1.0,
            Ok(false) => {}
            Err(why) => {
                failures.push(format!("{}: {why}", case.name));
                // Counted as the case expects, so that the metrics line stays exact.
                if case.refusal() {
                    refused += 1.0;
                }
            }
        }
    }
    // The counters are bumped as the connection ends; the metrics come from elsewhere.
    let counted = try_poll_for(
        "the refusals counted",
        Duration::from_secs(2),
        Duration::from_millis(20),
        || {
            let now = refusal_counts(&router);
            let deltas = (now.0 - before.0, now.1 - before.1);
            if deltas == (refused, refused) {
                Ok(())
            } else {
                Err(format!(
                    "requests_total{{kind=\"invalid\",outcome=\"bad_request\"}} grew by {}, \
                     client_connections_closed_total{{reason=\"bad_request\"}} by {}",
                    deltas.0, deltas.1
                ))
            }
        },
    );
    if let Err(e) = counted {
        failures.push(format!("metrics: {e}; {refused} refusals"));
    }
    // Still serving.
    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nrouter stderr (tail):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        tail(&router.stderr(), 40)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `head` and `body_len` bytes of `fill` in one go, and only then reads: everything up
/// to the router's close, and how it closed.
fn send_all_then_read(addr: SocketAddr, head: &[u8], body_len: usize, fill: u8) -> (Vec<u8>, End) {
    const WITHIN: Duration = Duration::from_secs(10);
    let mut conn = Conn::open_with_timeout(addr, WITHIN);
    let mut bytes = head.to_vec();
    bytes.resize(head.len() + body_len, fill);
    // The write timeout bounds the wait.
    let written = conn.try_send(&bytes);
    assert!(
        written.is_ok(),
        "the router stopped reading while the client was still sending: {written:?}"
    );
    let end = conn
        .until_closed(WITHIN)
        .unwrap_or_else(|e| panic!("{e}; got {:?}", shown(conn.buffered())))
        .unwrap_or_else(|| {
            panic!(
                "no close within {WITHIN:?}; got {:?}",
                shown(conn.buffered())
            )
        });
    (conn.take_buffered(), end)
}

/// The one whole answer in `got`, and nothing after it.
fn only_answer(mut got: Vec<u8>) -> Response {
    let answer = take_response(&mut got, false)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no whole answer in {:?}", shown(&got)));
    assert!(got.is_empty(), "more after the answer: {:?}", shown(&got));
    answer
}

#[test]
fn a_client_that_sends_a_whole_large_body_before_reading_gets_the_answer_and_a_fin() {
    let router = Setup::with(data::standard()).start();
    const MIB: usize = 1024 * 1024;

    // A POST the router answers itself (405) without reading its 1 MiB body.
    let head = format!(
        "POST /btv/live/hls/x.m3u8 HTTP/1.1\r\nHost: router.test\r\nContent-Length: {MIB}\r\n\r\n"
    );
    let (got, end) = send_all_then_read(router.v4(), head.as_bytes(), MIB, b'a');
    assert_eq!(
        end,
        End::Eof,
        "after {:?}: reset instead of a FIN",
        shown(&got)
    );
    let answer = only_answer(got);
    assert_error(&answer, 405, METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");

    // A refused head followed by 1 MiB of garbage.
    let head =
        "POST /btv/live/hls/x.m3u8 HTTP/1.1\r\nHost: router.test\r\nContent-Length: +5\r\n\r\n";
    let (got, end) = send_all_then_read(router.v4(), head.as_bytes(), MIB, b'G');
    assert_eq!(
        end,
        End::Eof,
        "after {:?}: reset instead of a FIN",
        shown(&got)
    );
    let answer = only_answer(got);
    assert_error(&answer, 400, INVALID);
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");

    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
}

/// A short connect timeout: the fake edge answers at once, the bad one never connects.
const PROXY: &str = "proxy: {connect_timeout_ms: 300, read_timeout_ms: 5000}";
const BAD_EDGE: &str = "no-such-edge.invalid";

/// An edge with no `ip` whose name does not resolve, not health-checked.
fn unresolvable_edge(id: i64, weight: u64) -> Value {
    let mut server = edge(id, BAD_EDGE, "127.0.0.1", 80);
    server["ip"] = Value::Null;
    server["weight"] = json!(weight);
    server["healthcheck_enabled"] = json!(false);
    server
}

fn one_region(servers: &[Value]) -> Value {
    let ids: Vec<i64> = servers.iter().filter_map(|s| s["id"].as_i64()).collect();
    fake_edge::snapshot(
        "v1",
        &[RegionSpec {
            id: 1,
            cidrs: &["127.0.0.1/32"],
            edge_ids: &ids,
        }],
        servers,
    )
}

#[test]
fn an_edge_name_that_does_not_resolve_is_a_502_and_the_router_keeps_serving() {
    let mut router = Setup::with(one_region(&[unresolvable_edge(1, 10)]))
        .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
        .start();
    for i in 0..3 {
        let started = Instant::now();
        let response = router.get(&format!("/vod/unresolvable-{i}.bin"));
        assert_error(&response, 502, "Edge server unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        router.assert_alive();
    }
    // Redirects (live is not proxied) still name the edge, and the router still answers.
    assert_redirect(
        &router.get(LIVE),
        &format!("http://{BAD_EDGE}{}", fake_edge::LIVE_PATH),
    );
    router.assert_alive();
    let log = router.stderr();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn an_unresolvable_edge_next_to_a_good_one_is_retried_on_the_good_one() {
    let good = FakeEdge::start("good", 1);
    good.set_body_len(1000);
    let mut router = Setup::with(one_region(&[
        // Nearly every first choice is the unresolvable edge (until passive health drops it).
        unresolvable_edge(1, 1_000_000),
        edge(2, "good.proxy.test", "127.0.0.1", good.port()),
    ]))
    .router_lines(&["routes: {vod: {mode: proxy}}", PROXY])
    .start();
    for i in 0..5 {
        let response = router.get(&format!("/vod/retried-{i}.bin"));
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.header("x-edge"), Some("good"), "{response:?}");
        assert_eq!(response.body, fake_edge::pattern(0, 1000));
    }
    assert_eq!(good.requests().len(), 5, "{}", good.describe());
    let text = scrape(&router);
    let retries = metric_sum(&text, "cti_kaltura_upstream_retries_total", &[]);
    assert!(retries >= 1.0, "no retry counted:\n{text}");
    router.assert_alive();
}
