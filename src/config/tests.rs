use super::*;

fn errors_of(yaml: &str) -> Vec<String> {
    match Config::from_yaml(yaml) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = Config::from_yaml("router:\n  routing:\n    file: r.yaml\n").unwrap();
    assert_eq!(
        c.listen,
        vec!["0.0.0.0:4001".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.management_listen, "127.0.0.1:4002".parse().unwrap());
    assert!(c
        .client_ip
        .trusted_proxies
        .contains("127.0.0.9".parse().unwrap()));
    assert!(c.client_ip.trusted_proxies.contains("::1".parse().unwrap()));
    assert!(!c
        .client_ip
        .trusted_proxies
        .contains("10.0.0.1".parse().unwrap()));
    assert!(c.health.enabled);
    assert_eq!(c.http.keepalive_timeout, Duration::from_secs(60));
    assert_eq!(c.http.header_timeout, Duration::from_secs(10));
    assert_eq!(c.http.lingering_time, Duration::from_secs(30));
    assert_eq!(c.http.lingering_timeout, Duration::from_secs(5));
    assert_eq!(c.http.max_connections_per_client, 1000);
    assert!(c.redirect.append_query_string);
    assert_eq!(c.routing.watch_interval, Some(Duration::from_secs(2)));
}

#[test]
fn pingora_keys_at_top_level_are_left_to_pingora() {
    let c = Config::from_yaml(
        "version: 1\nthreads: 2\ngrace_period_seconds: 5\nrouter:\n  listen: [\"127.0.0.1:81\", \"[::1]:81\"]\n  routing: {file: x.json}\n",
    )
    .unwrap();
    assert_eq!(c.listen.len(), 2);
    assert!(c.listen[1].is_ipv6());
}

#[test]
fn every_bad_key_is_reported_by_path() {
    let errors = errors_of(
        "router:
  listen: [\"127.0.0.1:80\", \"nonsense\"]
  management_listen: 7
  routing: {file: r.yaml, watch_interval_secs: -1}
  client_ip:
    trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.300/8\", 5]
  health: {enabled: maybe}
  http: {keepalive_timeout_secs: 0, header_timeout_secs: 0, max_connections_per_client: -1, lingering_time_secs: 0, lingering_timeout_secs: 61}
  colour: blue
",
    );
    assert_eq!(
        errors,
        vec![
            "router.listen[1]: not an addr:port (use 0.0.0.0:4001 or [::]:4001)",
            "router.management_listen: expected a string, found a number",
            "router.routing.watch_interval_secs: must be a whole number from 0 to 3600",
            "router.client_ip.trusted_proxies[1]: not a CIDR",
            "router.client_ip.trusted_proxies[2]: expected a string, found a number",
            "router.health.enabled: expected true or false, found a string",
            "router.http.keepalive_timeout_secs: must be a whole number from 1 to 3600",
            "router.http.header_timeout_secs: must be a whole number from 1 to 300",
            "router.http.max_connections_per_client: must be a whole number from 0 to 1000000",
            "router.http.lingering_time_secs: must be a whole number from 1 to 300",
            "router.http.lingering_timeout_secs: must be a whole number from 1 to 60",
            "router.colour: unknown key",
        ]
    );
}

#[test]
fn unknown_nested_key_and_missing_file_are_errors() {
    let errors = errors_of("router:\n  routing:\n    fil: r.yaml\n");
    assert_eq!(
        errors,
        vec![
            "router.routing.file: missing: set `file` (a snapshot file) or `admin_api` (the admin system)",
            "router.routing.fil: unknown key",
        ]
    );
}

#[test]
fn missing_router_section_and_bad_yaml_are_reported() {
    assert_eq!(
        errors_of("threads: 1\n"),
        vec!["router: missing: every router setting lives under `router:`"]
    );
    assert!(errors_of("router: [unclosed")[0].starts_with("(file): not valid YAML"));
    assert_eq!(
        errors_of("router: 5\n")[0],
        "router: expected a mapping, found a number"
    );
}

#[test]
fn management_listener_must_not_clash_with_public_listener() {
    let errors = errors_of(
        "router:\n  listen: [\"127.0.0.1:4001\"]\n  management_listen: \"127.0.0.1:4001\"\n  routing: {file: r}\n",
    );
    assert_eq!(
        errors,
        vec!["router.management_listen: must differ from every router.listen address"]
    );
}

#[test]
fn cidr_parsing_masks_host_bits_and_accepts_bare_addresses() {
    assert_eq!(
        parse_cidr("123.123.123.123/29").unwrap().to_string(),
        "123.123.123.120/29"
    );
    assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
    assert_eq!(parse_cidr("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
    assert!(parse_cidr("10.0.0.0/33").is_err());
    assert!(parse_cidr("").is_err());
}

#[test]
fn admin_api_source_with_defaults() {
    let c = Config::from_yaml(
        "router:\n  routing:\n    admin_api: {url: \"http://127.0.0.1:9/snapshot\", token: \" s3cret \"}\n    state_dir: /tmp/x\n",
    )
    .unwrap();
    let api = c.routing.admin_api.unwrap();
    assert_eq!(api.url, "http://127.0.0.1:9/snapshot");
    assert_eq!(api.poll_interval, Duration::from_secs(5));
    assert_eq!(api.timeout, Duration::from_secs(3));
    assert_eq!(api.token.as_deref(), Some("s3cret"));
    assert_eq!(api.max_body_bytes, 256 << 20);
    assert_eq!(c.routing.file, None);
    assert_eq!(c.routing.state_dir, Some(PathBuf::from("/tmp/x")));
    assert_eq!(c.routing.guard, GuardConfig::default());
}

#[test]
fn admin_api_errors_name_their_keys() {
    let errors = errors_of(
        "router:
  routing:
    file: r.yaml
    admin_api: {url: \"ftp://x\", poll_interval_secs: 0, token: a, token_file: /nonexistent}
    guard: {max_removed_fraction: 1.5}
  management: {token_file: /nonexistent/token}
",
    );
    assert_eq!(
        errors,
        vec![
            "router.routing.admin_api.url: not an http:// or https:// URL",
            "router.routing.admin_api.poll_interval_secs: must be a whole number from 1 to 3600",
            "router.routing.admin_api.token_file: `token` and `token_file` are alternatives: configure one",
            "router.routing.admin_api: `file` and `admin_api` are alternatives: configure one",
            "router.routing.guard.max_removed_fraction: must be a number from 0 to 1",
            "router.management.token_file: cannot read /nonexistent/token: No such file or directory (os error 2)",
        ]
    );
}

#[test]
fn token_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "abc123\n").unwrap();
    let c = Config::from_yaml(&format!(
        "router:\n  routing: {{file: r}}\n  management: {{token_file: {}}}\n",
        path.display()
    ))
    .unwrap();
    assert_eq!(c.management.token.as_deref(), Some("abc123"));
    std::fs::write(&path, "\n").unwrap();
    let errors = errors_of(&format!(
        "router:\n  routing: {{file: r}}\n  management: {{token_file: {}}}\n",
        path.display()
    ));
    assert_eq!(
        errors,
        vec!["router.management.token_file: the token must be non-empty visible ASCII"]
    );
}

#[test]
fn health_defaults_and_bounds() {
    let c = Config::from_yaml("router:\n  routing: {file: r}\n").unwrap();
    assert_eq!(c.health, HealthConfig::default());
    assert_eq!(c.health.expected_body.as_deref(), Some("OK"));
    let c = Config::from_yaml(
        "router:\n  routing: {file: r}\n  health: {enabled: false, expected_body: \"\", fall: 5}\n",
    )
    .unwrap();
    assert!(!c.health.enabled);
    assert_eq!(c.health.expected_body, None);
    assert_eq!(c.health.fall, 5);
    assert_eq!(
        errors_of("router:\n  routing: {file: r}\n  health: {interval_ms: 500, timeout_ms: 900, rise: 0}\n"),
        vec![
            "router.health.timeout_ms: must not exceed interval_ms",
            "router.health.rise: must be a whole number from 1 to 100",
        ]
    );
}

#[test]
fn stream_health_keys_are_validated_by_path() {
    let errors = errors_of(
        "router:\n  routing:\n    file: r.yaml\n  stream_health:\n    stall_factor: 0\n    probes_per_sec: -1\n    hot_set_size: 20001\n    probe_timeout_ms: 5\n    bogus: 1\n",
    );
    for key in [
        "router.stream_health.stall_factor",
        "router.stream_health.probes_per_sec",
        "router.stream_health.hot_set_size",
        "router.stream_health.probe_timeout_ms",
        "router.stream_health.bogus",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(key)),
            "{key} not named in {errors:?}"
        );
    }
    let config = Config::from_yaml(
        "router:\n  routing:\n    file: r.yaml\n  health:\n    enabled: false\n  stream_health:\n    stall_factor: 5\n",
    )
    .unwrap();
    assert_eq!(config.stream_health.stall_factor, 5);
    assert!(!config.stream_health_on(), "off with edge health off");
    assert!(Config::default().stream_health_on());
}

#[test]
fn routes_default_to_redirect_and_weighted_random() {
    use crate::routing::RouteKind;
    let c = Config::from_yaml(
        "router:\n  routing: {file: r}\n  routes:\n    vod: {mode: proxy, selection: consistent, spread: 2}\n",
    )
    .unwrap();
    assert_eq!(*c.routes.get(RouteKind::Live), RouteConfig::default());
    assert_eq!(
        *c.routes.get(RouteKind::Vod),
        RouteConfig {
            mode: Mode::Proxy,
            selection: SelectionPolicy::Consistent,
            spread: 2,
            location_scheme: crate::config::LocationScheme::Edge,
        }
    );
    assert!(c.routes.any_proxy());
    assert_eq!(c.proxy, ProxyConfig::default());
    assert_eq!(
        errors_of("router:\n  routing: {file: r}\n  routes:\n    live: {mode: tunnel, spread: 9}\n    dvr: {}\n"),
        vec![
            "router.routes.live.mode: must be `redirect`, `proxy` or `manifest`",
            "router.routes.live.spread: must be a whole number from 1 to 8",
            "router.routes.dvr: unknown key",
        ]
    );
}

#[test]
fn shipped_configs_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let production = std::fs::read_to_string(root.join("conf/cti-kaltura.production.yaml"))
        .unwrap()
        .replace("/etc/cti-kaltura/admin-token", &token.display().to_string())
        .replace(
            "/etc/cti-kaltura/management-token",
            &token.display().to_string(),
        );
    let c = Config::from_yaml(&production).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.routing.admin_api.is_some());
    assert_eq!(
        c.routes.get(crate::routing::RouteKind::Live).selection,
        SelectionPolicy::Consistent
    );
    let demo = std::fs::read_to_string(root.join("conf/cti-kaltura.yaml")).unwrap();
    Config::from_yaml(&demo).unwrap_or_else(|e| panic!("{e}"));
}

/// Each documented key's default as `docs/configuration.md` writes it, rendered from
/// `Config::default()`.
fn defaults_in_code() -> Vec<(&'static str, String)> {
    let d = Config::default();
    let api = AdminApiConfig::default();
    let list = |items: Vec<String>| {
        let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let none = || "none".to_string();
    let secs = |t: Duration| t.as_secs().to_string();
    let millis = |t: Duration| t.as_millis().to_string();
    let live = d.routes.0[0];
    for other in &d.routes.0[1..] {
        assert_eq!(
            *other, live,
            "the docs give one default for all four route kinds"
        );
    }
    vec![
        (
            "router.listen",
            list(d.listen.iter().map(|a| a.to_string()).collect()),
        ),
        (
            "router.management_listen",
            format!("\"{}\"", d.management_listen),
        ),
        ("router.routing.file", none()),
        (
            "router.routing.watch_interval_secs",
            d.routing
                .watch_interval
                .map_or(0, |t| t.as_secs())
                .to_string(),
        ),
        ("router.routing.admin_api.url", none()),
        (
            "router.routing.admin_api.poll_interval_secs",
            secs(api.poll_interval),
        ),
        ("router.routing.admin_api.timeout_secs", secs(api.timeout)),
        ("router.routing.admin_api.token", none()),
        ("router.routing.admin_api.token_file", none()),
        (
            "router.routing.admin_api.max_body_bytes",
            api.max_body_bytes.to_string(),
        ),
        (
            "router.routing.admin_api.max_backoff_secs",
            secs(api.max_backoff),
        ),
        (
            "router.routing.admin_api.long_poll_wait_secs",
            secs(api.long_poll_wait),
        ),
        ("router.routing.state_dir", none()),
        (
            "router.routing.guard.enabled",
            d.routing.guard.enabled.to_string(),
        ),
        (
            "router.routing.guard.max_removed_fraction",
            d.routing.guard.max_removed_fraction.to_string(),
        ),
        ("router.management.token", none()),
        ("router.management.token_file", none()),
        (
            "router.client_ip.trusted_proxies",
            list(
                d.client_ip
                    .trusted_proxies
                    .0
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
            ),
        ),
        ("router.health.enabled", d.health.enabled.to_string()),
        ("router.health.interval_ms", millis(d.health.interval)),
        ("router.health.timeout_ms", millis(d.health.timeout)),
        ("router.health.fall", d.health.fall.to_string()),
        ("router.health.rise", d.health.rise.to_string()),
        (
            "router.health.expected_status",
            d.health.expected_status.to_string(),
        ),
        (
            "router.health.expected_body",
            format!("\"{}\"", d.health.expected_body.clone().unwrap_or_default()),
        ),
        ("router.health.panic_mode", d.health.panic_mode.to_string()),
        ("router.health.tls_verify", d.health.tls_verify.to_string()),
        (
            "router.stream_health.enabled",
            d.stream_health.enabled.to_string(),
        ),
        (
            "router.stream_health.stall_factor",
            d.stream_health.stall_factor.to_string(),
        ),
        (
            "router.stream_health.probes_per_sec",
            d.stream_health.probes_per_sec.to_string(),
        ),
        (
            "router.stream_health.hot_set_size",
            d.stream_health.hot_set_size.to_string(),
        ),
        (
            "router.stream_health.hot_ttl_secs",
            secs(d.stream_health.hot_ttl),
        ),
        (
            "router.stream_health.probe_timeout_ms",
            millis(d.stream_health.probe_timeout),
        ),
        (
            "router.stream_health.max_playlist_bytes",
            d.stream_health.max_playlist_bytes.to_string(),
        ),
        (
            "router.stream_health.min_round_interval_ms",
            millis(d.stream_health.min_round_interval),
        ),
        (
            "router.stream_health.passive",
            d.stream_health.passive.to_string(),
        ),
        (
            "router.http.keepalive_timeout_secs",
            secs(d.http.keepalive_timeout),
        ),
        (
            "router.http.header_timeout_secs",
            secs(d.http.header_timeout),
        ),
        (
            "router.http.max_connections_per_client",
            d.http.max_connections_per_client.to_string(),
        ),
        (
            "router.http.max_uri_bytes",
            d.http.max_uri_bytes.to_string(),
        ),
        (
            "router.http.max_header_count",
            d.http.max_header_count.to_string(),
        ),
        (
            "router.http.max_header_bytes",
            d.http.max_header_bytes.to_string(),
        ),
        (
            "router.http.lingering_time_secs",
            secs(d.http.lingering_time),
        ),
        (
            "router.http.lingering_timeout_secs",
            secs(d.http.lingering_timeout),
        ),
        ("router.http.defer_accept_secs", secs(d.http.defer_accept)),
        (
            "router.redirect.append_query_string",
            d.redirect.append_query_string.to_string(),
        ),
        (
            "router.routes.live.mode",
            match live.mode {
                Mode::Redirect => "redirect",
                Mode::Proxy => "proxy",
                Mode::Manifest => "manifest",
            }
            .to_string(),
        ),
        (
            "router.routes.live.selection",
            match live.selection {
                SelectionPolicy::WeightedRandom => "weighted_random",
                SelectionPolicy::Consistent => "consistent",
            }
            .to_string(),
        ),
        ("router.routes.live.spread", live.spread.to_string()),
        (
            "router.routes.live.location_scheme",
            match live.location_scheme {
                crate::config::LocationScheme::Edge => "edge",
                crate::config::LocationScheme::Https => "https",
                crate::config::LocationScheme::Request => "request",
            }
            .to_string(),
        ),
        (
            "router.proxy.connect_timeout_ms",
            millis(d.proxy.connect_timeout),
        ),
        ("router.proxy.read_timeout_ms", millis(d.proxy.read_timeout)),
        (
            "router.proxy.write_timeout_ms",
            millis(d.proxy.write_timeout),
        ),
        ("router.proxy.tls_verify", d.proxy.tls_verify.to_string()),
        (
            "router.proxy.max_manifest_bytes",
            d.proxy.max_manifest_bytes.to_string(),
        ),
        ("router.proxy.relay", d.proxy.relay.to_string()),
        (
            "router.access_log.enabled",
            d.access_log.enabled.to_string(),
        ),
        (
            "router.access_log.format",
            if d.access_log.json { "json" } else { "text" }.to_string(),
        ),
        (
            "router.tls.listen",
            list(d.tls.listen.iter().map(|a| a.to_string()).collect()),
        ),
        ("router.tls.certificates", none()),
        (
            "router.tls.watch_interval_secs",
            d.tls.watch_interval.map_or(0, |w| w.as_secs()).to_string(),
        ),
        (
            "router.tls.handshake_timeout_secs",
            secs(d.tls.handshake_timeout),
        ),
        (
            "router.tls.session_cache_size",
            d.tls.session_cache_size.to_string(),
        ),
        ("router.tls.h2.enabled", d.tls.h2.enabled.to_string()),
        (
            "router.tls.h2.max_concurrent_streams",
            d.tls.h2.max_concurrent_streams.to_string(),
        ),
        (
            "router.tls.h2.max_header_list_bytes",
            d.tls.h2.max_header_list_bytes.to_string(),
        ),
        (
            "router.tls.h2.max_pending_reset_streams",
            d.tls.h2.max_pending_reset_streams.to_string(),
        ),
        (
            "router.tls.h2.max_local_error_resets",
            d.tls.h2.max_local_error_resets.to_string(),
        ),
    ]
}

/// The text between the first pair of backticks, if any.
fn first_code(cell: &str) -> Option<&str> {
    let (_, rest) = cell.split_once('`')?;
    rest.split_once('`').map(|(code, _)| code)
}

/// `(key, default)` of every row of the key tables in `docs/configuration.md`: a default cell
/// that starts with "none" is `none`, otherwise its first code span.
fn documented_defaults() -> Vec<(String, String)> {
    let docs = include_str!("../../docs/configuration.md");
    docs.lines()
        .filter(|line| line.starts_with("| `router."))
        .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>())
        // The key tables have six columns (the reload table has three).
        .filter(|cells| cells.len() >= 8)
        .map(|cells| {
            let key = first_code(cells[1]).expect("a key").to_string();
            let default = if cells[3].starts_with("none") {
                "none".to_string()
            } else {
                first_code(cells[3])
                    .unwrap_or_else(|| panic!("{key}: no default in {:?}", cells[3]))
                    .to_string()
            };
            (key, default)
        })
        .collect()
}

#[test]
fn the_documented_defaults_are_the_code_defaults() {
    let documented = documented_defaults();
    let code = defaults_in_code();
    let doc_keys: Vec<&str> = documented.iter().map(|(k, _)| k.as_str()).collect();
    let code_keys: Vec<&str> = code.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        doc_keys, code_keys,
        "documented keys differ from the code's"
    );
    for ((key, doc), (_, code)) in documented.iter().zip(&code) {
        assert_eq!(
            doc, code,
            "{key}: docs/configuration.md says {doc}, the code {code}"
        );
    }
    // The file's readers take the same defaults.
    let minimal = Config::from_yaml("router:\n  routing:\n    file: r.yaml\n").unwrap();
    let d = Config::default();
    assert_eq!(minimal.http, d.http);
    assert_eq!(minimal.health, d.health);
    assert_eq!(minimal.stream_health, d.stream_health);
    assert_eq!(minimal.proxy, d.proxy);
    assert_eq!(minimal.routes, d.routes);
    assert_eq!(minimal.access_log, d.access_log);
    assert_eq!(minimal.routing.guard, d.routing.guard);
    assert_eq!(minimal.routing.watch_interval, d.routing.watch_interval);
    assert_eq!(
        minimal.client_ip.trusted_proxies.0,
        d.client_ip.trusted_proxies.0
    );
}

#[test]
fn tls_section_is_read_and_checked_by_key_path() {
    let c = Config::from_yaml(
        "router:\n  routing: {file: r}\n  tls:\n    listen: [\"127.0.0.1:4443\", \"[::1]:4443\"]\n    certificates:\n      - {cert_file: a.pem, key_file: a.key}\n      - {cert_file: b.pem, key_file: b.key, ocsp_file: b.ocsp}\n    watch_interval_secs: 0\n    h2: {max_concurrent_streams: 10}\n  routes:\n    live: {location_scheme: https}\n    vod: {location_scheme: request}\n",
    )
    .unwrap();
    assert_eq!(c.tls.listen.len(), 2);
    assert_eq!(c.tls.certificates.len(), 2);
    assert_eq!(c.tls.certificates[0].cert_file, PathBuf::from("a.pem"));
    assert_eq!(
        c.tls.certificates[1].ocsp_file,
        Some(PathBuf::from("b.ocsp"))
    );
    assert_eq!(c.tls.watch_interval, None);
    assert_eq!(c.tls.h2.max_concurrent_streams, 10);
    assert_eq!(c.tls.h2.max_pending_reset_streams, 20);
    use crate::config::LocationScheme;
    use crate::vocab::RouteKind;
    assert_eq!(
        c.routes.get(RouteKind::Live).location_scheme,
        LocationScheme::Https
    );
    assert_eq!(
        c.routes.get(RouteKind::Vod).location_scheme,
        LocationScheme::Request
    );
    assert_eq!(
        c.routes.get(RouteKind::Static).location_scheme,
        LocationScheme::Edge
    );
    assert_eq!(
        errors_of(
            "router:\n  listen: [\"127.0.0.1:80\"]\n  routing: {file: r}\n  tls:\n    listen: [\"127.0.0.1:80\", \"nope\"]\n    certificates:\n      - {cert_file: a.pem}\n      - {key_file: \"\", cert_file: c.pem, pem: x}\n    h2: {max_concurrent_streams: 0, push: true}\n  routes:\n    live: {location_scheme: ftp}\n"
        ),
        vec![
            "router.routes.live.location_scheme: must be `edge`, `https` or `request`",
            "router.tls.listen[1]: not an addr:port (use 0.0.0.0:4001 or [::]:4001)",
            "router.tls.certificates[0].key_file: missing: a PEM file",
            "router.tls.certificates[1].key_file: must be a path",
            "router.tls.certificates[1].pem: unknown key",
            "router.tls.h2.max_concurrent_streams: must be a whole number from 1 to 10000",
            "router.tls.h2.push: unknown key",
            "router.tls.listen[0]: must differ from every router.listen address and router.management_listen",
        ]
    );
    let no_certs =
        errors_of("router:\n  routing: {file: r}\n  tls: {listen: [\"127.0.0.1:4443\"]}\n");
    assert_eq!(
        no_certs,
        vec!["router.tls.certificates: missing: TLS listeners need at least one certificate"]
    );
}
