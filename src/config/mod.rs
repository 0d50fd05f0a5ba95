//! Router configuration: the `router:` section of the one YAML file, validated into typed
//! settings with every problem reported by its key path.

mod tls;
pub mod yaml_walk;

pub use crate::vocab::parse_cidr;
pub use tls::{CertificateFiles, H2Config, TlsConfig};
pub use yaml_walk::ConfigError;
use yaml_walk::{Errors, Section};

use ipnet::IpNet;
use serde_yaml::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default public listener (the original's port).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:4001";
/// Default management listener: loopback only.
pub const DEFAULT_MANAGEMENT_LISTEN: &str = "127.0.0.1:4002";
/// Default proxies whose `X-Real-IP` is believed: loopback only.
pub const DEFAULT_TRUSTED_PROXIES: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// The validated router settings. Its `Default` (and each section's) is the documented
/// default: the file's readers, the routing policy, the CLI and every fallback derive from it,
/// and a test checks `docs/configuration.md` against it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public listeners (`router.listen`).
    pub listen: Vec<SocketAddr>,
    /// Management listener (`router.management_listen`).
    pub management_listen: SocketAddr,
    pub routing: RoutingConfig,
    pub management: ManagementConfig,
    pub client_ip: ClientIpConfig,
    pub health: HealthConfig,
    pub stream_health: StreamHealthConfig,
    pub http: HttpConfig,
    pub redirect: RedirectConfig,
    pub routes: RoutesConfig,
    pub proxy: ProxyConfig,
    pub access_log: AccessLogConfig,
    /// TLS listeners and certificates (`router.tls`).
    pub tls: TlsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![DEFAULT_LISTEN.parse().expect("valid default")],
            management_listen: DEFAULT_MANAGEMENT_LISTEN.parse().expect("valid default"),
            routing: RoutingConfig::default(),
            management: ManagementConfig::default(),
            client_ip: ClientIpConfig::default(),
            health: HealthConfig::default(),
            stream_health: StreamHealthConfig::default(),
            http: HttpConfig::default(),
            redirect: RedirectConfig::default(),
            routes: RoutesConfig::default(),
            proxy: ProxyConfig::default(),
            access_log: AccessLogConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// Where routing data comes from (`router.routing`): exactly one of `file` and `admin_api`
/// (the default names neither; a file must name one).
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Snapshot file, JSON or YAML (`router.routing.file`).
    pub file: Option<PathBuf>,
    /// How often the file's modification is checked; `None` = only on SIGHUP.
    pub watch_interval: Option<Duration>,
    /// The admin API source (`router.routing.admin_api`).
    pub admin_api: Option<AdminApiConfig>,
    /// Where the last accepted admin snapshot is kept (`router.routing.state_dir`).
    pub state_dir: Option<PathBuf>,
    /// Blast-radius guard for admin snapshots (`router.routing.guard`).
    pub guard: GuardConfig,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            file: None,
            watch_interval: Some(Duration::from_secs(2)),
            admin_api: None,
            state_dir: None,
            guard: GuardConfig::default(),
        }
    }
}

/// The admin API source (`router.routing.admin_api`).
#[derive(Debug, Clone)]
pub struct AdminApiConfig {
    /// The snapshot endpoint (`url`).
    pub url: String,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Bearer token, from `token` or (better) `token_file`.
    pub token: Option<String>,
    /// Bodies larger than this are refused (`max_body_bytes`).
    pub max_body_bytes: u64,
    /// Longest wait between retries after failures (`max_backoff_secs`).
    pub max_backoff: Duration,
    /// How long a poll asks an API that long-polls to hold it until the data changes
    /// (`long_poll_wait_secs`); zero turns long-poll off.
    pub long_poll_wait: Duration,
}

impl Default for AdminApiConfig {
    /// Every key's default; `url` has none (it is required).
    fn default() -> Self {
        AdminApiConfig {
            url: String::new(),
            poll_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            token: None,
            max_body_bytes: 256 << 20,
            max_backoff: Duration::from_secs(60),
            long_poll_wait: Duration::from_secs(25),
        }
    }
}

/// Refuses admin snapshots that would remove too much (`router.routing.guard`).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    pub enabled: bool,
    /// Largest fraction of subnets or of eligible edges one snapshot may remove.
    pub max_removed_fraction: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            max_removed_fraction: 0.5,
        }
    }
}

/// Management endpoint protection (`router.management`).
#[derive(Debug, Clone, Default)]
pub struct ManagementConfig {
    /// Bearer token required by the POST endpoints, from `token` or `token_file`.
    pub token: Option<String>,
}

/// Client address rules (`router.client_ip`).
#[derive(Debug, Clone, Default)]
pub struct ClientIpConfig {
    pub trusted_proxies: TrustedProxies,
}

/// Networks whose `X-Real-IP` header is believed.
#[derive(Debug, Clone)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl Default for TrustedProxies {
    /// Loopback only.
    fn default() -> Self {
        TrustedProxies(
            DEFAULT_TRUSTED_PROXIES
                .iter()
                .map(|s| parse_cidr(s).expect("valid default"))
                .collect(),
        )
    }
}

impl TrustedProxies {
    /// Believes no one.
    pub fn none() -> Self {
        TrustedProxies(Vec::new())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Active health checks of edges (`router.health`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// `false` turns active checks off (admin availability still applies).
    pub enabled: bool,
    /// Time between the starts of two check rounds.
    pub interval: Duration,
    /// Per-check timeout (at most the interval, so rounds never overlap or drift).
    pub timeout: Duration,
    /// Consecutive failures that mark an edge down.
    pub fall: u32,
    /// Consecutive successes that mark it up again.
    pub rise: u32,
    /// The status a healthy edge answers.
    pub expected_status: u16,
    /// The exact body a healthy edge answers; `None` accepts any body.
    pub expected_body: Option<String>,
    /// Route among a region's admin-eligible edges when health would leave it none.
    pub panic_mode: bool,
    /// Verify TLS certificates of edges checked over https (port 443).
    pub tls_verify: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(800),
            fall: 2,
            rise: 2,
            expected_status: 200,
            expected_body: Some("OK".to_string()),
            panic_mode: true,
            tls_verify: true,
        }
    }
}

/// The largest `router.stream_health.hot_set_size` (the hot-set table has room for it).
pub const MAX_HOT_SET: usize = 20_000;

/// Per (edge, stream) liveness of live streams (`router.stream_health`); on only while
/// `router.health.enabled` is true as well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHealthConfig {
    /// `false` turns stream health off (no probes, no passive reading, nothing avoided).
    pub enabled: bool,
    /// A copy is stalled when its position has not changed for this many target durations.
    pub stall_factor: u32,
    /// Most probes started per second, over all edges and streams.
    pub probes_per_sec: u32,
    /// Most (stream, region) entries probed: the streams players asked for most recently.
    pub hot_set_size: usize,
    /// A stream nobody asked for in this long leaves the hot set.
    pub hot_ttl: Duration,
    /// Per probe (both requests when a multivariant playlist is followed).
    pub probe_timeout: Duration,
    /// A playlist or MPD larger than this is not read (probe or proxied).
    pub max_playlist_bytes: usize,
    /// Shortest time between the starts of two probe rounds over the hot set.
    pub min_round_interval: Duration,
    /// Read live playlists proxied through the router too.
    pub passive: bool,
}

impl Default for StreamHealthConfig {
    fn default() -> Self {
        StreamHealthConfig {
            enabled: true,
            stall_factor: 3,
            probes_per_sec: 50,
            hot_set_size: 1000,
            hot_ttl: Duration::from_secs(60),
            probe_timeout: Duration::from_millis(2000),
            max_playlist_bytes: 1024 * 1024,
            min_round_interval: Duration::from_millis(1000),
            passive: true,
        }
    }
}

impl Config {
    /// Whether stream health runs: its own switch and edge health's.
    pub fn stream_health_on(&self) -> bool {
        self.health.enabled && self.stream_health.enabled
    }
}

/// How a route kind is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `302` to the edge (the original's behaviour).
    #[default]
    Redirect,
    /// Fetch from the edge and stream the answer back (players that cannot follow redirects).
    /// Manifests are rewritten so that the whole session comes back through the router.
    Proxy,
    /// Fetch the manifest from the edge and answer it with every reference made absolute on
    /// that edge: the player follows no redirect, and segments go straight to the edge.
    Manifest,
}

/// How an edge is chosen among a region's eligible edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionPolicy {
    /// At random by weight (the original's behaviour): even load, every edge caches everything.
    #[default]
    WeightedRandom,
    /// Weighted rendezvous hash of the content key: each item stays on few edges (hot caches).
    Consistent,
}

/// Per route kind settings (`router.routes.{live,catchup,vod,static}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteConfig {
    pub mode: Mode,
    pub selection: SelectionPolicy,
    /// With `consistent`: spread each content key over this many edges (1-8).
    pub spread: usize,
    /// The scheme (and port rule) of the redirect's Location.
    pub location_scheme: LocationScheme,
}

/// The scheme of a redirect's Location (`router.routes.<kind>.location_scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationScheme {
    /// As the edge's port says: `https` for 443, `http` otherwise (VOD and static: `http`).
    Edge,
    /// Always `https`.
    Https,
    /// The scheme of the player's own request.
    Request,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            mode: Mode::Redirect,
            selection: SelectionPolicy::WeightedRandom,
            spread: 1,
            location_scheme: LocationScheme::Edge,
        }
    }
}

/// The four route kinds' settings, indexed by [`crate::vocab::RouteKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoutesConfig(pub [RouteConfig; 4]);

impl RoutesConfig {
    pub fn get(&self, kind: crate::vocab::RouteKind) -> &RouteConfig {
        &self.0[kind as usize]
    }

    pub fn any_proxy(&self) -> bool {
        self.0.iter().any(|r| r.mode == Mode::Proxy)
    }

    /// Whether the router fetches from edges for this kind (`proxy` or `manifest`).
    pub fn fetches(&self, kind: crate::vocab::RouteKind) -> bool {
        matches!(self.get(kind).mode, Mode::Proxy | Mode::Manifest)
    }
}

/// Proxy mode settings (`router.proxy`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub connect_timeout: Duration,
    /// Longest wait for the edge between two reads.
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// Verify edge TLS certificates (edges on port 443).
    pub tls_verify: bool,
    /// Manifests (HLS playlists, DASH MPDs) up to this size are rewritten; larger ones pass
    /// through unmodified.
    pub max_manifest_bytes: usize,
    /// Plain segment and file requests go through the router's own HTTP/1.1 relay
    /// (`server::relay`); off, every proxied request goes through the Pingora adapter.
    pub relay: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_millis(1000),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            tls_verify: true,
            max_manifest_bytes: 2 << 20,
            relay: true,
        }
    }
}

/// The access log (`router.access_log`): one line per request at target `access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessLogConfig {
    pub enabled: bool,
    /// JSON lines instead of space-separated `key=value` text.
    pub json: bool,
}

/// Client connection settings (`router.http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Idle time after which a keep-alive connection is closed.
    pub keepalive_timeout: Duration,
    /// Time a client has to send a whole request head, from the connection's start or from
    /// the first byte of a later request; then the connection is closed.
    pub header_timeout: Duration,
    /// Most open connections from one address (trusted proxies exempt); 0 means no limit.
    pub max_connections_per_client: usize,
    /// Longest request target (path and query) answered; longer gets 414.
    pub max_uri_bytes: usize,
    /// Most request headers answered; more gets 431.
    pub max_header_count: usize,
    /// Largest total of header names and values answered; larger gets 431.
    pub max_header_bytes: usize,
    /// Lingering close: the longest a connection closed while its client may still be sending
    /// is read (and discarded) after the answer, so the answer is not destroyed by a reset.
    pub lingering_time: Duration,
    /// Lingering close: the longest wait for more bytes from the client before closing.
    pub lingering_timeout: Duration,
    /// `TCP_DEFER_ACCEPT` on the public listeners: a connection is handed to the router only
    /// once its first bytes arrived (or after about this long); zero: off.
    pub defer_accept: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            keepalive_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections_per_client: 1000,
            max_uri_bytes: 8192,
            max_header_count: 64,
            max_header_bytes: 16_384,
            lingering_time: Duration::from_secs(30),
            lingering_timeout: Duration::from_secs(5),
            defer_accept: Duration::ZERO,
        }
    }
}

/// How redirects are built (`router.redirect`).
#[derive(Debug, Clone)]
pub struct RedirectConfig {
    /// Append the request's query string to the Location.
    pub append_query_string: bool,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            append_query_string: true,
        }
    }
}

/// Why a config could not be loaded: every problem found.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The text of the config file at `path`; an error names the file. Shared by every binary's
/// config loader.
pub fn read_config_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            message: format!("cannot read config file: {e}"),
        }])
    })
}

/// A config file's YAML document; an error is the file's (`(file)`).
pub fn parse_config_yaml(text: &str) -> Result<Value, ConfigErrors> {
    serde_yaml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: "(file)".into(),
            message: format!("not valid YAML: {e}"),
        }])
    })
}

impl Config {
    /// Reads and validates the file at `path`; relative paths inside resolve as described in
    /// [`resolve_relative`].
    pub fn load_from_yaml(path: &Path) -> Result<Config, ConfigErrors> {
        let text = read_config_file(path)?;
        let mut config = Config::from_yaml(&text)?;
        let dir = path.parent();
        config.routing.file = config.routing.file.map(|f| resolve_relative(&f, dir));
        config.routing.state_dir = config.routing.state_dir.map(|d| resolve_relative(&d, dir));
        for cert in &mut config.tls.certificates {
            cert.cert_file = resolve_relative(&cert.cert_file, dir);
            cert.key_file = resolve_relative(&cert.key_file, dir);
            cert.ocsp_file = cert.ocsp_file.take().map(|f| resolve_relative(&f, dir));
        }
        Ok(config)
    }

    /// Parses and validates the whole YAML document; only the `router:` section is read.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigErrors> {
        let doc = parse_config_yaml(text)?;
        let mut errors = Errors::default();
        let router = match &doc {
            Value::Mapping(map) => map.get("router"),
            _ => {
                errors.push("(file)", "expected a YAML mapping at the top level");
                None
            }
        };
        if router.is_none() {
            if errors.0.is_empty() {
                errors.push(
                    "router",
                    "missing: every router setting lives under `router:`",
                );
            }
            return Err(ConfigErrors(errors.0));
        }
        let config = read_router(router, &mut errors);
        match config {
            Some(config) if errors.0.is_empty() => Ok(config),
            _ => Err(ConfigErrors(errors.0)),
        }
    }
}

/// A relative snapshot path is taken from the working directory when a file is there, and
/// otherwise from the config file's directory (so `/etc/cti-kaltura/cti-kaltura.yaml` can say
/// `file: routing.yaml` whatever the service's working directory is).
pub fn resolve_relative(file: &Path, config_dir: Option<&Path>) -> PathBuf {
    if file.is_absolute() {
        return file.to_path_buf();
    }
    // Made absolute: in daemon mode the working directory becomes `/` after start-up.
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.join(file).exists() {
        return cwd.join(file);
    }
    match config_dir {
        // Not in the working directory: the config's directory, even before the file exists
        // (it is picked up once it appears there).
        Some(dir) => cwd.join(dir).join(file),
        None => cwd.join(file),
    }
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "not an addr:port (use 0.0.0.0:4001 or [::]:4001)".to_string())
}

fn read_router(value: Option<&Value>, errors: &mut Errors) -> Option<Config> {
    let mut router = Section::new("router", value, errors);

    let d = Config::default();
    let listen = router
        .list("listen", errors, parse_socket_addr)
        .unwrap_or_else(|| d.listen.clone());
    if listen.is_empty() {
        errors.push(
            router.key_path("listen"),
            "must name at least one addr:port",
        );
    }
    let management_listen = match router.string("management_listen", errors) {
        Some(s) => match parse_socket_addr(s) {
            Ok(addr) => addr,
            Err(message) => {
                errors.push(router.key_path("management_listen"), message);
                d.management_listen
            }
        },
        None => d.management_listen,
    };
    if listen.contains(&management_listen) {
        errors.push(
            router.key_path("management_listen"),
            "must differ from every router.listen address",
        );
    }

    let routing = read_routing(router.section("routing", errors), errors);
    let mut management = router.section("management", errors);
    let management_token = read_token(&mut management, errors);
    management.finish(errors);

    let mut client_ip = router.section("client_ip", errors);
    let trusted_proxies = client_ip
        .list("trusted_proxies", errors, parse_cidr)
        .map_or_else(|| d.client_ip.trusted_proxies.clone(), TrustedProxies);
    client_ip.finish(errors);

    let health = read_health(router.section("health", errors), errors);
    let stream_health = read_stream_health(router.section("stream_health", errors), errors);

    let http_config = read_http(router.section("http", errors), errors);

    let mut redirect = router.section("redirect", errors);
    let append_query_string = redirect.bool(
        "append_query_string",
        d.redirect.append_query_string,
        errors,
    );
    redirect.finish(errors);

    let routes = read_routes(router.section("routes", errors), errors);
    let proxy = read_proxy(router.section("proxy", errors), errors);
    let mut access_log = router.section("access_log", errors);
    let access_log_config = AccessLogConfig {
        enabled: access_log.bool("enabled", d.access_log.enabled, errors),
        json: match access_log.string("format", errors) {
            None | Some("text") => false,
            Some("json") => true,
            Some(_) => {
                errors.push(access_log.key_path("format"), "must be `text` or `json`");
                false
            }
        },
    };
    access_log.finish(errors);
    let tls = tls::read_tls(router.section("tls", errors), errors);
    for (i, addr) in tls.listen.iter().enumerate() {
        if listen.contains(addr) || *addr == management_listen {
            errors.push(
                format!("router.tls.listen[{i}]"),
                "must differ from every router.listen address and router.management_listen",
            );
        }
    }

    router.finish(errors);
    Some(Config {
        listen,
        management_listen,
        routing: routing?,
        management: ManagementConfig {
            token: management_token,
        },
        client_ip: ClientIpConfig { trusted_proxies },
        health,
        stream_health,
        http: http_config,
        redirect: RedirectConfig {
            append_query_string,
        },
        routes,
        proxy,
        access_log: access_log_config,
        tls,
    })
}

/// A whole number of `unit`s within `range`, as a duration.
fn duration_in(
    section: &mut Section<'_>,
    key: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
    unit: Duration,
    errors: &mut Errors,
) -> Duration {
    let default_units = (default.as_nanos() / unit.as_nanos()) as u64;
    unit * section.u64_in(key, default_units, range, errors) as u32
}

/// A whole number of seconds within `range`, as a duration.
fn secs_in(
    section: &mut Section<'_>,
    key: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Errors,
) -> Duration {
    duration_in(section, key, default, range, Duration::from_secs(1), errors)
}

/// A whole number of milliseconds within `range`, as a duration.
fn millis_in(
    section: &mut Section<'_>,
    key: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Errors,
) -> Duration {
    duration_in(
        section,
        key,
        default,
        range,
        Duration::from_millis(1),
        errors,
    )
}

fn read_http(mut http: Section<'_>, errors: &mut Errors) -> HttpConfig {
    let d = HttpConfig::default();
    let count = |http: &mut Section<'_>, key, default: usize, range, errors: &mut Errors| {
        http.u64_in(key, default as u64, range, errors) as usize
    };
    let config = HttpConfig {
        keepalive_timeout: secs_in(
            &mut http,
            "keepalive_timeout_secs",
            d.keepalive_timeout,
            1..=3600,
            errors,
        ),
        header_timeout: secs_in(
            &mut http,
            "header_timeout_secs",
            d.header_timeout,
            1..=300,
            errors,
        ),
        max_connections_per_client: count(
            &mut http,
            "max_connections_per_client",
            d.max_connections_per_client,
            0..=1_000_000,
            errors,
        ),
        max_uri_bytes: count(
            &mut http,
            "max_uri_bytes",
            d.max_uri_bytes,
            64..=65_000,
            errors,
        ),
        max_header_count: count(
            &mut http,
            "max_header_count",
            d.max_header_count,
            1..=256,
            errors,
        ),
        max_header_bytes: count(
            &mut http,
            "max_header_bytes",
            d.max_header_bytes,
            256..=1_000_000,
            errors,
        ),
        lingering_time: secs_in(
            &mut http,
            "lingering_time_secs",
            d.lingering_time,
            1..=300,
            errors,
        ),
        lingering_timeout: secs_in(
            &mut http,
            "lingering_timeout_secs",
            d.lingering_timeout,
            1..=60,
            errors,
        ),
        defer_accept: secs_in(
            &mut http,
            "defer_accept_secs",
            d.defer_accept,
            0..=60,
            errors,
        ),
    };
    http.finish(errors);
    config
}

fn read_routes(mut routes: Section<'_>, errors: &mut Errors) -> RoutesConfig {
    let mut config = RoutesConfig::default();
    for (i, kind) in ["live", "catchup", "vod", "static"].into_iter().enumerate() {
        let d = config.0[i];
        let mut route = routes.section(kind, errors);
        let mode = match route.string("mode", errors) {
            None => d.mode,
            Some("redirect") => Mode::Redirect,
            Some("proxy") => Mode::Proxy,
            Some("manifest") => Mode::Manifest,
            Some(_) => {
                errors.push(
                    route.key_path("mode"),
                    "must be `redirect`, `proxy` or `manifest`",
                );
                Mode::Redirect
            }
        };
        let selection = match route.string("selection", errors) {
            None => d.selection,
            Some("weighted_random") => SelectionPolicy::WeightedRandom,
            Some("consistent") => SelectionPolicy::Consistent,
            Some(_) => {
                errors.push(
                    route.key_path("selection"),
                    "must be `weighted_random` or `consistent`",
                );
                SelectionPolicy::WeightedRandom
            }
        };
        let max_spread = crate::vocab::MAX_SPREAD as u64;
        let spread = route.u64_in("spread", d.spread as u64, 1..=max_spread, errors) as usize;
        let location_scheme = match route.string("location_scheme", errors) {
            None => d.location_scheme,
            Some("edge") => LocationScheme::Edge,
            Some("https") => LocationScheme::Https,
            Some("request") => LocationScheme::Request,
            Some(_) => {
                errors.push(
                    route.key_path("location_scheme"),
                    "must be `edge`, `https` or `request`",
                );
                d.location_scheme
            }
        };
        route.finish(errors);
        config.0[i] = RouteConfig {
            mode,
            selection,
            spread,
            location_scheme,
        };
    }
    routes.finish(errors);
    config
}

fn read_proxy(mut proxy: Section<'_>, errors: &mut Errors) -> ProxyConfig {
    let d = ProxyConfig::default();
    let p = &mut proxy;
    let config = ProxyConfig {
        connect_timeout: millis_in(
            p,
            "connect_timeout_ms",
            d.connect_timeout,
            1..=60_000,
            errors,
        ),
        read_timeout: millis_in(p, "read_timeout_ms", d.read_timeout, 1..=3_600_000, errors),
        write_timeout: millis_in(
            p,
            "write_timeout_ms",
            d.write_timeout,
            1..=3_600_000,
            errors,
        ),
        tls_verify: p.bool("tls_verify", d.tls_verify, errors),
        max_manifest_bytes: p.u64_in(
            "max_manifest_bytes",
            d.max_manifest_bytes as u64,
            1024..=(64 << 20),
            errors,
        ) as usize,
        relay: p.bool("relay", d.relay, errors),
    };
    proxy.finish(errors);
    config
}

fn read_health(mut health: Section<'_>, errors: &mut Errors) -> HealthConfig {
    let d = HealthConfig::default();
    let interval_ms = health.u64_in(
        "interval_ms",
        d.interval.as_millis() as u64,
        100..=600_000,
        errors,
    );
    let timeout_ms = health.u64_in(
        "timeout_ms",
        d.timeout.as_millis() as u64,
        10..=600_000,
        errors,
    );
    if timeout_ms > interval_ms {
        errors.push(health.key_path("timeout_ms"), "must not exceed interval_ms");
    }
    let expected_body = match health.value("expected_body") {
        None => d.expected_body.clone(),
        Some(Value::String(body)) if body.is_empty() => None,
        Some(Value::String(body)) => Some(body.clone()),
        Some(_) => {
            errors.push(
                health.key_path("expected_body"),
                "expected a string (\"\" accepts any body)",
            );
            None
        }
    };
    let config = HealthConfig {
        enabled: health.bool("enabled", d.enabled, errors),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        fall: health.u64_in("fall", d.fall as u64, 1..=100, errors) as u32,
        rise: health.u64_in("rise", d.rise as u64, 1..=100, errors) as u32,
        expected_status: health.u64_in(
            "expected_status",
            d.expected_status as u64,
            100..=599,
            errors,
        ) as u16,
        expected_body,
        panic_mode: health.bool("panic_mode", d.panic_mode, errors),
        tls_verify: health.bool("tls_verify", d.tls_verify, errors),
    };
    health.finish(errors);
    config
}

fn read_stream_health(mut section: Section<'_>, errors: &mut Errors) -> StreamHealthConfig {
    let d = StreamHealthConfig::default();
    let config = StreamHealthConfig {
        enabled: section.bool("enabled", d.enabled, errors),
        stall_factor: section.u64_in("stall_factor", d.stall_factor.into(), 1..=100, errors) as u32,
        probes_per_sec: section.u64_in(
            "probes_per_sec",
            d.probes_per_sec.into(),
            1..=100_000,
            errors,
        ) as u32,
        hot_set_size: section.u64_in(
            "hot_set_size",
            d.hot_set_size as u64,
            1..=MAX_HOT_SET as u64,
            errors,
        ) as usize,
        hot_ttl: Duration::from_secs(section.u64_in(
            "hot_ttl_secs",
            d.hot_ttl.as_secs(),
            1..=86_400,
            errors,
        )),
        probe_timeout: Duration::from_millis(section.u64_in(
            "probe_timeout_ms",
            d.probe_timeout.as_millis() as u64,
            10..=60_000,
            errors,
        )),
        max_playlist_bytes: section.u64_in(
            "max_playlist_bytes",
            d.max_playlist_bytes as u64,
            1024..=64 * 1024 * 1024,
            errors,
        ) as usize,
        min_round_interval: Duration::from_millis(section.u64_in(
            "min_round_interval_ms",
            d.min_round_interval.as_millis() as u64,
            100..=600_000,
            errors,
        )),
        passive: section.bool("passive", d.passive, errors),
    };
    section.finish(errors);
    config
}

fn read_routing(mut routing: Section<'_>, errors: &mut Errors) -> Option<RoutingConfig> {
    let has_file = routing.has("file");
    let has_admin = routing.has("admin_api");
    let file = routing.string("file", errors).map(PathBuf::from);
    let d = RoutingConfig::default();
    let default_watch = d.watch_interval.map_or(0, |every| every.as_secs());
    let watch_secs = routing.u64_in("watch_interval_secs", default_watch, 0..=3600, errors);
    let admin_api = if has_admin {
        read_admin_api(routing.section("admin_api", errors), errors)
    } else {
        routing.value("admin_api");
        None
    };
    match (has_file, has_admin) {
        (true, true) => errors.push(
            routing.key_path("admin_api"),
            "`file` and `admin_api` are alternatives: configure one",
        ),
        (false, false) => errors.push(
            routing.key_path("file"),
            "missing: set `file` (a snapshot file) or `admin_api` (the admin system)",
        ),
        _ => {}
    }
    let state_dir = routing.string("state_dir", errors).map(PathBuf::from);
    let mut guard = routing.section("guard", errors);
    let guard_config = GuardConfig {
        enabled: guard.bool("enabled", d.guard.enabled, errors),
        max_removed_fraction: guard.f64_in(
            "max_removed_fraction",
            d.guard.max_removed_fraction,
            0.0..=1.0,
            errors,
        ),
    };
    guard.finish(errors);
    routing.finish(errors);
    Some(RoutingConfig {
        file,
        watch_interval: (watch_secs > 0).then(|| Duration::from_secs(watch_secs)),
        admin_api,
        state_dir,
        guard: guard_config,
    })
}

fn read_admin_api(mut api: Section<'_>, errors: &mut Errors) -> Option<AdminApiConfig> {
    let url = match api.string("url", errors) {
        Some(url) => match reqwest::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(url.to_string()),
            _ => {
                errors.push(api.key_path("url"), "not an http:// or https:// URL");
                None
            }
        },
        None => {
            errors.push(api.key_path("url"), "missing: the admin snapshot endpoint");
            None
        }
    };
    let d = AdminApiConfig::default();
    let a = &mut api;
    let poll_interval = secs_in(a, "poll_interval_secs", d.poll_interval, 1..=3600, errors);
    let timeout = secs_in(a, "timeout_secs", d.timeout, 1..=300, errors);
    let max_body_bytes = a.u64_in("max_body_bytes", d.max_body_bytes, 1024..=(4 << 30), errors);
    let max_backoff = secs_in(a, "max_backoff_secs", d.max_backoff, 1..=3600, errors);
    let long_poll_wait = secs_in(a, "long_poll_wait_secs", d.long_poll_wait, 0..=300, errors);
    let token = read_token(&mut api, errors);
    api.finish(errors);
    Some(AdminApiConfig {
        url: url?,
        poll_interval,
        timeout,
        token,
        max_body_bytes,
        max_backoff,
        long_poll_wait,
    })
}

/// A bearer token given inline (`token`) or read from a file (`token_file`, preferred: keeps
/// the secret out of the config). Surrounding blanks and the trailing newline are trimmed.
pub fn read_token(section: &mut Section<'_>, errors: &mut Errors) -> Option<String> {
    let inline = section.string("token", errors);
    let file = section.string("token_file", errors);
    let token = match (inline, file) {
        (Some(_), Some(_)) => {
            errors.push(
                section.key_path("token_file"),
                "`token` and `token_file` are alternatives: configure one",
            );
            return None;
        }
        (Some(token), None) => token.trim().to_string(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => text.trim().to_string(),
            Err(e) => {
                errors.push(
                    section.key_path("token_file"),
                    format!("cannot read {path}: {e}"),
                );
                return None;
            }
        },
        (None, None) => return None,
    };
    if token.is_empty() || !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        let key = if file.is_some() {
            "token_file"
        } else {
            "token"
        };
        errors.push(
            section.key_path(key),
            "the token must be non-empty visible ASCII",
        );
        return None;
    }
    Some(token)
}

#[cfg(test)]
mod tests;
