//! The command line: `-t` validation, bad configs at start-up, and the bundled demo config.

use crate::data;
use crate::harness::{
    bin, free_port, run_bounded, try_poll, v4, v6, write_in_place, write_json_renamed, yaml_str,
    ChildGuard, ConfigSpec,
};
use crate::http;
use crate::routes::assert_redirect;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A temp dir with a good routing file and a config built from `spec` (`file` pointing at
/// the routing file); returns the dir and the config path.
fn config_dir(edit: impl FnOnce(&mut ConfigSpec)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("cti-kaltura-cli-")
        .tempdir()
        .expect("create temp dir");
    let routing = dir.path().join("routing.json");
    write_json_renamed(&routing, &data::standard());
    let mut spec = ConfigSpec::new(&routing.display().to_string());
    edit(&mut spec);
    let config = dir.path().join("cti-kaltura.yaml");
    fs::write(&config, spec.to_yaml(dir.path())).expect("write config");
    (dir, config)
}

fn run(dir: &Path, args: &[&str], config: &Path) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("-c").arg(config).args(args).current_dir(dir);
    run_bounded(&mut cmd, dir)
}

/// Three problems in the router section at once.
fn bad_config(spec: &mut ConfigSpec) {
    spec.trusted_proxies = Some(vec!["127.0.0.0/8".into(), "10.0.0.300/8".into()]);
    spec.keepalive_timeout_secs = 0;
    spec.extra_router_lines.push("colour: blue".into());
}

fn assert_names_every_bad_key(stderr: &str) {
    for wanted in [
        "router.client_ip.trusted_proxies[1]: not a CIDR",
        "router.colour: unknown key",
        "router.http.keepalive_timeout_secs",
    ] {
        assert!(
            stderr.contains(wanted),
            "{wanted:?} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    // The good entry is not reported.
    assert!(
        !stderr.contains("trusted_proxies[0]"),
        "a valid entry is reported:\n{stderr}"
    );
}

#[test]
fn check_flag_names_every_bad_key() {
    let (dir, config) = config_dir(bad_config);
    let (status, _, stderr) = run(dir.path(), &["-t"], &config);
    assert!(
        !status.success(),
        "-t accepted a bad config: {status}\n{stderr}"
    );
    assert_names_every_bad_key(&stderr);
}

#[test]
fn bad_config_at_start_up_exits_with_the_same_messages() {
    let (dir, config) = config_dir(bad_config);
    let (status, _, stderr) = run(dir.path(), &[], &config);
    assert!(
        !status.success(),
        "started with a bad config: {status}\n{stderr}"
    );
    assert!(status.code().is_some(), "killed by a signal: {status}");
    assert_names_every_bad_key(&stderr);
}

#[test]
fn check_flag_accepts_a_valid_config() {
    let (dir, config) = config_dir(|_| {});
    let (status, stdout, stderr) = run(dir.path(), &["-t"], &config);
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains(data::VERSION), "{stdout}");
}

#[test]
fn check_flag_rejects_an_unloadable_routing_file() {
    let (dir, config) = config_dir(|_| {});
    write_in_place(&dir.path().join("routing.json"), b"{not json");
    let (status, _, stderr) = run(dir.path(), &["-t"], &config);
    assert!(
        !status.success(),
        "-t accepted a broken routing file\n{stderr}"
    );
    assert!(stderr.contains("router.routing.file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    fs::remove_file(dir.path().join("routing.json")).expect("remove routing file");
    let (status, _, stderr) = run(dir.path(), &["-t"], &config);
    assert!(
        !status.success(),
        "-t accepted a missing routing file\n{stderr}"
    );
    assert!(stderr.contains("router.routing.file"), "{stderr}");
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_flag_accepts_the_bundled_demo_config() {
    let cwd = tempfile::tempdir().expect("create temp dir");
    let config = manifest_dir().join("conf/cti-kaltura.yaml");
    let (status, stdout, stderr) = run(cwd.path(), &["-t"], &config);
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains("demo-1"), "{stdout}");
}

#[test]
fn demo_config_copy_starts_and_routes_ipv4_and_ipv6() {
    let dir = tempfile::Builder::new()
        .prefix("cti-kaltura-demo-")
        .tempdir()
        .expect("create temp dir");
    let conf = manifest_dir().join("conf");
    fs::copy(conf.join("routing.yaml"), dir.path().join("routing.yaml")).expect("copy routing");
    let original = fs::read_to_string(conf.join("cti-kaltura.yaml")).expect("read demo config");
    let run_dir = dir.path().join("run");
    fs::create_dir(&run_dir).expect("create run dir");

    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let (port, management) = (free_port(), free_port());
        let mut text = original
            .replace(":4001\"", &format!(":{port}\""))
            .replace(":4002\"", &format!(":{management}\""));
        for (key, file) in [("pid_file", "demo.pid"), ("upgrade_sock", "demo.sock")] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{key}:")))
                .unwrap_or_else(|| panic!("no {key} in the demo config"))
                .to_string();
            let path = dir.path().join(file).display().to_string();
            text = text.replace(&line, &format!("{key}: {}", yaml_str(&path)));
        }
        assert!(text.contains(&format!("\"[::1]:{port}\"")), "{text}");
        // Health checks would resolve the demo edge names: the demo keeps them off, which
        // keeps all traffic on loopback.
        assert!(
            text.contains("\n  health:\n") && text.contains("    enabled: false\n"),
            "the demo config must keep health checks off: {text}"
        );
        let config = dir.path().join("cti-kaltura.yaml");
        fs::write(&config, &text).expect("write config");
        let stderr_path = dir.path().join(format!("demo-{attempt}.stderr"));
        let mut guard = ChildGuard(
            Command::new(bin())
                .arg("-c")
                .arg(&config)
                .current_dir(&run_dir)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&stderr_path).expect("create stderr file"))
                .spawn()
                .expect("spawn the router"),
        );
        let stderr = || fs::read_to_string(&stderr_path).unwrap_or_default();

        // Ready: /readyz 200 and both public listeners answer.
        let ready = try_poll("demo router ready", || {
            if stderr().contains("is in use") {
                return Ok(false);
            }
            if let Some(status) = guard.0.try_wait().expect("try_wait") {
                panic!("demo router exited with {status}:\n{}", stderr());
            }
            let healthy = http::try_request(v4(management), "GET", "/readyz", &[])
                .is_ok_and(|r| r.status == 200);
            let listening = [v4(port), v6(port)]
                .iter()
                .all(|a| http::try_request(*a, "GET", "/static", &[]).is_ok());
            if healthy && listening {
                Ok(true)
            } else {
                Err(format!("ready {healthy}, listening {listening}"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}:\n{}", stderr()));
        if !ready {
            failures.push(format!("attempt {attempt}: port taken\n{}", stderr()));
            continue;
        }

        for addr in [v4(port), v6(port)] {
            for (target, path_part) in [
                ("/btv/live/hls/epg_0", "/live/epg_0/"),
                ("/btv/catchup/mpd_wv/p_epg_3", "/dvr/"),
                ("/vod/w/w/w", "/vod/w/w/w"),
            ] {
                let response = http::try_request(addr, "GET", target, &[])
                    .unwrap_or_else(|e| panic!("{target} from {addr}: {e}\n{}", stderr()));
                let location = response.location().to_string();
                assert_redirect(&response, &location);
                let rest = location
                    .strip_prefix("https://")
                    .or_else(|| location.strip_prefix("http://"))
                    .unwrap_or_else(|| panic!("{target} from {addr}: Location {location}"));
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                assert!(
                    host.ends_with(".demo.cti-kaltura.test"),
                    "{target} from {addr}: Location {location}"
                );
                assert!(
                    path.starts_with(path_part),
                    "{target} from {addr}: Location {location}"
                );
                if target.starts_with("/vod/") {
                    assert!(location.starts_with("http://"), "{location}");
                    assert!(!host.contains(':'), "{location}");
                }
            }
        }
        return;
    }
    panic!("demo router did not start:\n{}", failures.join("\n"));
}

/// The README's quick start says `cargo run --release -- -c conf/cti-kaltura.yaml`: with two
/// binaries in the package, that works only while `default-run` names the router.
#[test]
fn readme_quick_start_runs_the_router_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(
        readme.contains("cargo run --release -- -c conf/cti-kaltura.yaml"),
        "the README quick start changed; update this test"
    );
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("default-run = \"cti-kaltura\""),
        "Cargo.toml must set default-run for `cargo run` to pick the router"
    );
}
