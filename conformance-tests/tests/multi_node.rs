//! Several Hearth nodes on one PostgreSQL database behave as one server:
//! versions stay sequential under concurrent writes on different nodes, a
//! conditional create raced across nodes creates once, links and
//! asynchronous status URLs of one node work on another, a background job
//! is run once, and what one node learns (a custom search parameter) the
//! others follow. These tests need PostgreSQL and skip without it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use conformance_tests::{json, link, patient, unique, Server, Value};
use hearth_store::testing::{run_on, Backend};

fn on_postgres(test: &str, body: impl FnOnce()) {
    run_on(Backend::Postgres, test, body);
}

fn version_of(response: &conformance_tests::Response) -> i64 {
    response.json()["meta"]["versionId"]
        .as_str()
        .expect("a versionId")
        .parse()
        .expect("a numeric versionId")
}

#[test]
fn concurrent_puts_on_two_nodes_lose_no_update() {
    on_postgres("concurrent_puts_on_two_nodes_lose_no_update", || {
        let nodes = Server::nodes(2);
        let id = unique("shared");
        let mut body = patient("Start");
        body["id"] = json!(id);
        nodes[0]
            .put(&format!("Patient/{id}"), &body)
            .assert_status(201);
        let (threads, each) = (6, 10);
        let versions: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (node, id) = (&nodes[t % 2], id.clone());
                    scope.spawn(move || {
                        (0..each)
                            .map(|i| {
                                let mut body = patient(&format!("T{t}-{i}"));
                                body["id"] = json!(id);
                                let response = node.put(&format!("Patient/{id}"), &body);
                                response.assert_status(200);
                                version_of(&response)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        // Every write got its own version, and they are 2..=n+1 exactly.
        let distinct: BTreeSet<i64> = versions.iter().copied().collect();
        let total = (threads * each) as i64;
        assert_eq!(distinct.len() as i64, total, "{versions:?}");
        assert_eq!(distinct, (2..=total + 1).collect::<BTreeSet<_>>());
        let current = nodes[1].get(&format!("Patient/{id}"));
        assert_eq!(version_of(&current), total + 1);
        let history = nodes[0].get(&format!("Patient/{id}/_history?_count=1000"));
        assert_eq!(history.json()["total"], total + 1);
    });
}

#[test]
fn if_match_on_two_nodes_lets_one_writer_of_each_version_win() {
    on_postgres(
        "if_match_on_two_nodes_lets_one_writer_of_each_version_win",
        || {
            let nodes = Server::nodes(2);
            let id = unique("guarded");
            let mut body = patient("Start");
            body["id"] = json!(id);
            nodes[0]
                .put(&format!("Patient/{id}"), &body)
                .assert_status(201);
            // Each thread reads the current version and writes on top of it.
            let outcomes: Vec<(i64, u16)> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let (node, id) = (&nodes[t % 2], id.clone());
                        scope.spawn(move || {
                            (0..8)
                                .map(|i| {
                                    let seen = version_of(&node.get(&format!("Patient/{id}")));
                                    let mut body = patient(&format!("T{t}-{i}"));
                                    body["id"] = json!(id);
                                    let response = node
                                        .request("PUT", &format!("Patient/{id}"))
                                        .header("If-Match", &format!("W/\"{seen}\""))
                                        .json(&body)
                                        .send();
                                    assert!(
                                        matches!(response.status, 200 | 412),
                                        "{}",
                                        response.text()
                                    );
                                    (seen, response.status)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            let won: Vec<i64> = outcomes
                .iter()
                .filter(|(_, status)| *status == 200)
                .map(|(seen, _)| *seen)
                .collect();
            let distinct: BTreeSet<i64> = won.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                won.len(),
                "two writers won on one version: {won:?}"
            );
            let current = version_of(&nodes[1].get(&format!("Patient/{id}")));
            assert_eq!(current, 1 + won.len() as i64);
        },
    );
}

#[test]
fn a_conditional_create_raced_on_two_nodes_creates_once() {
    on_postgres(
        "a_conditional_create_raced_on_two_nodes_creates_once",
        || {
            let nodes = Server::nodes(2);
            let system = format!("urn:{}", unique("sys"));
            let condition = format!("identifier={system}|race");
            let statuses: Vec<u16> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let (node, condition, system) = (&nodes[t % 2], &condition, &system);
                        scope.spawn(move || {
                            let mut body = patient("Race");
                            body["identifier"] = json!([{"system": system, "value": "race"}]);
                            node.request("POST", "Patient")
                                .header("If-None-Exist", condition)
                                .json(&body)
                                .send()
                                .status
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                statuses.iter().filter(|s| **s == 201).count(),
                1,
                "{statuses:?}"
            );
            assert!(
                statuses.iter().all(|s| matches!(s, 200 | 201)),
                "{statuses:?}"
            );
            let found = nodes[1].get(&format!("Patient?{condition}&_summary=count"));
            assert_eq!(found.json()["total"], 1);
        },
    );
}

#[test]
fn paging_links_of_one_node_work_on_the_other() {
    on_postgres("paging_links_of_one_node_work_on_the_other", || {
        let nodes = Server::nodes(2);
        let family = unique("Pager");
        let mut created = BTreeSet::new();
        for _ in 0..5 {
            created.insert(nodes[0].create(&patient(&family)));
        }
        let ids = |bundle: &Value| -> Vec<String> {
            bundle["entry"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut seen = BTreeSet::new();
        let mut page = nodes[0]
            .get(&format!("Patient?family={family}&_count=2"))
            .json();
        let mut hops = 0;
        loop {
            seen.extend(ids(&page));
            let Some(next) = link(&page, "next") else {
                break;
            };
            // Each page is fetched on the other node than the last.
            hops += 1;
            page = nodes[hops % 2]
                .get(&nodes[hops % 2].on_this_node(&next))
                .json();
            assert_eq!(page["resourceType"], "Bundle", "{page}");
        }
        assert_eq!(seen, created);
        assert_eq!(hops, 2);

        let history = nodes[1].get("Patient/_history?_count=2").json();
        let next = link(&history, "next").expect("a next page of history");
        let second = nodes[0].get(&nodes[0].on_this_node(&next)).json();
        assert_eq!(second["type"], "history");
        assert_eq!(second["entry"].as_array().map(Vec::len), Some(2));
    });
}

#[test]
fn a_job_started_on_one_node_runs_once_and_reports_on_every_node() {
    on_postgres(
        "a_job_started_on_one_node_runs_once_and_reports_on_every_node",
        || {
            let nodes = Server::nodes(2);
            let family = unique("Indexed");
            for _ in 0..30 {
                nodes[0].create(&patient(&family));
            }
            let kicked = nodes[0].request("POST", "$reindex").send();
            assert_eq!(kicked.status, 202, "{}", kicked.text());
            let status_url = kicked
                .header("content-location")
                .expect("Content-Location")
                .to_owned();
            let deadline = Instant::now() + Duration::from_secs(60);
            let finished = loop {
                // Polled on the other node.
                let status = nodes[1].get(&nodes[1].on_this_node(&status_url));
                if status.status == 200 {
                    break status.json();
                }
                assert_eq!(status.status, 202, "{}", status.text());
                assert!(Instant::now() < deadline, "the job did not finish");
                std::thread::sleep(Duration::from_millis(100));
            };
            // Run twice, its batches would count its resources twice.
            let message = finished["issue"][0]["diagnostics"]
                .as_str()
                .unwrap_or_default();
            assert_eq!(message, "reindex finished: 30 resources", "{finished}");
        },
    );
}

#[test]
fn a_custom_parameter_defined_on_one_node_is_searchable_on_the_other() {
    on_postgres(
        "a_custom_parameter_defined_on_one_node_is_searchable_on_the_other",
        || {
            let nodes = Server::nodes(2);
            let code = unique("marital-text");
            let p = nodes[0]
                .create(&json!({"resourceType": "Patient", "maritalStatus": {"text": "Married"}}));
            nodes[0]
                .post(
                    "SearchParameter",
                    &json!({
                        "resourceType": "SearchParameter",
                        "url": format!("http://example.org/SearchParameter/{code}"),
                        "name": "maritalText", "status": "active", "description": "Marital status text",
                        "code": code, "base": ["Patient"], "type": "string",
                        "expression": "Patient.maritalStatus.text"
                    }),
                )
                .assert_status(201);
            let kicked = nodes[0].request("POST", "Patient/$reindex").send();
            assert_eq!(kicked.status, 202, "{}", kicked.text());
            let status_url = kicked.header("content-location").unwrap().to_owned();
            let deadline = Instant::now() + Duration::from_secs(60);
            while nodes[0].get(&status_url).status != 200 {
                assert!(Instant::now() < deadline, "the reindex did not finish");
                std::thread::sleep(Duration::from_millis(100));
            }
            // The other node follows within its watch interval.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let found = nodes[1]
                    .request("GET", &format!("Patient?{code}=married"))
                    .header("Prefer", "handling=strict")
                    .send();
                if found.status == 200 {
                    let body = found.json();
                    let ids: Vec<String> = body["entry"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    assert_eq!(ids, vec![p.clone()]);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the other node never learnt the parameter: {}",
                    found.text()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        },
    );
}
