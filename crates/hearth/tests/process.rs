//! The `hearth` binary as an operator runs it: configuration errors fail
//! fast, and an acknowledged write survives `kill -9`.

use hearth_store::both_backends;
use hearth_store::testing::TestDatabase;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(database: &TestDatabase, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(database.dir())
        .arg("--database-url")
        .arg(database.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hearth")
}

fn wait_ready(client: &reqwest::blocking::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{base}/metadata"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("hearth did not become ready at {base}");
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
