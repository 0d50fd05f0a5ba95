//! SIGHUP re-reads the config file: a change (the trusted proxies) is applied, an invalid file
//! is refused whole and logged while the old config stays, and a new listen address is
//! reported as needing an upgrade while the rest of the file applies.

use crate::data::{self, *};
use crate::harness::{free_port, try_poll, v4, Router, Setup, CONFIG_FILE};
use crate::routes::assert_redirect;
use std::fs;
use std::net::TcpStream;
use std::time::Duration;

/// Where `GET LIVE` from 127.0.0.1 with `X-Real-IP: CLIENT_ALT` is sent.
fn location_for_alt(router: &Router) -> String {
    router.get_for(CLIENT_ALT, LIVE).summary()
}

/// The header decides: region ALT.
fn alt_by_header() -> String {
    format!("302 http://{EDGE_ALT}:8080/live/one.m3u8")
}

/// The header is ignored: the peer 127.0.0.1 decides, region MAIN.
fn alt_ignored() -> String {
    format!("302 {LIVE_LOCATION}")
}

/// Polls until [`location_for_alt`] is `wanted`.
fn wait_for_alt(router: &Router, what: &str, wanted: &str) {
    let seen = try_poll(what, || {
        let seen = location_for_alt(router);
        if seen == wanted {
            Ok(())
        } else {
            Err(seen)
        }
    });
    seen.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", router.stderr()));
}

/// `text` with `from` replaced by `to`, which must occur in it.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from} not in the config:\n{text}");
    text.replace(from, to)
}

/// Polls the router's stderr until a line contains every one of `needles`; returns it.
fn wait_for_log_line(router: &Router, what: &str, needles: &[&str]) -> String {
    let found = try_poll(what, || {
        router
            .stderr()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .ok_or_else(|| format!("no line with {needles:?}"))
    });
    found.unwrap_or_else(|e| panic!("{e}; stderr:\n{}", router.stderr()))
}

#[test]
fn sighup_applies_trusted_proxies_refuses_invalid_config_and_reports_listen_changes() {
    let mut router = Setup::with(data::standard())
        .trusted_proxies(&["127.0.0.1/32"])
        .start();
    router.wait_sighup_handler();
    let config_path = router.dir().join(CONFIG_FILE);
    let original = fs::read_to_string(&config_path).expect("read the config");
    assert_eq!(location_for_alt(&router), alt_by_header());

    // Trust only 10.0.0.0/8: 127.0.0.1's header is ignored from now on.
    let untrusting = replaced(&original, "\"127.0.0.1/32\"", "\"10.0.0.0/8\"");
    fs::write(&config_path, &untrusting).expect("write the config");
    router.sighup();
    wait_for_alt(&router, "the trusted-proxy change applied", &alt_ignored());
    wait_for_log_line(
        &router,
        "the reload logged",
        &["SIGHUP: configuration", "applied"],
    );
    router.assert_alive();

    // An invalid file (unknown key) that would trust 127.0.0.1 again: refused whole.
    let invalid = format!("{original}  colour: red\n");
    fs::write(&config_path, &invalid).expect("write the config");
    router.sighup();
    let error = wait_for_log_line(&router, "the refusal logged", &["router.colour"]);
    assert!(error.contains("ERROR"), "{error}");
    assert!(error.contains("unknown key"), "{error}");
    wait_for_log_line(&router, "the refusal summed up", &["refused", "stays"]);
    for _ in 0..5 {
        assert_eq!(
            location_for_alt(&router),
            alt_ignored(),
            "invalid file applied"
        );
        // Watching for a change that must not come.
        std::thread::sleep(Duration::from_millis(100));
    }
    router.assert_alive();

    // A new listen port (and 127.0.0.1 trusted again): the listener change is reported as
    // needing an upgrade and not applied, the rest applies.
    let new_port = free_port();
    let moved = replaced(
        &original,
        &format!("\"127.0.0.1:{}\"", router.port),
        &format!("\"127.0.0.1:{new_port}\""),
    );
    fs::write(&config_path, &moved).expect("write the config");
    router.sighup();
    let kept = wait_for_log_line(&router, "the listen change reported", &["router.listen"]);
    assert!(kept.contains("upgrade"), "{kept}");
    wait_for_alt(
        &router,
        "the rest of the new config applied",
        &alt_by_header(),
    );
    // The old listeners keep serving; nothing listens on the new port.
    assert_redirect(&router.get(LIVE), LIVE_LOCATION);
    assert_redirect(
        &router.request(router.v6(), "GET", LIVE, &[]),
        &format!("http://{EDGE_V6}/live/one.m3u8"),
    );
    let refused = TcpStream::connect_timeout(&v4(new_port), Duration::from_secs(1));
    assert!(refused.is_err(), "something listens on {new_port}");
    router.assert_alive();
}
