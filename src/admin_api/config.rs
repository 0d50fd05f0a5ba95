//! The admin API's own YAML file (`cti-kaltura-admin-api -c FILE`), validated at load with
//! every problem named by its key path; every default is in [`ApiConfig::default`].

use crate::config::yaml_walk::{Errors, Section};
use crate::config::{ConfigError, ConfigErrors};
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `listen`: where the HTTP endpoints are served.
    pub listen: SocketAddr,
    /// `token` or `token_file`: the bearer token the snapshot endpoint requires.
    pub token: Option<String>,
    pub database: DatabaseConfig,
    /// `long_poll.max_wait_secs`: the longest a request is held waiting for a change; `0`
    /// turns long-poll off (requests are answered at once, no long-poll header).
    pub long_poll_max_wait: Duration,
}

/// `database.*`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `database.url`: a PostgreSQL connection URL (or key=value string).
    pub url: String,
    /// The parsed `url`.
    pub connect: tokio_postgres::Config,
    /// `database.fingerprint_interval_ms`: how often the change fingerprint is queried.
    pub fingerprint_interval: Duration,
    /// `database.fingerprint_interval_with_triggers_ms`: the same while the triggers of
    /// `notify.sql` are installed (the fingerprint is then only a safety net).
    pub fingerprint_interval_with_triggers: Duration,
    /// `database.max_backoff_secs`: the longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// `database.query_timeout_secs`: a snapshot read (or fingerprint) taking longer is a
    /// failure; the connection is dropped and opened again.
    pub query_timeout: Duration,
}

impl Default for ApiConfig {
    /// Every key's default; `listen` and `database.url` have none (they are required).
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4100)),
            token: None,
            database: DatabaseConfig {
                url: String::new(),
                connect: tokio_postgres::Config::new(),
                fingerprint_interval: Duration::from_millis(1000),
                fingerprint_interval_with_triggers: Duration::from_millis(30_000),
                max_backoff: Duration::from_secs(30),
                query_timeout: Duration::from_secs(120),
            },
            long_poll_max_wait: Duration::from_secs(60),
        }
    }
}

fn secs(
    section: &mut Section<'_>,
    key: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Errors,
) -> Duration {
    Duration::from_secs(section.u64_in(key, default.as_secs(), range, errors))
}

/// `address:port`; a host name (`localhost:4100`) is resolved once, at load.
fn listen_addr(text: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    SocketAddr::from_str(text)
        .ok()
        .or_else(|| text.to_socket_addrs().ok()?.next())
}

impl ApiConfig {
    pub fn load(path: &Path) -> Result<ApiConfig, ConfigErrors> {
        let text = crate::config::read_config_file(path)?;
        ApiConfig::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<ApiConfig, ConfigErrors> {
        let doc: Value = crate::config::parse_config_yaml(text)?;
        let mut errors = Errors::default();
        // The walker names keys `PARENT.KEY`; the top level has no parent.
        let mut root = Section::new("", Some(&doc), &mut errors);
        let d = ApiConfig::default();
        let listen = match root.string("listen", &mut errors) {
            Some(text) => match listen_addr(text) {
                Some(addr) => Some(addr),
                None => {
                    errors.push(root.key_path("listen"), "not an address:port");
                    None
                }
            },
            None => {
                errors.push(
                    root.key_path("listen"),
                    "missing: the address:port to serve on",
                );
                None
            }
        };
        let token = crate::config::read_token(&mut root, &mut errors);
        let mut long_poll = root.section("long_poll", &mut errors);
        let long_poll_max_wait = secs(
            &mut long_poll,
            "max_wait_secs",
            d.long_poll_max_wait,
            0..=300,
            &mut errors,
        );
        long_poll.finish(&mut errors);
        let mut db = root.section("database", &mut errors);
        let url = db.string("url", &mut errors).map(str::to_string);
        let connect = match &url {
            Some(url) => match tokio_postgres::Config::from_str(url) {
                Ok(config) => Some(config),
                Err(e) => {
                    errors.push(
                        db.key_path("url"),
                        format!("not a PostgreSQL connection URL: {e}"),
                    );
                    None
                }
            },
            None => {
                errors.push(db.key_path("url"), "missing: the PostgreSQL connection URL");
                None
            }
        };
        let password =
            db.string("password_file", &mut errors)
                .and_then(|path| match std::fs::read_to_string(path) {
                    Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_string()),
                    Err(e) => {
                        errors.push(
                            db.key_path("password_file"),
                            format!("cannot read {path}: {e}"),
                        );
                        None
                    }
                });
        let dd = &d.database;
        let fingerprint_interval = Duration::from_millis(db.u64_in(
            "fingerprint_interval_ms",
            dd.fingerprint_interval.as_millis() as u64,
            100..=600_000,
            &mut errors,
        ));
        let fingerprint_interval_with_triggers = Duration::from_millis(db.u64_in(
            "fingerprint_interval_with_triggers_ms",
            dd.fingerprint_interval_with_triggers.as_millis() as u64,
            100..=3_600_000,
            &mut errors,
        ));
        let max_backoff = secs(
            &mut db,
            "max_backoff_secs",
            dd.max_backoff,
            1..=3600,
            &mut errors,
        );
        let query_timeout = secs(
            &mut db,
            "query_timeout_secs",
            dd.query_timeout,
            1..=3600,
            &mut errors,
        );
        db.finish(&mut errors);
        root.finish(&mut errors);
        if !errors.0.is_empty() {
            let mut list = errors.0;
            for e in &mut list {
                e.path = e.path.trim_start_matches('.').to_string();
            }
            return Err(ConfigErrors(list));
        }
        match (listen, url, connect) {
            (Some(listen), Some(url), Some(mut connect)) => {
                if connect.get_connect_timeout().is_none() {
                    connect.connect_timeout(Duration::from_secs(5));
                }
                connect.application_name("cti-kaltura-admin-api");
                if let Some(password) = password {
                    connect.password(password);
                }
                Ok(ApiConfig {
                    listen,
                    token,
                    database: DatabaseConfig {
                        url,
                        connect,
                        fingerprint_interval,
                        fingerprint_interval_with_triggers,
                        max_backoff,
                        query_timeout,
                    },
                    long_poll_max_wait,
                })
            }
            _ => Err(ConfigErrors(vec![ConfigError {
                path: "(file)".into(),
                message: "incomplete configuration".into(),
            }])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        match ApiConfig::from_yaml(yaml) {
            Ok(_) => panic!("expected errors for {yaml}"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let c = ApiConfig::from_yaml(
            "listen: 127.0.0.1:4100\ndatabase: {url: \"postgresql://admin@127.0.0.1:5432/cti\"}\n",
        )
        .unwrap();
        let d = ApiConfig::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.token, None);
        assert_eq!(c.long_poll_max_wait, Duration::from_secs(60));
        assert_eq!(
            c.database.fingerprint_interval,
            d.database.fingerprint_interval
        );
        assert_eq!(c.database.max_backoff, d.database.max_backoff);
        assert_eq!(
            c.database.fingerprint_interval_with_triggers,
            Duration::from_secs(30)
        );
        assert_eq!(c.database.query_timeout, d.database.query_timeout);
        assert_eq!(c.database.connect.get_dbname(), Some("cti"));
        let named =
            ApiConfig::from_yaml("listen: localhost:4101\ndatabase: {url: \"host=/tmp\"}\n")
                .unwrap();
        assert_eq!(named.listen.port(), 4101);
        assert!(named.listen.ip().is_loopback());
    }

    /// `(key, default)` of the table in docs/admin-api-service.md, backticks removed.
    fn documented_defaults() -> Vec<(String, String)> {
        let doc = include_str!("../../docs/admin-api-service.md");
        let section = doc
            .split("## Configuration")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a Configuration section");
        section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells[1].replace('`', ""), cells[3].replace('`', ""))
            })
            .collect()
    }

    #[test]
    fn the_documented_defaults_are_the_code_defaults() {
        let d = ApiConfig::default();
        let ms = |t: Duration| t.as_millis().to_string();
        let secs = |t: Duration| t.as_secs().to_string();
        let required = "none: **required**".to_string();
        let code = vec![
            ("listen".to_string(), required.clone()),
            ("token".to_string(), "none".to_string()),
            ("token_file".to_string(), "none".to_string()),
            ("database.url".to_string(), required),
            ("database.password_file".to_string(), "none".to_string()),
            (
                "database.fingerprint_interval_ms".to_string(),
                ms(d.database.fingerprint_interval),
            ),
            (
                "database.fingerprint_interval_with_triggers_ms".to_string(),
                ms(d.database.fingerprint_interval_with_triggers),
            ),
            (
                "database.max_backoff_secs".to_string(),
                secs(d.database.max_backoff),
            ),
            (
                "database.query_timeout_secs".to_string(),
                secs(d.database.query_timeout),
            ),
            (
                "long_poll.max_wait_secs".to_string(),
                secs(d.long_poll_max_wait),
            ),
        ];
        assert_eq!(documented_defaults(), code);
    }

    #[test]
    fn every_problem_is_named_by_its_key_path() {
        assert_eq!(
            errors_of(
                "listen: nowhere\ntoken: a\ntoken_file: /nonexistent\nlong_poll: {max_wait_secs: 999}\ndatabase: {url: \"postgresql://a@h:notaport/x\", password_file: /nonexistent, fingerprint_interval_ms: 5, colour: red}\nextra: 1\n"
            ),
            vec![
                "listen: not an address:port",
                "token_file: `token` and `token_file` are alternatives: configure one",
                "long_poll.max_wait_secs: must be a whole number from 0 to 300",
                "database.url: not a PostgreSQL connection URL: invalid connection string",
                "database.password_file: cannot read /nonexistent: No such file or directory (os error 2)",
                "database.fingerprint_interval_ms: must be a whole number from 100 to 600000",
                "database.colour: unknown key",
                "extra: unknown key",
            ]
        );
        assert_eq!(
            errors_of("{}"),
            vec![
                "listen: missing: the address:port to serve on",
                "database.url: missing: the PostgreSQL connection URL",
            ]
        );
    }
}
