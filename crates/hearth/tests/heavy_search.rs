//! Heavy searches: a `_revinclude:iterate` over every Organization of
//! Synthea's data answers a bounded page quickly; a search past the time
//! limit is stopped (503) while other requests are served; and a search
//! whose client goes away stops holding the database (on SQLite through
//! the progress handler, on PostgreSQL through the canceller).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use hearth::config::Config;
use hearth::server::Background;
use hearth_store::both_backends;
use hearth_store::testing::TestDatabase;
use serde_json::{json, Value};

const REVINCLUDE: &str = "Organization?_revinclude=Encounter:service-provider&_revinclude:iterate=Observation:encounter&_count=50";

fn server(database: &TestDatabase, adjust: impl FnOnce(&mut Config)) -> Background {
    let mut config = Config::for_tests(&database.dir());
    config.database_url = Some(database.url());
    adjust(&mut config);
    Background::start(&config).expect("start Hearth")
}

fn get(client: &reqwest::blocking::Client, base: &str, path: &str) -> (u16, Value) {
    let response = client
        .get(format!("{base}/{path}"))
        .header("Accept", "application/fhir+json")
        .send()
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().expect("a JSON body"))
}

fn entries<'b>(bundle: &'b Value, mode: &str) -> Vec<&'b Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| &e["resource"])
        .collect()
}

fn local_id<'v>(reference: &'v Value, resource_type: &str) -> &'v str {
    reference["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix(&format!("{resource_type}/")))
        .unwrap_or_else(|| panic!("a local {resource_type} reference: {reference}"))
}

/// Synthea's shared files and a few patients, imported; false where
/// Synthea's files cannot be had.
fn synthea(database: &TestDatabase, patients: usize) -> bool {
    let Some(folder) = common::synthea_folder(&database.dir(), patients) else {
        return false;
    };
    let (ok, stdout, stderr) = common::import(database, &[&folder]);
    assert!(ok, "{stdout}{stderr}");
    true
}

both_backends! {
    fn a_revinclude_iterate_over_every_organization_is_bounded_and_right() {
        let database = TestDatabase::new();
        if !synthea(&database, 6) {
            return;
        }
        let client = reqwest::blocking::Client::new();
        {
            let hearth = server(&database, |c| c.max_includes = 300);
            let (status, bundle) = get(&client, &hearth.base_url, REVINCLUDE);
            assert_eq!(status, 200, "{bundle}");
            let organizations = entries(&bundle, "match");
            let included = entries(&bundle, "include");
            assert_eq!(organizations.len(), 50);
            assert_eq!(included.len(), 300, "the includes stop at the limit");
            let outcome = entries(&bundle, "outcome");
            assert_eq!(outcome.len(), 1, "{bundle}");
            assert_eq!(outcome[0]["issue"][0]["code"], "incomplete");
            // Every included Encounter names an Organization of the page,
            // every included Observation an included Encounter.
            let page: Vec<&str> = organizations.iter().map(|o| o["id"].as_str().unwrap()).collect();
            let encounters: Vec<&str> = included
                .iter()
                .filter(|r| r["resourceType"] == "Encounter")
                .map(|r| {
                    assert!(page.contains(&local_id(&r["serviceProvider"], "Organization")), "{r}");
                    r["id"].as_str().unwrap()
                })
                .collect();
            assert!(!encounters.is_empty());
            for observation in included.iter().filter(|r| r["resourceType"] == "Observation") {
                assert!(encounters.contains(&local_id(&observation["encounter"], "Encounter")));
            }

            // Within the limit, a page includes exactly what refers to it.
            let mut counted: Vec<(i64, &str)> = page
                .iter()
                .map(|id| {
                    let (_, count) = get(&client, &hearth.base_url, &format!("Encounter?service-provider=Organization/{id}&_summary=count"));
                    (count["total"].as_i64().unwrap(), *id)
                })
                .filter(|(n, _)| (1..300).contains(n))
                .collect();
            counted.sort();
            let (expected, id) = counted.pop().expect("an organization with a few encounters");
            let (status, bundle) = get(&client, &hearth.base_url, &format!("Organization?_id={id}&_revinclude=Encounter:service-provider"));
            assert_eq!(status, 200);
            assert_eq!(entries(&bundle, "include").len() as i64, expected);
            assert!(entries(&bundle, "outcome").is_empty(), "{bundle}");
        }

        // The same search on a server whose requests may take a
        // millisecond of database work: 503, and the server serves on.
        let hearth = server(&database, |c| c.store.statement_timeout = Duration::from_millis(1));
        let (status, outcome) = get(&client, &hearth.base_url, &format!("{REVINCLUDE}&_total=accurate&_sort=-name"));
        assert_eq!(status, 503, "{outcome}");
        assert_eq!(outcome["issue"][0]["code"], "too-costly", "{outcome}");
        let (_, patients) = get(&client, &hearth.base_url, "Patient?_count=1");
        let _ = patients;
        let (status, ready) = get(&client, &hearth.base_url, "health/ready");
        assert_eq!(status, 200, "{ready}");
    }
}

/// `count` Observations, each with several codes and values, in
/// transactions of at most 5,000 entries.
fn observations(client: &reqwest::blocking::Client, base: &str, count: usize) {
    let mut done = 0;
    while done < count {
        let n = (count - done).min(5000);
        let entry: Vec<Value> = (done..done + n)
            .map(|i| {
                json!({"resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [
                        {"system": "http://loinc.org", "code": format!("{}", i % 97)},
                        {"system": "http://example.org", "code": format!("c{}", i % 13)}
                    ], "text": format!("measurement {}", i % 31)},
                    "effectiveDateTime": format!("20{:02}-{:02}-{:02}", i % 24, i % 12 + 1, i % 28 + 1),
                    "valueQuantity": {"value": (i % 1000) as f64 / 10.0, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
                }, "request": {"method": "POST", "url": "Observation"}})
            })
            .collect();
        let response = client
            .post(format!("{base}/"))
            .header("Content-Type", "application/fhir+json")
            .body(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": entry})
                    .to_string(),
            )
            .send()
            .expect("transaction sent");
        assert_eq!(
            response.status(),
            200,
            "{}",
            response.text().unwrap_or_default()
        );
        done += n;
    }
}

/// A search that reads every Observation and sorts them by twenty keys
/// (each a lookup per Observation).
const SORTED: &str = "Observation?_sort=-date,code,-value-quantity,_lastUpdated,combo-code,-combo-value-quantity,subject,encounter,status,category,performer,based-on,method,identifier,device,specimen,data-absent-reason,value-concept,focus,part-of&_total=accurate&_count=1000";

both_backends! {
    fn heavy_searches_are_stopped_by_the_time_limit_and_when_their_client_leaves() {
        let database = TestDatabase::new();
        let client = reqwest::blocking::Client::new();
        {
            let hearth = server(&database, |_| {});
            observations(&client, &hearth.base_url, 40_000);
        }

        // A server whose requests may take 20 ms of database work: the
        // search is stopped (503), and the server serves on.
        {
            let hearth = server(&database, |c| c.store.statement_timeout = Duration::from_millis(20));
            let (status, outcome) = get(&client, &hearth.base_url, SORTED);
            assert_eq!(status, 503, "{outcome}");
            assert_eq!(outcome["issue"][0]["code"], "too-costly");
            let (status, _) = get(&client, &hearth.base_url, "metadata");
            assert_eq!(status, 200);
            let (status, ready) = get(&client, &hearth.base_url, "health/ready");
            assert_eq!(status, 200, "{ready}");
        }

        // One database connection: while the sorted search holds it, any
        // other search waits for it, and gives up after 50 ms.
        let hearth = server(&database, |c| {
            c.store.pool_size = 1;
            c.store.busy_timeout = Duration::from_millis(50);
            c.store.statement_timeout = Duration::from_secs(5);
        });
        let started = Instant::now();
        let (status, _) = get(&client, &hearth.base_url, SORTED);
        let whole = started.elapsed();
        eprintln!("the sorted search: {status} after {whole:?}");
        assert!(status == 200 || status == 503);
        assert!(
            whole > Duration::from_millis(150),
            "the search takes {whole:?}: too quick to show whether it is stopped"
        );
        let authority = hearth.base_url.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&authority).unwrap();
        write!(stream, "GET /{SORTED} HTTP/1.1\r\nHost: {authority}\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        drop(stream);
        std::thread::sleep(Duration::from_millis(20));
        let (status, body) = get(&client, &hearth.base_url, "Observation?_count=1&code=http://loinc.org|5");
        assert_eq!(status, 200, "the abandoned search still held the database: {body}");
    }
}
