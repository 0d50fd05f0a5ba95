//! The HTTP/1 loop over an in-memory duplex stream: what it answers, in which order, when it
//! keeps or ends a connection, and what it hands to the framework — no sockets, no Pingora
//! service running, the demo snapshot of `conf/`.

use super::*;
use crate::config::Config;
use crate::server::proxy::edge_resolver::EdgeResolver;
use crate::snapshot::load_snapshot;
use pingora::server::configuration::ServerConf;
use tokio::io::DuplexStream;

impl Connection for DuplexStream {}
impl crate::server::relay::Client for DuplexStream {}

const LIVE: &str = "/btv/live/hls/epg_0.m3u8";

fn app(extra_config: &str) -> RouterApp {
    let yaml = format!("router:\n  routing: {{file: r.yaml}}\n{extra_config}");
    let config = Config::from_yaml(&yaml).expect("a valid config");
    let settings = SharedSettings::new(config);
    let state = RouterState::new();
    let demo = include_bytes!("../../../conf/routing.yaml");
    state.publish(load_snapshot(demo, "demo").expect("the demo snapshot loads"));
    let proxy = RouterProxy {
        state: state.clone(),
        settings: settings.clone(),
        resolver: EdgeResolver::default(),
        manifest_connector: pingora::connectors::http::Connector::new(None),
    };
    let proxy = pingora::proxy::http_proxy(&Arc::new(ServerConf::default()), proxy);
    RouterApp::new(proxy, state, settings, Arc::new(AtomicBool::new(false)))
}

/// What the loop made of `input` (sent whole, then the client's write side closed): every
/// byte it answered, and how serving ended.
async fn serve(app: &RouterApp, input: &[u8]) -> (String, Served) {
    let (mut client, mut server) = tokio::io::duplex(1 << 20);
    client.write_all(input).await.expect("written");
    client.shutdown().await.expect("half-closed");
    let (_closing, closing_rx) = watch::channel(false);
    let (_shutdown, shutdown) = watch::channel(false);
    let mut conn = ConnState {
        buf: BytesMut::with_capacity(INITIAL_BUFFER),
        out: Vec::new(),
        accepted: Some(Instant::now()),
        closing: closing_rx,
        answers: 0,
        idle: super::IdleTimer::new(Instant::now()),
        secure: false,
    };
    let peer: IpAddr = "127.0.0.1".parse().expect("an address");
    let served = app.serve(&mut server, &mut conn, peer, &shutdown).await;
    drop(server);
    let mut output = Vec::new();
    client.read_to_end(&mut output).await.expect("read");
    (String::from_utf8_lossy(&output).into_owned(), served)
}

fn get(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: router.test\r\n{extra}\r\n")
}

fn statuses(output: &str) -> Vec<&str> {
    output
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &output[at + 9..at + 12])
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let app = app("");
    let input = [get(LIVE, ""), get("/nowhere", ""), get(LIVE, "")].concat();
    let (output, served) = serve(&app, input.as_bytes()).await;
    assert_eq!(statuses(&output), ["302", "400", "302"], "{output}");
    assert_eq!(output.matches("Connection: keep-alive").count(), 3);
    assert!(matches!(served, Served::Done));
}

#[tokio::test]
async fn a_refused_head_ends_the_connection_and_nothing_after_it_is_answered() {
    let app = app("");
    let smuggled = get(LIVE, "");
    let input = format!(
        "POST {LIVE} HTTP/1.1\r\nHost: router.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let (output, _) = serve(&app, input.as_bytes()).await;
    assert_eq!(statuses(&output), ["400"], "{output}");
    assert!(output.contains("Connection: close"));
}

#[tokio::test]
async fn bodies_are_read_by_their_framing_before_the_next_request() {
    let app = app("");
    let hidden = get("/vod/hidden.mp4", "");
    let chunked = format!(
        "GET {LIVE} HTTP/1.1\r\nHost: router.test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
        hidden.len()
    );
    let post = format!(
        "POST {LIVE} HTTP/1.1\r\nHost: router.test\r\nContent-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    let input = [chunked, post, get(LIVE, "")].concat();
    let (output, _) = serve(&app, input.as_bytes()).await;
    assert_eq!(statuses(&output), ["302", "405", "302"], "{output}");
    assert!(!output.contains("hidden"), "{output}");
}

#[tokio::test]
async fn http10_closes_after_its_answer_unless_asked_to_keep_alive() {
    let app = app("");
    let plain = format!("GET {LIVE} HTTP/1.0\r\n\r\n{}", get(LIVE, ""));
    let (output, _) = serve(&app, plain.as_bytes()).await;
    assert_eq!(statuses(&output), ["302"], "{output}");
    assert!(output.contains("Connection: close"));
    let kept = format!(
        "GET {LIVE} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n{}",
        get(LIVE, "")
    );
    let (output, _) = serve(&app, kept.as_bytes()).await;
    assert_eq!(statuses(&output), ["302", "302"], "{output}");
}

#[tokio::test]
async fn a_proxied_route_is_handed_over_decided_with_its_length() {
    let app = app("  routes: {live: {mode: proxy}}\n");
    let request = get(LIVE, "");
    let input = [request.clone(), get(LIVE, "")].concat();
    let (output, served) = serve(&app, input.as_bytes()).await;
    assert_eq!(output, "", "nothing answered on the loop");
    match served {
        Served::Delegate(Handover {
            request_len: Some(len),
            decided: Some(handled),
            keep_alive: true,
        }) => {
            assert_eq!(len, request.len());
            let Action::Proxy(target) = &handled.action else {
                panic!("not a proxy decision: {:?}", handled.action);
            };
            assert!(target.path_and_query.starts_with('/'), "{target:?}");
            assert_eq!(handled.record.outcome, crate::metrics::OutcomeLabel::Proxy);
        }
        Served::Delegate(other) => panic!("handed over as {other:?}"),
        Served::Done => panic!("not handed over"),
    }
}

#[tokio::test]
async fn a_delegated_request_is_framed_by_the_routers_rules_first() {
    let app = app("");
    // `Expect` sends the request to the framework; its chunked body is checked here first.
    let bad_chunk = format!(
        "POST {LIVE} HTTP/1.1\r\nHost: router.test\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n{}",
        get("/vod/hidden.mp4", "")
    );
    let (output, served) = serve(&app, bad_chunk.as_bytes()).await;
    assert_eq!(statuses(&output), ["400"], "{output}");
    assert!(matches!(served, Served::Done));
    // `close` in a second Connection field (the framework reads only the first) is kept.
    let closing = format!(
        "GET {LIVE} HTTP/1.1\r\nHost: router.test\r\nUpgrade: h2c\r\nConnection: upgrade\r\nConnection: close\r\n\r\n"
    );
    let (_, served) = serve(&app, closing.as_bytes()).await;
    match served {
        Served::Delegate(handover) => {
            assert!(!handover.keep_alive, "{handover:?}");
            assert_eq!(handover.request_len, Some(closing.len()));
        }
        Served::Done => panic!("not handed over"),
    }
}
