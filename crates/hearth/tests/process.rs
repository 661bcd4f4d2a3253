//! The `hearth` binary as an operator runs it: configuration errors fail
//! fast, and an acknowledged write survives `kill -9`.

use hearth_store::both_backends;
use hearth_store::testing::TestDatabase;
use std::ffi::OsStr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, wait_ready};

fn spawn(database: &TestDatabase, port: u16) -> Child {
    spawn_with(database, port, &[])
}

/// [`spawn`] with more flags.
fn spawn_with(database: &TestDatabase, port: u16, flags: &[&OsStr]) -> Child {
    let (dir, url) = (database.dir(), database.url());
    let mut all: Vec<&OsStr> = flags.to_vec();
    all.extend([
        OsStr::new("--data-dir"),
        dir.as_os_str(),
        OsStr::new("--database-url"),
        OsStr::new(&url),
    ]);
    common::serve(port, &all)
}

both_backends! {
    fn acknowledged_writes_survive_kill_9() {
        let database = TestDatabase::new();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::new();
        let mut server = spawn(&database, port);
        wait_ready(&client, &base);
        let mut ids = Vec::new();
        for i in 0..50 {
            let response = client
                .post(format!("{base}/Patient"))
                .header("Content-Type", "application/fhir+json")
                .body(format!(
                    r#"{{"resourceType":"Patient","name":[{{"family":"Crash{i}"}}]}}"#
                ))
                .send()
                .unwrap();
            assert_eq!(response.status(), 201);
            let body: serde_json::Value = response.json().unwrap();
            ids.push(body["id"].as_str().unwrap().to_owned());
        }
        server.kill().unwrap(); // SIGKILL: no shutdown, no flush
        server.wait().unwrap();

        let mut server = spawn(&database, port);
        wait_ready(&client, &base);
        for (i, id) in ids.iter().enumerate() {
            let response = client.get(format!("{base}/Patient/{id}")).send().unwrap();
            assert_eq!(response.status(), 200, "Patient/{id} lost after kill -9");
            let body: serde_json::Value = response.json().unwrap();
            assert_eq!(body["name"][0]["family"], format!("Crash{i}"));
        }
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

#[test]
fn a_bad_configuration_stops_start_up_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid listen address 'not-an-address'"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve"])
        .env("HEARTH_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid log format 'yaml'"));
}

both_backends! {
    /// `hearth import --url` sends files to a running server: a Bundle as
    /// it is, NDJSON as a transaction of updates.
    fn import_url_uploads_files_to_a_server() {
        let database = TestDatabase::new();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::new();
        let mut server = spawn(&database, port);
        wait_ready(&client, &base);
        let files = database.dir().join("upload");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(
            files.join("people.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"up1\"}\n{\"resourceType\":\"Patient\",\"id\":\"up2\"}\n",
        )
        .unwrap();
        std::fs::write(
            files.join("bundle.json"),
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": "urn:uuid:4d3c0000-0000-4000-8000-000000000001",
                 "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                              "subject": {"reference": "Patient/up1"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]})
            .to_string(),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["import", "--url", &base])
            .arg(&files)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("imported 2 of 2 files") && stdout.contains("3 resources"), "{stdout}");
        for path in ["Patient/up1", "Patient/up2"] {
            let status = client.get(format!("{base}/{path}")).send().unwrap().status();
            assert_eq!(status, 200, "{path}");
        }
        let found: serde_json::Value = client
            .get(format!("{base}/Observation?subject=Patient/up1"))
            .header("Accept", "application/fhir+json")
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(found["total"], 1);
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

both_backends! {
    /// `hearth explain` prints the plan of each search, naming the indexes
    /// it uses; a search that is not one is refused.
    fn explain_prints_the_plan_of_searches() {
        let database = TestDatabase::new();
        let explain = |search: &str| {
            Command::new(env!("CARGO_BIN_EXE_hearth"))
                .args(["explain", "--data-dir"])
                .arg(database.dir())
                .arg("--database-url")
                .arg(database.url())
                .arg(search)
                .output()
                .unwrap()
        };
        let output = explain("Patient?family=garcia");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(stdout.starts_with("== Patient?family=garcia\n"), "{stdout}");
        assert!(stdout.contains("idx_string"), "{stdout}");
        let refused = explain("Patient?nonsense=1");
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("nonsense"));
    }
}

#[test]
fn a_graceful_shutdown_ends_within_its_timeout_with_requests_in_flight() {
    use std::io::Write;
    let database = TestDatabase::new();
    let config = database.dir().join("hearth.toml");
    std::fs::write(
        &config,
        "shutdown_timeout_secs = 1\nbody_timeout_secs = 300\n",
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let mut server = spawn_with(
        &database,
        port,
        &[OsStr::new("--config"), config.as_os_str()],
    );
    wait_ready(&client, &base);
    // A request whose body is still on its way when the shutdown begins.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(slow, "POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{{\"resourceType\"").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let signalled = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            server.kill().unwrap();
            panic!("still running 30 s after SIGTERM, with a shutdown timeout of 1 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "stopped {:?} after SIGTERM",
        started.elapsed()
    );
    drop(slow);
}

both_backends! {
    /// The binary as an operator runs it under SMART: `hearth serve --auth
    /// smart` on a fresh store (which makes its first signing key),
    /// `hearth token` for a patient, a read with it, and none without;
    /// `hearth revoke`; and a log that names no token.
    fn serve_with_smart_and_a_token_from_the_command_line() {
        let database = TestDatabase::new();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::new();
        let (dir, url) = (database.dir(), database.url());
        let log_path = dir.join("serve.log");
        let smart = [
            OsStr::new("--auth"), OsStr::new("smart"), OsStr::new("--base-url"), OsStr::new(&base),
            OsStr::new("--data-dir"), dir.as_os_str(), OsStr::new("--database-url"), OsStr::new(&url),
        ];
        let mut server = common::serve_to(port, &smart, std::fs::File::create(&log_path).unwrap());
        wait_ready(&client, &base);
        let hearth = |args: &[&str]| -> std::process::Output {
            Command::new(env!("CARGO_BIN_EXE_hearth"))
                .args(args)
                .args(["--auth", "smart", "--base-url", &base])
                .arg("--data-dir")
                .arg(&dir)
                .args(["--database-url", &url])
                .output()
                .unwrap()
        };
        let token = |scope: &str, patient: Option<&str>| -> String {
            let mut args = vec!["token", "--scope", scope];
            if let Some(p) = patient {
                args.extend(["--patient", p]);
            }
            let output = hearth(&args);
            assert!(output.status.success(), "{}: {}{}", output.status, String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        };
        let admin = token("system/*.cruds", None);
        let put = |id: &str| {
            client
                .put(format!("{base}/Patient/{id}"))
                .bearer_auth(&admin)
                .header("Content-Type", "application/fhir+json")
                .body(format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#))
                .send()
                .unwrap()
                .status()
        };
        assert_eq!(put("p1"), 201);
        assert_eq!(put("p2"), 201);
        let mine = token("patient/*.rs", Some("p1"));
        let read = |id: &str, token: Option<&str>| {
            let mut request = client.get(format!("{base}/Patient/{id}"));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            request.send().unwrap()
        };
        assert_eq!(read("p1", Some(&mine)).status(), 200);
        assert_eq!(read("p2", Some(&mine)).status(), 404);
        let refused = read("p1", None);
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().get("www-authenticate").is_some());
        // A malformed scope is refused with its reason, and no token.
        let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["token", "--scope", "patient/Observation.sr", "--patient", "p1", "--auth", "smart", "--base-url", &base])
            .arg("--data-dir")
            .arg(database.dir())
            .args(["--database-url", &database.url()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(output.stdout.is_empty());
        assert!(String::from_utf8_lossy(&output.stderr).contains("order"));
        // Revoked from the command line: refused within 2 s.
        let revoked = hearth(&["revoke", &mine]);
        assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
        let deadline = Instant::now() + Duration::from_secs(3);
        while read("p1", Some(&mine)).status() != 401 {
            assert!(Instant::now() < deadline, "the revoked token still reads");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!hearth(&["revoke", "not-a-token"]).status.success());
        // Stopped as a service manager stops it (SIGTERM): its last log
        // lines are written, and none names a token or a header.
        let stopped = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
        assert!(stopped.success());
        server.wait().unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(log.contains("Hearth stopped") && log.contains("http.route=/{type}/{id}"), "{log}");
        for secret in [admin.as_str(), mine.as_str(), "Bearer", "eyJ"] {
            assert!(!log.contains(secret), "the log holds {secret:.12}…");
        }
    }
}

#[test]
fn listening_beyond_loopback_without_auth_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth = \"smart\""), "{stderr}");
}
