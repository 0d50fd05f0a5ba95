//! A throwaway PostgreSQL cluster from Debian's packages (`.ci/install-deps`): `initdb` into a
//! temp dir, the server on a free loopback port (its socket in the same dir), stopped and
//! removed when dropped. PostgreSQL refuses to run as root, so as root every command runs as
//! the `postgres` user (`runuser`). Also the real `cti-kaltura-admin-api` binary in front of it.

use crate::harness::{free_port, poll, v4, ChildGuard};
use crate::http::{self, Response};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian puts the server binaries: the newest `/usr/lib/postgresql/N/bin`.
fn server_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CTI_KALTURA_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("no PostgreSQL server in /usr/lib/postgresql/*/bin: run .ci/install-deps")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// A fresh cluster, running, with the database `kaltura_admin` holding the original schema.
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("cti-kaltura-pg-")
            .tempdir()
            .expect("create temp dir");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("create data dir");
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
            let uid = String::from_utf8(
                Command::new("id")
                    .args(["-u", "postgres"])
                    .output()
                    .expect("id -u postgres")
                    .stdout,
            )
            .expect("uid text");
            let uid: u32 = uid.trim().parse().expect("the postgres user exists");
            std::os::unix::fs::chown(&data, Some(uid), None).expect("chown data dir");
        }
        let pg = Postgres {
            port: free_port(),
            bin: server_bin_dir(),
            data,
            dir,
        };
        pg.server_command("initdb", |c| {
            c.arg("-D").arg(&pg.data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
        });
        pg.start_again();
        pg.psql("postgres", "CREATE DATABASE kaltura_admin");
        pg.psql_file(
            "kaltura_admin",
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/admin-api/original-schema.sql"),
        );
        pg
    }

    /// Runs a server binary (as `postgres` when root); panics with its output on failure.
    fn server_command(&self, name: &str, args: impl FnOnce(&mut Command)) -> Output {
        let program = self.bin.join(name);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        args(&mut command);
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{name} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.data.display()
        );
        self.server_command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&self.data)
                .args(["-o", &options, "-l"])
                .arg(self.data.join("server.log"))
                .args(["-w", "-t", "30", "start"]);
        });
    }

    /// Stops the server (fast shutdown: open sessions are cut).
    pub fn stop(&self) {
        self.server_command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "30", "stop"]);
        });
    }

    /// The `psql` of the same installation.
    pub fn psql_program(&self) -> PathBuf {
        self.bin.join("psql")
    }

    pub fn url(&self) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/kaltura_admin",
            self.port
        )
    }

    fn psql_command(&self, database: &str) -> Command {
        let mut c = Command::new(self.bin.join("psql"));
        c.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &self.port.to_string(), "-d", database])
        .stdin(Stdio::null());
        c
    }

    fn run_psql(mut command: Command) -> String {
        let output = command.output().expect("run psql");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs SQL with `psql` (the real client), in one `-c` (one transaction unless it says
    /// otherwise); returns what it printed, unaligned and without headers.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut c = self.psql_command(database);
        c.args(["-A", "-t", "-c", sql]);
        Postgres::run_psql(c)
    }

    pub fn psql_file(&self, database: &str, file: &Path) {
        let mut c = self.psql_command(database);
        c.arg("-f").arg(file);
        Postgres::run_psql(c);
    }

    /// Installs the optional triggers of `conf/admin-api/notify.sql`.
    pub fn install_notify_triggers(&self) {
        self.psql_file(
            "kaltura_admin",
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/admin-api/notify.sql"),
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: the directory goes next.
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = c
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.dir.path();
    }
}

/// The real `cti-kaltura-admin-api`, killed when dropped.
pub struct AdminApi {
    pub port: u16,
    _child: ChildGuard,
    dir: tempfile::TempDir,
}

pub fn admin_api_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cti-kaltura-admin-api")
}

impl AdminApi {
    /// Starts it with these extra YAML lines (top level), the fingerprint every 200 ms, and
    /// waits for `/readyz`.
    pub fn start(database_url: &str, extra: &[&str]) -> AdminApi {
        AdminApi::start_with(database_url, 200, extra)
    }

    /// [`AdminApi::start`] with the fingerprint every `fingerprint_ms` (with or without the
    /// triggers).
    pub fn start_with(database_url: &str, fingerprint_ms: u64, extra: &[&str]) -> AdminApi {
        let dir = tempfile::Builder::new()
            .prefix("cti-kaltura-api-")
            .tempdir()
            .expect("create temp dir");
        let port = free_port();
        let mut yaml = format!(
            "listen: \"127.0.0.1:{port}\"\ndatabase:\n  url: \"{database_url}\"\n  max_backoff_secs: 1\n  fingerprint_interval_ms: {fingerprint_ms}\n  fingerprint_interval_with_triggers_ms: {fingerprint_ms}\n"
        );
        for line in extra {
            yaml.push_str(line);
            yaml.push('\n');
        }
        let config = dir.path().join("admin-api.yaml");
        fs::write(&config, yaml).expect("write config");
        let stderr = fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let child = Command::new(admin_api_bin())
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn cti-kaltura-admin-api");
        let api = AdminApi {
            port,
            _child: ChildGuard(child),
            dir,
        };
        poll("admin API ready", || match api.try_get("/readyz", &[]) {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(r.summary()),
            Err(e) => Err(e),
        });
        api
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/routing/snapshot", self.port)
    }

    pub fn try_get(&self, target: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
        http::try_request(v4(self.port), "GET", target, headers)
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        self.try_get(target, headers)
            .unwrap_or_else(|e| panic!("GET {target}: {e}; admin API stderr:\n{}", self.stderr()))
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// The value of a metric without labels in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", &[]).text();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }
}
