//! Operating Hearth: liveness and readiness endpoints for load balancers,
//! and a database outage answered with 503 and an OperationOutcome, from
//! which the server recovers by itself.

use std::time::{Duration, Instant};

use conformance_tests::both_backends;
use conformance_tests::{patient, Server};
use hearth_store::testing::{run_on, Backend};

both_backends! {
    fn liveness_and_readiness_answer_pass() {
        let server = Server::start();
        if !server.is_local() {
            return; // Hearth's own endpoints
        }
        for path in ["health/live", "health/ready"] {
            let response = server.get(path);
            response.assert_status(200);
            assert_eq!(response.content_type(), "application/health+json");
            assert_eq!(response.json()["status"], "pass");
        }
        server.request("POST", "health/ready").send().assert_status(405);
    }
}

#[test]
fn a_database_outage_answers_503_and_the_server_recovers_by_itself() {
    run_on(
        Backend::Postgres,
        "a_database_outage_answers_503_and_the_server_recovers_by_itself",
        || {
            let server = Server::local(|c| c.store.busy_timeout = Duration::from_millis(500));
            let id = server.create(&patient("Steady"));
            let database = server.database().expect("a local database");

            database.cut_off();
            let read = server.get(&format!("Patient/{id}"));
            read.assert_outcome(503, "transient");
            server
                .post("Patient", &patient("Lost"))
                .assert_outcome(503, "transient");
            server
                .get("Patient?family=steady")
                .assert_outcome(503, "transient");
            let ready = server.get("health/ready");
            ready.assert_status(503);
            assert_eq!(ready.json()["status"], "fail");
            server.get("health/live").assert_status(200);

            database.restore();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let read = server.get(&format!("Patient/{id}"));
                if read.status == 200 {
                    assert_eq!(read.json()["name"][0]["family"], "Steady");
                    break;
                }
                read.assert_outcome(503, "transient");
                assert!(Instant::now() < deadline, "the server did not recover");
                std::thread::sleep(Duration::from_millis(200));
            }
            server.get("health/ready").assert_status(200);
            server.post("Patient", &patient("Back")).assert_status(201);
            // Nothing written during the outage.
            let lost = server.get("Patient?family=lost&_summary=count").json();
            assert_eq!(lost["total"], 0);
        },
    );
}
