//! The TLS listeners with real clients: certificates made by a throw-away CA (the `openssl`
//! command), SNI and the default certificate, HTTP/1.1 and HTTP/2 (curl) answers identical to
//! plain HTTP, the Location scheme, reloads under traffic, a bad certificate refused, the
//! offered versions and suites (`openssl s_client`), and h2 abuse contained (raw frames).

use crate::data::{self, CLIENT_ALT, EDGE_ALT, EDGE_V4, LIVE, LIVE_LOCATION};
use crate::harness::{free_port, poll, run_bounded, v4, yaml_str, Router, Setup};
use crate::prometheus::{metric_sum, scrape, REQUESTS};
use crate::tls_client::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A router with a TLS listener on its own port serving `certs` (the first is the default).
struct TlsRouter {
    router: Router,
    tls_port: u16,
}

impl TlsRouter {
    fn start(certs: &[&CertFiles], extra: &[&str], watch_secs: u64) -> TlsRouter {
        Self::start_with(Setup::with(data::standard()), certs, extra, watch_secs)
    }

    fn start_with(
        setup: Setup,
        certs: &[&CertFiles],
        extra: &[&str],
        watch_secs: u64,
    ) -> TlsRouter {
        let tls_port = free_port();
        let mut lines = vec![
            "tls:".to_string(),
            format!("  listen: [\"127.0.0.1:{tls_port}\"]"),
            format!("  watch_interval_secs: {watch_secs}"),
            "  certificates:".to_string(),
        ];
        for c in certs {
            let ocsp = c.ocsp.as_ref().map_or(String::new(), |f| {
                format!(", ocsp_file: {}", yaml_str(&f.display().to_string()))
            });
            lines.push(format!(
                "    - {{cert_file: {}, key_file: {}{ocsp}}}",
                yaml_str(&c.cert.display().to_string()),
                yaml_str(&c.key.display().to_string())
            ));
        }
        lines.extend(extra.iter().map(|l| format!("  {l}")));
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let router = setup.router_lines(&refs).start();
        let tls = TlsRouter { router, tls_port };
        poll("the TLS listener accepts", || {
            std::net::TcpStream::connect(tls.addr())
                .map(drop)
                .map_err(|e| e.to_string())
        });
        tls
    }

    fn addr(&self) -> SocketAddr {
        v4(self.tls_port)
    }

    fn url(&self, name: &str, target: &str) -> String {
        format!("https://{name}:{}{target}", self.tls_port)
    }
}

/// `curl` against the router for `name` (resolved to loopback), trusting `pki`'s CA: status
/// line facts and the headers that matter, one per line.
fn curl(
    pki: &Pki,
    router: &TlsRouter,
    name: &str,
    version: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "10", version, "-X", method])
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .args([
            "--resolve",
            &format!("{name}:{}:127.0.0.1", router.tls_port),
        ])
        .args(["-o", "/dev/null", "-D", "-"])
        .args(["-w", "http_version=%{http_version}\n"]);
    if method == "HEAD" {
        cmd.arg("-I");
    }
    for (h, v) in headers {
        cmd.args(["-H", &format!("{h}: {v}")]);
    }
    cmd.arg(router.url(name, target));
    let out = cmd.output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The parts of a curl `-D -` output an HTTP/2 and an HTTP/1.1 answer must share: the status,
/// and the router's headers (lowercased; `date` and connection-level fields left out).
fn answer_facts(curl_out: &str) -> (u16, Vec<String>) {
    let mut lines = curl_out.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers: Vec<String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| !matches!(n.as_str(), "date" | "connection" | "keep-alive"))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    headers.sort();
    (status, headers)
}

/// `openssl s_client` with `args`: whether the handshake succeeded, and its output.
fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("openssl s_client output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let negotiated = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (negotiated, text)
}

#[test]
fn sni_chooses_the_certificate_and_the_first_is_the_default() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test", "*.wild.test"], KeyKind::EcSec1, 2);
    let b = pki.issue("b", &["b.test"], KeyKind::RsaPkcs1, 2);
    let c = pki.issue("c", &["c.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a, &b, &c], &[], 0);
    let client = pki.client(&[b"http/1.1"]);
    for (name, served) in [
        ("a.test", &a),
        ("B.TEST", &b),
        ("c.test", &c),
        ("x.wild.test", &a),
    ] {
        let mut tls = try_connect(&client, router.addr(), name)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", router.router.stderr()));
        assert_eq!(peer_leaf(&tls), served.leaf_der(), "certificate for {name}");
        // The same answer as over plain HTTP.
        let response = try_h1(&mut tls, LIVE, &[]).expect("an answer");
        assert_eq!(response.status, 302, "{response:?}");
        assert_eq!(response.location(), LIVE_LOCATION);
    }
    // No SNI, or a name no certificate has: the first certificate.
    for args in [
        &["-noservername"][..],
        &["-servername", "unknown.test"][..],
        &["-servername", "a.b.wild.test"][..],
    ] {
        let (ok, out) = s_client(router.addr(), args);
        assert!(ok, "{args:?}: {out}");
        assert!(out.contains("subject=CN = a.test"), "{args:?}: {out}");
    }
    // /debug/tls lists them, the first as the default.
    let debug = router.router.management("/debug/tls").json();
    let certs = debug["certificates"].as_array().expect("a list");
    assert_eq!(certs.len(), 3, "{debug}");
    assert_eq!(certs[0]["default"], true);
    assert_eq!(
        certs[0]["names"],
        serde_json::json!(["a.test", "*.wild.test"])
    );
    assert_eq!(certs[1]["key_type"], "RSA");
    assert_eq!(certs[0]["key_type"], "ECDSA");
    assert_eq!(certs[1]["subject"], "CN=b.test");
    let left = certs[2]["seconds_to_expiry"].as_i64().expect("a number");
    assert!((86_400..=2 * 86_400).contains(&left), "{debug}");
    // The expiry gauge and the handshake counters.
    let metrics = scrape(&router.router);
    let expiry = metric_sum(
        &metrics,
        "cti_kaltura_tls_certificate_expiry_seconds",
        &[("cert_file", &c.cert.display().to_string())],
    );
    assert!((86_000.0..=2.0 * 86_400.0).contains(&expiry), "{metrics}");
    let tls13 = metric_sum(
        &metrics,
        "cti_kaltura_tls_handshakes_total",
        &[
            ("result", "ok"),
            ("version", "TLSv1_3"),
            ("alpn", "http/1.1"),
        ],
    );
    assert!(tls13 >= 4.0, "{metrics}");
}

/// Method, target and request headers.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn https_and_h2_answers_are_the_plain_http_answers() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let setup =
        Setup::with(data::standard()).router_lines(&["access_log: {enabled: true, format: json}"]);
    let router = TlsRouter::start_with(setup, &[&a], &["h2: {max_concurrent_streams: 50}"], 0);
    let plain = router.router.v4();
    let cases: &[Case] = &[
        ("GET", LIVE, &[]),
        ("GET", "/btv/live/hls/epg_1.m3u8?token=abc", &[]),
        ("HEAD", LIVE, &[]),
        ("GET", "/vod/a//b.mp4?t=1", &[]),
        ("GET", "/btv/live/hls/epg_1", &[("X-Real-IP", CLIENT_ALT)]),
        ("GET", "/btv/live/hls/nope", &[]),
        ("GET", "/not/a/route", &[]),
        ("POST", LIVE, &[]),
    ];
    let before = metric_sum(&scrape(&router.router), REQUESTS, &[]);
    for (method, target, headers) in cases {
        let over_plain = {
            let out = Command::new("curl")
                .args(["-s", "-S", "--max-time", "10", "--http1.1", "-X", method])
                .args(if *method == "HEAD" {
                    &["-I"][..]
                } else {
                    &[][..]
                })
                .args(["-o", "/dev/null", "-D", "-"])
                .args(
                    headers
                        .iter()
                        .flat_map(|(h, v)| ["-H".to_string(), format!("{h}: {v}")]),
                )
                .arg(format!("http://{plain}{target}"))
                .output()
                .expect("run curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let h1 = curl(
            &pki,
            &router,
            "a.test",
            "--http1.1",
            method,
            target,
            headers,
        );
        let h2 = curl(&pki, &router, "a.test", "--http2", method, target, headers);
        assert!(h1.contains("http_version=1.1"), "{h1}");
        assert!(h2.contains("http_version=2"), "{h2}");
        let expected = answer_facts(&over_plain);
        assert_ne!(expected.0, 0, "{over_plain}");
        assert_eq!(
            answer_facts(&h1),
            expected,
            "{method} {target} over https/1.1"
        );
        assert_eq!(answer_facts(&h2), expected, "{method} {target} over h2");
    }
    // The h2 requests went through the same pipeline: counted like the others.
    let after = metric_sum(&scrape(&router.router), REQUESTS, &[]);
    assert_eq!(after - before, 3.0 * cases.len() as f64);
    let h2_handshakes = metric_sum(
        &scrape(&router.router),
        "cti_kaltura_tls_handshakes_total",
        &[("result", "ok"), ("alpn", "h2")],
    );
    assert_eq!(h2_handshakes, cases.len() as f64);
    // And logged like the others: one access-log line for a path asked for once, over h2.
    curl(
        &pki,
        &router,
        "a.test",
        "--http2",
        "GET",
        "/vod/logged-h2",
        &[],
    );
    let line = poll("the h2 request's access-log line", || {
        router
            .router
            .stderr()
            .lines()
            .find(|l| l.contains(" access] ") && l.contains("/vod/logged-h2"))
            .map(str::to_string)
            .ok_or_else(|| "not yet".to_string())
    });
    assert!(line.contains("\"status\":302"), "{line}");
    assert!(line.contains(&format!("\"edge\":\"{EDGE_V4}\"")), "{line}");
}

#[test]
fn location_scheme_edge_https_and_request() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let setup = Setup::with(data::standard()).router_lines(&[
        "routes:",
        "  live: {location_scheme: https}",
        "  vod: {location_scheme: request}",
        "  static: {location_scheme: edge}",
    ]);
    let router = TlsRouter::start_with(setup, &[&a], &[], 0);
    let client = pki.client(&[b"http/1.1"]);
    let over_tls = |target: &str, headers: &[(&str, &str)]| {
        let mut tls = try_connect(&client, router.addr(), "a.test").expect("TLS");
        try_h1(&mut tls, target, headers).expect("an answer")
    };
    // live: always https; port 80 is left out, another port kept.
    let https_live = "https://edge-a.test/live/one.m3u8";
    assert_eq!(router.router.get(LIVE).location(), https_live);
    assert_eq!(over_tls(LIVE, &[]).location(), https_live);
    assert_eq!(
        router.router.get_for(CLIENT_ALT, LIVE).location(),
        format!("https://{EDGE_ALT}:8080/live/one.m3u8")
    );
    // vod: the scheme of the request.
    assert_eq!(
        router.router.get("/vod/x.mp4").location(),
        format!("http://{EDGE_V4}/vod/x.mp4")
    );
    assert_eq!(
        over_tls("/vod/x.mp4", &[]).location(),
        format!("https://{EDGE_V4}/vod/x.mp4")
    );
    // static: the edge rule (http, no port), over TLS too.
    assert_eq!(
        over_tls("/static/x.png", &[]).location(),
        format!("http://{EDGE_V4}/static/x.png")
    );
}

/// Polls until new handshakes for `a.test` get the certificate `wanted` (DER).
fn wait_served(client: &Arc<rustls::ClientConfig>, addr: SocketAddr, wanted: &[u8]) {
    poll("the new certificate is served", || {
        let tls = try_connect(client, addr, "a.test")?;
        if peer_leaf(&tls) == wanted {
            Ok(())
        } else {
            Err("the old one still".to_string())
        }
    });
}

/// `cti_kaltura_tls_certificate_reloads_total{result}`.
fn reloads(router: &TlsRouter, result: &str) -> f64 {
    metric_sum(
        &scrape(&router.router),
        "cti_kaltura_tls_certificate_reloads_total",
        &[("result", result)],
    )
}

/// Replaces `into`'s files with `from`'s (key first, each by rename).
fn install(from: &CertFiles, into: &CertFiles) {
    for (src, dst) in [(&from.key, &into.key), (&from.cert, &into.cert)] {
        let tmp = dst.with_extension("tmp");
        std::fs::copy(src, &tmp).expect("copy");
        std::fs::rename(&tmp, dst).expect("rename");
    }
}

#[test]
fn certificates_reload_under_traffic_without_a_failed_request() {
    let pki = Pki::new();
    let live = pki.issue("live", &["a.test"], KeyKind::EcPkcs8, 2);
    let next = [
        pki.issue("next1", &["a.test"], KeyKind::RsaPkcs1, 2),
        pki.issue("next2", &["a.test"], KeyKind::EcSec1, 2),
    ];
    let router = TlsRouter::start(&[&live], &[], 1);
    let client = pki.client(&[b"http/1.1"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let addr = router.addr();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done, failed, client) =
                (stop.clone(), done.clone(), failed.clone(), client.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = try_connect(&client, addr, "a.test")
                        .and_then(|mut tls| try_h1(&mut tls, LIVE, &[]));
                    match answer {
                        Ok(r) if r.status == 302 => done.fetch_add(1, Ordering::Relaxed),
                        other => {
                            errors.push(format!("{other:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                errors
            })
        })
        .collect();
    // A keep-alive connection opened before the reloads.
    let mut kept = try_connect(&client, addr, "a.test").expect("TLS");
    assert_eq!(try_h1(&mut kept, LIVE, &[]).expect("answer").status, 302);
    for replacement in &next {
        install(replacement, &live);
        wait_served(&client, addr, &replacement.leaf_der());
    }
    stop.store(true, Ordering::Relaxed);
    // The connection opened before the reloads is still served.
    assert_eq!(try_h1(&mut kept, LIVE, &[]).expect("answer").status, 302);
    let errors: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    assert!(errors.is_empty(), "{} failed: {errors:?}", errors.len());
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(done.load(Ordering::Relaxed) > 0);
    let ok = reloads(&router, "ok");
    assert!(ok >= 2.0, "{ok}");
}

#[test]
fn a_bad_new_certificate_is_refused_and_the_old_one_stays() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let other = pki.issue("other", &["a.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a], &[], 1);
    router.router.wait_sighup_handler();
    let client = pki.client(&[b"http/1.1"]);
    let served = a.leaf_der();
    let refused = |router: &TlsRouter, n: usize| {
        poll("the reload is refused", || {
            let log = router.router.stderr();
            let lines: Vec<_> = log
                .lines()
                .filter(|l| l.contains("TLS certificates NOT reloaded"))
                .collect();
            if lines.len() >= n {
                Ok(lines.last().map(|l| l.to_string()).unwrap_or_default())
            } else {
                Err(format!("{} refusals logged", lines.len()))
            }
        })
    };
    // Not a certificate.
    std::fs::write(&a.cert, b"garbage\n").expect("write");
    let line = refused(&router, 1);
    assert!(
        line.contains("router.tls.certificates[0].cert_file"),
        "{line}"
    );
    let mut tls = try_connect(&client, router.addr(), "a.test").expect("still served");
    assert_eq!(peer_leaf(&tls), served);
    assert_eq!(try_h1(&mut tls, LIVE, &[]).expect("answer").status, 302);
    // A certificate with another certificate's key.
    std::fs::copy(&other.cert, &a.cert).expect("copy");
    let line = refused(&router, 2);
    assert!(
        line.contains("router.tls.certificates[0].key_file"),
        "{line}"
    );
    assert!(line.contains("does not belong"), "{line}");
    let tls = try_connect(&client, router.addr(), "a.test").expect("still served");
    assert_eq!(peer_leaf(&tls), served);
    // SIGHUP with a good pair: the new one.
    std::fs::copy(&other.key, &a.key).expect("copy");
    router.router.sighup();
    wait_served(&client, router.addr(), &other.leaf_der());
    let refusals = reloads(&router, "refused");
    assert!(refusals >= 2.0, "{refusals}");
}

#[test]
fn bad_certificate_files_are_config_errors_naming_the_key() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let b = pki.issue("b", &["b.test"], KeyKind::RsaPkcs1, 2);
    std::fs::write(pki.path("bad.pem"), b"-----BEGIN CERTIFICATE-----\nnope\n").expect("write");
    let port = free_port();
    let config = format!(
        "router:\n  listen: [\"127.0.0.1:{}\"]\n  routing: {{file: {}}}\n  tls:\n    listen: [\"127.0.0.1:{port}\"]\n    certificates:\n      - {{cert_file: {}, key_file: {}}}\n      - {{cert_file: missing.pem, key_file: {}}}\n      - {{cert_file: bad.pem, key_file: {}}}\n",
        free_port(),
        yaml_str(&pki.path("routing.json").display().to_string()),
        yaml_str(&a.cert.display().to_string()),
        yaml_str(&b.key.display().to_string()),
        yaml_str(&a.key.display().to_string()),
        yaml_str(&a.key.display().to_string()),
    );
    let conf = pki.path("bad.yaml");
    std::fs::File::create(&conf)
        .and_then(|mut f| f.write_all(config.as_bytes()))
        .expect("write config");
    let (status, _out, err) = run_bounded(
        Command::new(crate::harness::bin())
            .args(["-t", "-c"])
            .arg(&conf),
        pki.dir.path(),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    for expected in [
        "router.tls.certificates[0].key_file: ",
        "router.tls.certificates[1].cert_file: ",
        "router.tls.certificates[2].cert_file: ",
    ] {
        assert!(err.contains(expected), "{expected} missing in:\n{err}");
    }
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(err.contains("missing.pem"), "{err}");
    // TLS listeners without certificates.
    std::fs::write(
        &conf,
        format!(
            "router:\n  routing: {{file: r.json}}\n  tls: {{listen: [\"127.0.0.1:{port}\"]}}\n"
        ),
    )
    .expect("write");
    let (status, _, err) = run_bounded(
        Command::new(crate::harness::bin())
            .args(["-t", "-c"])
            .arg(&conf),
        pki.dir.path(),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("router.tls.certificates: missing"), "{err}");
}

#[test]
fn only_tls_1_2_and_1_3_with_aead_suites_are_offered() {
    let pki = Pki::new();
    let ec = pki.issue("ec", &["ec.test"], KeyKind::EcSec1, 2);
    let rsa = pki.issue("rsa", &["rsa.test"], KeyKind::RsaPkcs1, 2);
    let router = TlsRouter::start(&[&ec, &rsa], &[], 0);
    let addr = router.addr();
    for (args, accepted) in [
        (&["-tls1_3"][..], true),
        (&["-tls1_2"][..], true),
        (
            &[
                "-tls1_2",
                "-servername",
                "rsa.test",
                "-cipher",
                "ECDHE-RSA-AES128-GCM-SHA256",
            ][..],
            true,
        ),
        (
            &[
                "-tls1_2",
                "-servername",
                "ec.test",
                "-cipher",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
            ][..],
            true,
        ),
        (&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"][..], false),
        (&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"][..], false),
        // CBC, RSA key exchange, 3DES: not offered.
        (
            &[
                "-tls1_2",
                "-cipher",
                "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA",
            ][..],
            false,
        ),
        (
            &[
                "-tls1_2",
                "-servername",
                "rsa.test",
                "-cipher",
                "AES128-GCM-SHA256",
            ][..],
            false,
        ),
        (
            &["-tls1_2", "-cipher", "DES-CBC3-SHA@SECLEVEL=0"][..],
            false,
        ),
    ] {
        let (ok, out) = s_client(addr, args);
        assert_eq!(ok, accepted, "{args:?}:\n{out}");
    }
    // TLS 1.3: each of the three standard suites.
    for suite in [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ] {
        let (ok, out) = s_client(addr, &["-tls1_3", "-ciphersuites", suite]);
        assert!(ok && out.contains(suite), "{suite}:\n{out}");
    }
    // Session resumption: a ticket from the first connection resumes the second.
    let sess = pki.path("session.pem");
    let sess = sess.display().to_string();
    let (ok, out) = s_client(addr, &["-tls1_2", "-sess_out", &sess]);
    assert!(ok, "{out}");
    let counts = || {
        let metrics = scrape(&router.router);
        let ok = metric_sum(
            &metrics,
            "cti_kaltura_tls_handshakes_total",
            &[("result", "ok")],
        );
        let resumed = metric_sum(&metrics, "cti_kaltura_tls_ticket_resumptions_total", &[]);
        (ok, resumed)
    };
    let before = counts();
    let (ok, out) = s_client(addr, &["-tls1_2", "-sess_in", &sess]);
    assert!(ok && out.contains("Reused, TLSv1.2"), "{out}");
    // Counted as a handshake, and as a resumption from a ticket.
    let after = counts();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1.0, 1.0));
}

/// An h2 connection with ALPN `h2`, the preface sent.
fn h2_connect(pki: &Pki, addr: SocketAddr) -> TlsConn {
    let client = pki.client(&[b"h2"]);
    let mut tls = try_connect(&client, addr, "a.test").expect("TLS");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(&preface()).expect("preface");
    tls
}

/// A well-behaved h2 client (curl) is answered.
fn served_alongside(pki: &Pki, router: &TlsRouter) {
    let out = curl(pki, router, "a.test", "--http2", "GET", LIVE, &[]);
    assert_eq!(answer_facts(&out).0, 302, "{out}");
}

/// Bytes a flooding client may push before the test calls the flood unbounded: far more
/// than the loopback socket buffers of both directions hold.
const FLOOD_LIMIT: usize = 256 * 1024 * 1024;

/// A client flooding `frame` and never reading is contained by backpressure: the server
/// answers each frame, stops reading once its answers back up, and neither closes the
/// connection nor stops serving others. Once the client reads, the answers are there, one
/// per frame (`is_answer`), with no GOAWAY.
fn assert_flood_backpressured(
    pki: &Pki,
    router: &TlsRouter,
    tls: &mut TlsConn,
    frame: &[u8],
    is_answer: impl Fn(&Frame) -> bool,
) {
    let end = flood(tls, frame, FLOOD_LIMIT);
    assert!(matches!(end, FloodEnd::Backpressured { .. }), "{end:?}");
    served_alongside(pki, router);
    let wanted = 1000;
    let mut answers = 0;
    let frames = read_frames_only(tls, |f| {
        answers += usize::from(is_answer(f));
        answers == wanted || f.kind == FRAME_GOAWAY
    });
    assert!(!frames.iter().any(|f| f.kind == FRAME_GOAWAY));
    assert_eq!(answers, wanted, "{} frames read", frames.len());
    served_alongside(pki, router);
}

#[test]
fn a_ping_flood_is_backpressured_while_others_are_served() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a], &[], 0);
    let mut tls = h2_connect(&pki, router.addr());
    let payload = *b"flooding";
    let ping = frame(FRAME_PING, 0, 0, &payload);
    assert_flood_backpressured(&pki, &router, &mut tls, &ping, |f| {
        f.kind == FRAME_PING && f.flags & FLAG_ACK != 0 && f.payload == payload
    });
}

#[test]
fn a_settings_flood_is_backpressured_while_others_are_served() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a], &[], 0);
    let mut tls = h2_connect(&pki, router.addr());
    // SETTINGS_INITIAL_WINDOW_SIZE = 65,535 (its default), over and over.
    let settings = frame(FRAME_SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
    assert_flood_backpressured(&pki, &router, &mut tls, &settings, |f| {
        f.kind == FRAME_SETTINGS && f.flags & FLAG_ACK != 0
    });
}

#[test]
fn a_rapid_reset_client_is_cut_off_while_others_are_served() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a], &[], 0);
    let mut tls = h2_connect(&pki, router.addr());
    // Open and cancel 1,000 streams in one burst (CVE-2023-44487).
    let mut burst = Vec::new();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            id,
            &get_headers(LIVE),
        ));
        burst.extend(frame(FRAME_RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let _ = tls.write_all(&burst);
    let frames = read_frames(&mut tls, |f| f.kind == FRAME_GOAWAY);
    let goaway = frames.iter().find(|f| f.kind == FRAME_GOAWAY);
    assert_eq!(
        goaway.and_then(Frame::error_code),
        Some(ENHANCE_YOUR_CALM),
        "no GOAWAY ENHANCE_YOUR_CALM in {} frames",
        frames.len()
    );
    // Far fewer answers than streams were produced.
    let answered = frames.iter().filter(|f| f.kind == FRAME_HEADERS).count();
    assert!(answered < 200, "{answered} streams answered");
    served_alongside(&pki, &router);
}

#[test]
fn streams_over_the_concurrency_limit_are_refused_while_others_are_served() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a], &["h2: {max_concurrent_streams: 10}"], 0);
    let mut tls = h2_connect(&pki, router.addr());
    // Wait for the server's SETTINGS: a client that ignores them is what is tested.
    let settings = read_frames(&mut tls, |f| {
        f.kind == FRAME_SETTINGS && f.flags & FLAG_ACK == 0
    });
    let advertised = settings
        .last()
        .map(|f| f.payload.clone())
        .unwrap_or_default();
    let max_streams = advertised
        .chunks(6)
        .find(|s| s.len() == 6 && u16::from_be_bytes([s[0], s[1]]) == 0x3)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(max_streams, Some(10));
    let mut burst = Vec::new();
    let streams = 60u32;
    for i in 0..streams {
        burst.extend(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            2 * i + 1,
            &get_headers(LIVE),
        ));
    }
    tls.write_all(&burst).expect("burst");
    let (mut answered, mut refused) = (0u32, 0u32);
    let frames = read_frames(&mut tls, |f| {
        match (f.kind, f.error_code()) {
            (FRAME_HEADERS, _) => answered += 1,
            (FRAME_RST_STREAM, Some(REFUSED_STREAM)) => refused += 1,
            _ => {}
        }
        answered + refused >= streams || f.kind == FRAME_GOAWAY
    });
    assert!(
        refused > 0,
        "none refused; {answered} answered, {} frames",
        frames.len()
    );
    assert!(answered >= 10, "{answered} answered");
    assert_eq!(answered + refused, streams);
    served_alongside(&pki, &router);
    // The connection itself is still usable: one more request is answered.
    tls.write_all(&frame(
        FRAME_HEADERS,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        2 * streams + 1,
        &get_headers(LIVE),
    ))
    .expect("one more");
    let more = read_frames(&mut tls, |f| {
        f.kind == FRAME_HEADERS || f.kind == FRAME_GOAWAY
    });
    assert_eq!(more.last().map(|f| f.kind), Some(FRAME_HEADERS));
}

#[test]
fn sigusr2_upgrade_hands_over_the_tls_listener_without_a_failed_request() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let router = TlsRouter::start(&[&a], &[], 0);
    let config = router.router.dir().join(crate::harness::CONFIG_FILE);
    let (addr, client) = (router.addr(), pki.client(&[b"http/1.1"]));
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (stop, served, client) = (stop.clone(), served.clone(), client.clone());
        std::thread::spawn(move || {
            let mut failed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // As in `upgrade::binary_upgrade_under_continuous_traffic_drops_no_request`: a
                // connection the old process closes under a request when it exits (the
                // harness's grace_period_seconds is 0) is retried once on a fresh connection,
                // as HTTP clients do with an idempotent GET; a second failure is a failure.
                let ask = || {
                    try_connect(&client, addr, "a.test")
                        .and_then(|mut tls| try_h1(&mut tls, "/vod/upgrade", &[]))
                };
                let answer = ask().or_else(|_| ask());
                match answer {
                    Ok(r) if r.status == 302 => {
                        served.fetch_add(1, Ordering::Release);
                    }
                    other => failed.push(format!("{other:?}")),
                }
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            failed
        })
    };
    poll("TLS traffic before the upgrade", || {
        match served.load(Ordering::Acquire) {
            n if n >= 20 => Ok(()),
            n => Err(format!("{n} answers")),
        }
    });
    let _successor =
        crate::upgrade::upgrade_in_place(router.router.pid(), &config, || router.router.stderr());
    let at_upgrade = served.load(Ordering::Acquire);
    poll("TLS traffic served by the new process", || {
        match served.load(Ordering::Acquire) - at_upgrade {
            n if n >= 20 => Ok(()),
            n => Err(format!("{n} answers since")),
        }
    });
    stop.store(true, Ordering::Relaxed);
    let failed = worker.join().expect("worker");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    // h2 on the new process too.
    served_alongside(&pki, &router);
}

#[test]
fn an_ocsp_response_is_stapled_when_a_file_is_given() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], KeyKind::EcPkcs8, 2);
    let b = pki.issue("b", &["b.test"], KeyKind::EcPkcs8, 2);
    let a = pki.ocsp(&a);
    let router = TlsRouter::start(&[&a, &b], &[], 0);
    let ca = pki.path("ca.pem").display().to_string();
    let (ok, out) = s_client(
        router.addr(),
        &["-servername", "a.test", "-status", "-CAfile", &ca],
    );
    assert!(ok, "{out}");
    assert!(out.contains("OCSP Response Status: successful"), "{out}");
    assert!(out.contains("Cert Status: good"), "{out}");
    // Only that certificate has one.
    let (ok, out) = s_client(
        router.addr(),
        &["-servername", "b.test", "-status", "-CAfile", &ca],
    );
    assert!(ok, "{out}");
    assert!(out.contains("OCSP response: no response sent"), "{out}");
    let debug = router.router.management("/debug/tls").json();
    assert_eq!(debug["certificates"][0]["ocsp_stapled"], true, "{debug}");
    assert_eq!(debug["certificates"][1]["ocsp_stapled"], false, "{debug}");
}
