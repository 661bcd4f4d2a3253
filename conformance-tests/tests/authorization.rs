//! SMART-on-FHIR authorization, black-box over HTTP on both backends: the
//! token checks (401), what a token's scopes allow (403), and a leak matrix
//! on Synthea data where two patients share practitioners and
//! organizations: a patient's token must never bring back a byte of the
//! other's data, through any search, include, chain, history or operation,
//! and every total must count only what it may see. HTTPS last.

use std::collections::HashSet;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use conformance_tests::{both_backends, json, Server, TestDatabase, Value};

// ---------------------------------------------------------------------------
// tokens

fn smart() -> Server {
    Server::smart_on(Arc::new(TestDatabase::new()), |_| {})
}

/// A token with these claims and header, signed by the server's own key.
fn forged(server: &Server, header: Value, claims: Value) -> String {
    let store =
        hearth_store::Store::open(&server.config().database(), &server.config().store).unwrap();
    let key = store.signing_keys().unwrap().pop().unwrap();
    let mut header_json = header;
    if header_json.get("kid").is_none() {
        header_json["kid"] = json!(key.kid);
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        key.pkcs8(),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let signature = pair
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

/// The `kid` of a token's header.
fn kid(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(server: &Server) -> Value {
    json!({"iss": server.base, "aud": server.base, "scope": "system/*.rs", "exp": now() + 300, "iat": now()})
}

/// Asserts a 401 with a Bearer challenge and an OperationOutcome; answers
/// the challenge.
#[track_caller]
fn refused(server: &Server, token: Option<&str>) -> String {
    server.use_token(token);
    let response = server.get("Patient");
    response.assert_error(401);
    let challenge = response
        .header("www-authenticate")
        .expect("WWW-Authenticate on a 401")
        .to_owned();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    if token.is_some() {
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    } else {
        assert!(
            !challenge.contains("error="),
            "no token, no error code: {challenge}"
        );
    }
    challenge
}

both_backends! {
    fn requests_without_a_valid_token_are_refused_with_401() {
        let server = smart();
        let good = server.token("system/*.rs", None, None);
        server.use_token(Some(&good));
        server.get("Patient").assert_status(200);

        refused(&server, None);
        for malformed in ["abc", "a.b.c", "Bearer", &good[..good.len() - 4]] {
            refused(&server, Some(malformed));
        }
        // Not Bearer.
        server.use_token(None);
        let response = server.request("GET", "Patient").header("Authorization", "Basic dXNlcjpwYXNz").send();
        response.assert_error(401);
        // A bad signature: the payload changed, the signature kept.
        let parts: Vec<&str> = good.split('.').collect();
        let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["scope"] = json!("system/*.cruds");
        let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
        assert!(refused(&server, Some(&tampered)).contains("signature"));
        // Wrong audience, expired, not yet valid, unknown issuer.
        let header = json!({"alg": "ES256", "typ": "JWT"});
        let with = |change: &dyn Fn(&mut Value)| {
            let mut c = claims(&server);
            change(&mut c);
            forged(&server, header.clone(), c)
        };
        let fine = with(&|_| {});
        server.use_token(Some(&fine));
        server.get("Patient").assert_status(200);
        assert!(refused(&server, Some(&with(&|c| c["aud"] = json!("https://other.example/fhir")))).contains("audience"));
        assert!(refused(&server, Some(&with(&|c| c["exp"] = json!(now() - 120)))).contains("expired"));
        assert!(refused(&server, Some(&with(&|c| c["nbf"] = json!(now() + 600)))).contains("not valid yet"));
        assert!(refused(&server, Some(&with(&|c| c["iss"] = json!("https://evil.example")))).contains("issuer"));
        // alg none, and HMAC keyed with the published public key.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims(&server).to_string())
        );
        refused(&server, Some(&none));
        server.use_token(None);
        let jwks = server.get(".well-known/jwks.json");
        jwks.assert_status(200);
        let jwk = jwks.json()["keys"][0].clone();
        assert!(jwk.get("d").is_none(), "no private key is published");
        let hs_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": jwk["kid"]}).to_string()),
            URL_SAFE_NO_PAD.encode(claims(&server).to_string())
        );
        let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk.to_string().as_bytes()), hs_input.as_bytes());
        refused(&server, Some(&format!("{hs_input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))));
        // Public endpoints need no token.
        server.use_token(None);
        server.get("metadata").assert_status(200);
        server.get("health/ready").assert_status(200);
    }

    fn the_capability_statement_declares_smart() {
        let server = smart();
        let statement = server.read_json("metadata");
        let security = &statement["rest"][0]["security"];
        assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR", "{security}");
        assert_eq!(
            security["service"][0]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/restful-security-service"
        );
        // An open server says so.
        let open = Server::local(|_| {});
        let security = open.read_json("metadata")["rest"][0]["security"].clone();
        assert!(security["description"].as_str().unwrap().contains("No authorization"), "{security}");
        assert!(security.get("service").is_none());
    }

    fn scopes_decide_types_and_interactions() {
        let server = smart();
        let admin = server.token("system/*.cruds", None, None);
        server.use_token(Some(&admin));
        let a = server.create(&json!({"resourceType": "Patient", "name": [{"family": "A"}]}));
        let obs = server.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{a}")}}));

        // Read-only: reading works, writing is 403.
        let read = server.token("patient/*.read", Some(&a), None);
        server.use_token(Some(&read));
        server.get(&format!("Observation/{obs}")).assert_status(200);
        server.post("Observation", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "y"}, "subject": {"reference": format!("Patient/{a}")}})).assert_error(403);
        server.delete(&format!("Observation/{obs}")).assert_error(403);
        // r without s: a search is 403.
        let r_only = server.token("patient/Observation.r", Some(&a), None);
        server.use_token(Some(&r_only));
        server.get(&format!("Observation/{obs}")).assert_status(200);
        server.get("Observation").assert_error(403);
        server.get(&format!("Patient/{a}")).assert_error(403);
        // Several scopes: each counts, not only the first.
        let two = server.token("patient/Condition.rs patient/Observation.rs", Some(&a), None);
        server.use_token(Some(&two));
        server.get("Observation").assert_status(200);
        server.get("Encounter").assert_error(403);
        // Writes within the compartment, and not outside it.
        let write = server.token("patient/Observation.cruds", Some(&a), None);
        server.use_token(Some(&write));
        server.post("Observation", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "y"}, "subject": {"reference": format!("Patient/{a}")}})).assert_status(201);
        server.post("Observation", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "y"}, "subject": {"reference": "Patient/someone-else"}})).assert_error(403);
        // Administrative: $reindex and SearchParameters need system scopes.
        server.request("POST", "$reindex").send().assert_error(403);
        let user = server.token("user/*.cruds", None, Some("Practitioner/1"));
        server.use_token(Some(&user));
        server.request("POST", "$reindex").send().assert_error(403);
        server.post("SearchParameter", &json!({"resourceType": "SearchParameter", "url": "http://example.org/sp", "name": "x", "status": "active",
            "description": "x", "code": "x", "base": ["Patient"], "type": "string", "expression": "Patient.name"})).assert_error(403);
        server.use_token(Some(&admin));
        let kick = server.request("POST", "$reindex").send();
        assert_eq!(kick.status, 202, "{}", kick.text());
        // Its status answers the client that started it, and no other.
        let status = kick.header("content-location").unwrap().to_owned();
        let polled = server.get(&status);
        assert!(polled.status == 200 || polled.status == 202, "{}", polled.text());
        let other_client = hearth::token::issue(
            &hearth::token::TokenArgs {
                scope: "system/*.cruds".into(), patient: None, client: Some("other-client".into()),
                fhir_user: None, expires_in: 600, settings: Default::default(),
            },
            server.config(),
        )
        .unwrap();
        server.use_token(Some(&other_client));
        server.get(&status).assert_error(404);
    }

    fn conditional_interactions_and_bundle_entries_are_held_to_the_grant() {
        let server = smart();
        let admin = server.token("system/*.cruds", None, None);
        server.use_token(Some(&admin));
        let a = server.create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": "pa"}]}));
        let b = server.create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": "pb"}]}));
        let obs = |patient: &str, id: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "identifier": [{"system": "urn:o", "value": id}], "subject": {"reference": format!("Patient/{patient}")}});
        let theirs = server.create(&obs(&b, "ob"));
        let write = server.token("patient/*.cruds", Some(&a), None);
        server.use_token(Some(&write));
        // If-None-Exist cannot see b's Observation: a new one is created,
        // and b's is not returned.
        let created = server.request("POST", "Observation").header("If-None-Exist", "identifier=urn:o|ob").json(&obs(&a, "ob")).send();
        assert_eq!(created.status, 201, "{}", created.text());
        assert_ne!(created.json()["id"], theirs.as_str());
        // Conditional update and delete find only a's.
        let updated = server.request("PUT", "Observation?identifier=urn:o|ob").json(&obs(&a, "ob")).send();
        assert_eq!(updated.status, 200, "{}", updated.text());
        assert_ne!(updated.json()["id"], theirs.as_str());
        server.request("DELETE", "Observation?identifier=urn:o|ob").send();
        // A conditional patch of b's finds nothing.
        let patched = server.request("PATCH", &format!("Observation?_id={theirs}"))
            .body("application/json-patch+json", r#"[{"op":"replace","path":"/status","value":"cancelled"}]"#).send();
        assert!(patched.status == 404 || patched.status == 412, "{}", patched.text());
        // A transaction's conditional reference cannot resolve to b.
        let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": "urn:uuid:6f1b5c3e-0000-4000-8000-000000000001",
            "resource": obs("x", "t1"),
            "request": {"method": "POST", "url": "Observation"}
        }]});
        let mut transaction = transaction;
        transaction["entry"][0]["resource"]["subject"]["reference"] = json!("Patient?identifier=urn:t|pb");
        let response = server.post("", &transaction);
        assert!(response.status >= 400, "{}", response.text());
        assert!(!response.text().contains(&b), "{}", response.text());
        // A batch's read of b's data: that entry is not found.
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": format!("Observation/{theirs}")}},
            {"request": {"method": "GET", "url": format!("Patient/{a}")}},
            {"request": {"method": "GET", "url": "Observation?identifier=urn:o|ob"}}
        ]});
        let response = server.post("", &batch);
        assert_eq!(response.status, 200, "{}", response.text());
        let body = response.json();
        assert!(body["entry"][0]["response"]["status"].as_str().unwrap().starts_with("404"), "{body}");
        assert!(body["entry"][1]["response"]["status"].as_str().unwrap().starts_with("200"), "{body}");
        assert_eq!(body["entry"][2]["resource"]["total"], 0, "{body}");
        // b's Observation is unchanged.
        server.use_token(Some(&admin));
        let still = server.read_json(&format!("Observation/{theirs}"));
        assert_eq!(still["status"], "final");
        assert_eq!(still["meta"]["versionId"], "1");
    }

    fn hearth_import_uploads_to_a_smart_server_with_a_token() {
        let server = smart();
        let dir = tempfile_dir();
        let file = dir.join("one.json");
        std::fs::write(&file, json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {"resourceType": "Patient", "id": "uploaded"},
            "request": {"method": "PUT", "url": "Patient/uploaded"}
        }]}).to_string()).unwrap();
        let upload = |token: Option<String>| {
            let args = hearth::import::ImportArgs {
                settings: Default::default(),
                url: Some(server.base.clone()),
                token,
                threads: Some(1),
                paths: vec![file.clone()],
            };
            hearth::import::run(&args, server.config()).unwrap()
        };
        assert!(!upload(None).failed.is_empty(), "no token: refused");
        assert!(!upload(Some(server.token("system/*.rs", None, None))).failed.is_empty(), "read scopes: refused");
        assert!(upload(Some(server.token("system/*.cu", None, None))).failed.is_empty());
        server.use_token(Some(&server.token("system/*.rs", None, None)));
        server.get("Patient/uploaded").assert_status(200);
    }

    fn keys_rotate_and_retire_on_a_running_server() {
        let server = smart();
        let old = server.token("system/*.rs", None, None);
        let keys = |command: hearth::keys::KeysCommand| {
            hearth::keys::run(&hearth::keys::KeysArgs { command, settings: Default::default() }, server.config()).unwrap()
        };
        server.use_token(Some(&old));
        server.get("Patient").assert_status(200);
        keys(hearth::keys::KeysCommand::Rotate);
        let new = server.token("system/*.rs", None, None);
        assert_ne!(kid(&old), kid(&new), "the new key signs");
        // Within 2 s the server knows the new key, and still the old one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        server.use_token(Some(&new));
        while server.get("Patient").status != 200 {
            assert!(std::time::Instant::now() < deadline, "the new key was not picked up");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server.use_token(Some(&old));
        server.get("Patient").assert_status(200);
        server.use_token(None);
        assert_eq!(server.read_json(".well-known/jwks.json")["keys"].as_array().unwrap().len(), 2);
        // Retiring the old key ends its tokens within 2 s.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        keys(hearth::keys::KeysCommand::Retire { older_than: 1 });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        server.use_token(Some(&old));
        while server.get("Patient").status != 401 {
            assert!(std::time::Instant::now() < deadline, "the retired key still verifies");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server.use_token(Some(&new));
        server.get("Patient").assert_status(200);
        assert!(keys(hearth::keys::KeysCommand::List).contains("(signs)"));
    }

    fn a_revoked_token_is_refused_by_every_node_within_2_s() {
        let database = Arc::new(TestDatabase::new());
        let first = Server::smart_on(database.clone(), |_| {});
        let base = first.base.clone();
        let second = Server::smart_on(database.clone(), |config| config.base_url = Some(base));
        let revoked = first.token("system/*.rs", None, None);
        let kept = first.token("system/*.rs", None, None);
        for node in [&first, &second] {
            node.use_token(Some(&revoked));
            node.get("Patient").assert_status(200);
        }
        let revoke = |token: &str| {
            let args = hearth::token::RevokeArgs { token: token.to_owned(), settings: Default::default() };
            hearth::token::revoke(&args, first.config()).unwrap()
        };
        assert!(revoke(&revoked).starts_with("revoked "));
        // Again: no error, the same row.
        assert!(revoke(&revoked).starts_with("revoked "));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        for node in [&first, &second] {
            node.use_token(Some(&revoked));
            let refused = loop {
                let r = node.get("Patient");
                if r.status == 401 {
                    break r;
                }
                assert_eq!(r.status, 200);
                assert!(std::time::Instant::now() < deadline, "the revoked token still works");
                std::thread::sleep(std::time::Duration::from_millis(100));
            };
            let challenge = refused.header("www-authenticate").unwrap_or_default().to_owned();
            assert!(challenge.contains("invalid_token") && challenge.contains("revoked"), "{challenge}");
            // Only that token.
            node.use_token(Some(&kept));
            node.get("Patient").assert_status(200);
        }
        // A node started afterwards refuses it from its first request.
        let base = first.base.clone();
        let third = Server::smart_on(database, |config| config.base_url = Some(base));
        third.use_token(Some(&revoked));
        third.get("Patient").assert_error(401);
        // What is not a token is refused, and revokes nothing.
        let args = hearth::token::RevokeArgs { token: "not-a-token".into(), settings: Default::default() };
        assert!(hearth::token::revoke(&args, first.config()).is_err());
        third.use_token(Some(&kept));
        third.get("Patient").assert_status(200);
    }

    fn browsers_may_call_from_the_configured_origins() {
        let app = "https://app.example.org";
        let server = Server::smart_on(Arc::new(TestDatabase::new()), |config| {
            config.cors = hearth_http::cors::Origins::new(vec![app.into()]).unwrap();
        });
        let preflight = |origin: &str, path: &str| {
            server
                .request("OPTIONS", path)
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "GET")
                .header("Access-Control-Request-Headers", "authorization")
                .send()
        };
        let ok = preflight(app, "Patient");
        assert_eq!(ok.status, 204, "{}", ok.text());
        assert_eq!(ok.header("access-control-allow-origin"), Some(app));
        assert!(ok.header("access-control-allow-headers").unwrap().contains("Authorization"));
        assert!(ok.header("access-control-allow-methods").unwrap().contains("PUT"));
        preflight("https://evil.example.org", "Patient").assert_error(403);
        // Discovery answers any origin.
        let discovery = preflight("https://evil.example.org", "metadata");
        assert_eq!(discovery.status, 204);
        assert_eq!(discovery.header("access-control-allow-origin"), Some("*"));
        // The request itself: allowed origins get the headers, others not.
        let token = server.token("system/*.rs", None, None);
        server.use_token(Some(&token));
        let allowed = server.request("GET", "Patient").header("Origin", app).send();
        allowed.assert_status(200);
        assert_eq!(allowed.header("access-control-allow-origin"), Some(app));
        assert!(allowed.header("access-control-expose-headers").unwrap().contains("Location"));
        assert!(allowed.header("vary").unwrap().contains("Origin"));
        let other = server.request("GET", "Patient").header("Origin", "https://evil.example.org").send();
        assert_eq!(other.header("access-control-allow-origin"), None);
        // A 401 to an allowed origin is readable by its script.
        server.use_token(None);
        let refused = server.request("GET", "Patient").header("Origin", app).send();
        refused.assert_error(401);
        assert_eq!(refused.header("access-control-allow-origin"), Some(app));
        let metadata = server.request("GET", "metadata").header("Origin", "https://evil.example.org").send();
        assert_eq!(metadata.header("access-control-allow-origin"), Some("*"));
        assert_eq!(metadata.json()["rest"][0]["security"]["cors"], true);
        // Without cors_origins, the API answers no origin.
        let closed = smart();
        closed.request("OPTIONS", "Patient").header("Origin", app).header("Access-Control-Request-Method", "GET").send().assert_error(403);
        assert_eq!(closed.read_json("metadata")["rest"][0]["security"]["cors"], false);
    }

    fn exports_answer_only_the_client_that_started_them() {
        let server = smart();
        let admin = server.token("system/*.rs", None, None);
        server.use_token(Some(&admin));
        let kick = server.request("GET", "$export").header("Prefer", "respond-async").header("Accept", "application/fhir+json").send();
        assert_eq!(kick.status, 202, "{}", kick.text());
        let status = kick.header("content-location").unwrap().to_owned();
        let mut manifest = None;
        for _ in 0..100 {
            let r = server.get(&status);
            if r.status == 200 {
                manifest = Some(r.json());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let manifest = manifest.expect("the export finished");
        assert_eq!(manifest["requiresAccessToken"], true, "{manifest}");
        // Another client, even with the same scopes, finds nothing there.
        let other = {
            let config = server.config();
            let args = hearth::token::TokenArgs {
                scope: "system/*.rs".into(), patient: None, client: Some("other-client".into()),
                fhir_user: None, expires_in: 600, settings: Default::default(),
            };
            hearth::token::issue(&args, config).unwrap()
        };
        server.use_token(Some(&other));
        server.get(&status).assert_error(404);
        server.delete(&status).assert_error(404);
        // A patient's token cannot start one.
        let patient = server.token("patient/*.rs", Some("x"), None);
        server.use_token(Some(&patient));
        let kick = server.request("GET", "$export").header("Prefer", "respond-async").send();
        kick.assert_error(403);
    }
}

// ---------------------------------------------------------------------------
// the leak matrix

/// A SMART server holding Synthea patients, and two of them who share a
/// practitioner.
struct World {
    server: Server,
    a: String,
    b: String,
    /// `Practitioner/…` or `Organization/…`, referred to by both A's and
    /// B's encounters.
    shared_provider: String,
    /// Every resource id of B's data (their compartment and what refers
    /// to them), as `Type/id`.
    b_data: HashSet<String>,
    /// What A may see of each type, counted with an unlimited token.
    a_counts: Vec<(&'static str, usize)>,
    /// B's family name.
    b_family: String,
}

fn world() -> Option<World> {
    let synthea = hearth_fixtures::synthea()?;
    let database = Arc::new(TestDatabase::new());
    let dir = tempfile_dir();
    let mut names: Vec<String> = std::fs::read_dir(&synthea)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut paths: Vec<std::path::PathBuf> = names
        .iter()
        .filter(|n| n.starts_with("0-"))
        .map(|n| synthea.join(n))
        .collect();
    paths.extend(
        names
            .iter()
            .filter(|n| !n.starts_with("0-"))
            .take(10)
            .map(|n| synthea.join(n)),
    );
    let args = hearth::import::ImportArgs {
        settings: hearth::config::ServeArgs {
            data_dir: Some(dir.clone()),
            database_url: Some(database.url()),
            ..Default::default()
        },
        url: None,
        token: None,
        threads: Some(2),
        paths,
    };
    let mut config = hearth::config::Config::for_tests(&dir);
    config.database_url = Some(database.url());
    let summary = hearth::import::run(&args, &config).expect("import");
    assert!(summary.failed.is_empty(), "{summary}");
    let server = Server::smart_on(database, |_| {});

    let admin = server.token("system/*.rs", None, None);
    server.use_token(Some(&admin));
    // Two patients whose encounters name a practitioner (or else an
    // organization) in common.
    let patients: Vec<String> = ids(&server.read_json("Patient?_count=100"));
    let providers_of = |p: &str| -> (HashSet<String>, HashSet<String>) {
        let bundle = server.read_json(&format!(
            "Encounter?subject=Patient/{p}&_count=1000&_elements=participant,serviceProvider"
        ));
        let encounters = entries(&bundle);
        let practitioners = encounters
            .iter()
            .flat_map(|e| e["participant"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["individual"]["reference"].as_str().map(str::to_owned))
            .collect();
        let organizations = encounters
            .iter()
            .filter_map(|e| {
                e["serviceProvider"]["reference"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        (practitioners, organizations)
    };
    let providers: Vec<(HashSet<String>, HashSet<String>)> =
        patients.iter().map(|p| providers_of(p)).collect();
    let mut pair = None;
    for shared_kind in [0, 1] {
        'pairs: for i in 0..patients.len() {
            for j in i + 1..patients.len() {
                let (mine, theirs) = if shared_kind == 0 {
                    (&providers[i].0, &providers[j].0)
                } else {
                    (&providers[i].1, &providers[j].1)
                };
                if let Some(shared) = mine.intersection(theirs).next() {
                    pair = Some((patients[i].clone(), patients[j].clone(), shared.clone()));
                    break 'pairs;
                }
            }
        }
        if pair.is_some() {
            break;
        }
    }
    let (a, b, shared_provider) =
        pair.expect("two Synthea patients who share a practitioner or an organization");
    let b_data: HashSet<String> = everything(&server, &b)
        .into_iter()
        .filter(|r| {
            let t = r.split('/').next().unwrap();
            hearth_model::compartments::patient_links(t).is_some()
        })
        .collect();
    assert!(b_data.len() > 50, "{}", b_data.len());
    let a_counts = [
        "Observation",
        "Encounter",
        "Condition",
        "Procedure",
        "Claim",
    ]
    .into_iter()
    .map(|t| {
        let n = server.read_json(&format!("{t}?patient=Patient/{a}&_summary=count"))["total"]
            .as_u64()
            .unwrap() as usize;
        (t, n)
    })
    .collect();
    let b_family = server.read_json(&format!("Patient/{b}"))["name"][0]["family"]
        .as_str()
        .unwrap()
        .to_owned();
    server.use_token(None);
    Some(World {
        server,
        a,
        b,
        shared_provider,
        b_data,
        a_counts,
        b_family,
    })
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-authz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.get("resource").cloned())
        .filter(|r| r["resourceType"] != "OperationOutcome")
        .collect()
}

fn ids(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn names(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect()
}

/// Every resource of `$everything` for `patient`, all pages.
fn everything(server: &Server, patient: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut bundle = server.read_json(&format!("Patient/{patient}/$everything?_count=1000"));
    loop {
        all.extend(names(&bundle));
        match server.follow(&bundle, "next") {
            Some(next) => bundle = next,
            None => break,
        }
    }
    all
}

impl World {
    /// Asserts that nothing `path` answers under the current token is B's,
    /// and that a searchset's total counts what it holds (one page).
    #[track_caller]
    fn clean(&self, path: &str) -> Value {
        let response = self.server.get(path);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        let body = response.json();
        let text = body.to_string();
        for leaked in names(&body) {
            assert!(!self.b_data.contains(&leaked), "GET {path} leaked {leaked}");
        }
        assert!(
            !text.contains(&format!("Patient/{}\"", self.b)),
            "GET {path} names patient B"
        );
        body
    }

    /// [`World::clean`] for every page of a search: the number of matches
    /// (entries in mode `match`), which its total must equal.
    #[track_caller]
    fn counted(&self, path: &str) -> usize {
        let mut body = self.clean(path);
        let total = body["total"].as_u64();
        let mut matches = 0;
        loop {
            matches += body["entry"]
                .as_array()
                .map(|e| e.iter().filter(|e| e["search"]["mode"] == "match").count())
                .unwrap_or(0);
            match conformance_tests::link(&body, "next") {
                Some(next) => body = self.clean(&next),
                None => break,
            }
        }
        if let Some(total) = total {
            assert_eq!(
                total as usize, matches,
                "GET {path}: total counts hidden resources"
            );
        }
        matches
    }

    fn a_count(&self, t: &str) -> usize {
        self.a_counts.iter().find(|(k, _)| *k == t).unwrap().1
    }

    /// The matrix for a token that reaches A's data.
    fn matrix(&self) {
        let (a, b) = (&self.a, &self.b);
        let (provider_type, provider) = self.shared_provider.split_once('/').unwrap();
        let via = if provider_type == "Practitioner" {
            "participant"
        } else {
            "service-provider"
        };
        // Type search: exactly A's, counted right.
        for (t, n) in &self.a_counts {
            assert_eq!(self.counted(&format!("{t}?_count=1000")), *n, "{t}");
            let count = self.clean(&format!("{t}?_summary=count"));
            assert_eq!(
                count["total"].as_u64().unwrap() as usize,
                *n,
                "{t} _summary=count"
            );
            let total = self.clean(&format!("{t}?_total=accurate&_count=1"));
            assert_eq!(
                total["total"].as_u64().unwrap() as usize,
                *n,
                "{t} _total=accurate"
            );
            assert_eq!(
                self.counted(&format!("{t}?patient=Patient/{b}")),
                0,
                "{t} of B"
            );
        }
        // POST _search, system search with _type, every type.
        let posted = self
            .server
            .request("POST", "Observation/_search")
            .body(
                "application/x-www-form-urlencoded",
                "_count=10&_total=accurate",
            )
            .accept("application/fhir+json")
            .send();
        assert_eq!(posted.status, 200);
        let posted = posted.json();
        assert_eq!(
            posted["total"].as_u64().unwrap() as usize,
            self.a_count("Observation")
        );
        assert!(names(&posted).iter().all(|n| !self.b_data.contains(n)));
        self.clean("?_type=Observation,Encounter,Practitioner&_count=1000");
        self.clean("?_count=1000");
        // Compartment search.
        assert_eq!(
            self.counted(&format!("Patient/{a}/Observation?_count=1000")),
            self.a_count("Observation")
        );
        assert_eq!(
            self.counted(&format!("Patient/{b}/Encounter?_count=1000")),
            0
        );
        // _revinclude and :iterate through the shared practitioner.
        let revs = self.clean(&format!("{provider_type}?_id={provider}&_revinclude=Encounter:{via}&_revinclude:iterate=Observation:encounter&_count=1"));
        assert!(
            names(&revs).iter().any(|n| n.starts_with("Encounter/")),
            "A's encounters with the shared provider"
        );
        self.clean(&format!("Encounter?patient=Patient/{a}&_include=Encounter:participant&_revinclude:iterate=Encounter:participant&_count=5"));
        self.clean(&format!(
            "Encounter?patient=Patient/{a}&_include=Encounter:*&_revinclude=Observation:*&_count=5"
        ));
        // _has and chains as oracles: questions about B's data answer nothing.
        assert_eq!(
            self.counted(&format!(
                "{provider_type}?_has:Encounter:{via}:subject=Patient/{b}"
            )),
            0
        );
        assert_eq!(
            self.counted(&format!(
                "{provider_type}?_has:Encounter:{via}:subject=Patient/{a}&_id={provider}"
            )),
            1
        );
        let b_family = &self.b_family;
        assert_eq!(
            self.counted(&format!(
                "Encounter?subject:Patient.family={b_family}&_count=1000"
            )),
            0
        );
        // Reads, versions and histories of B's data: not found.
        self.server.get(&format!("Patient/{b}")).assert_error(404);
        self.server
            .get(&format!("Patient/{b}/_history/1"))
            .assert_error(404);
        self.server
            .get(&format!("Patient/{b}/_history"))
            .assert_error(404);
        self.server
            .get(&format!("Patient/{b}/$everything"))
            .assert_error(404);
        let some_b = self
            .b_data
            .iter()
            .find(|n| n.starts_with("Observation/"))
            .unwrap();
        self.server.get(some_b).assert_error(404);
        self.clean("Observation/_history?_count=1000");
        self.clean("_history?_count=1000");
        // $everything of A: A's data.
        let all = everything(&self.server, a);
        assert!(all.iter().all(|n| !self.b_data.contains(n)));
        assert!(all.contains(&format!("Patient/{a}")));
        // A system-level $export is not for a patient's token…
        self.server
            .request("GET", "$export")
            .header("Prefer", "respond-async")
            .send()
            .assert_error(403);
        // …Patient/$export is, and the job exports A's data only, all of
        // it: the grant goes with the job.
        let exported = export(&self.server, "Patient/$export");
        for n in &exported {
            assert!(!self.b_data.contains(n), "Patient/$export leaked {n}");
        }
        assert!(exported.contains(&format!("Patient/{a}")));
        assert!(!exported.contains(&format!("Patient/{b}")));
        for (t, n) in &self.a_counts {
            let prefix = format!("{t}/");
            let found = exported.iter().filter(|e| e.starts_with(&prefix)).count();
            assert_eq!(found, *n, "{t} in Patient/$export");
        }
    }
}

/// Runs the export `kick_off` under the server's token to its end and
/// answers every resource of its files, as `Type/id`.
fn export(server: &Server, kick_off: &str) -> Vec<String> {
    let kick = server
        .request("GET", kick_off)
        .header("Prefer", "respond-async")
        .send();
    assert_eq!(kick.status, 202, "{kick_off}: {}", kick.text());
    let status = kick.header("content-location").unwrap().to_owned();
    let started = std::time::Instant::now();
    let manifest = loop {
        let r = server.get(&status);
        if r.status == 200 {
            break r.json();
        }
        assert_eq!(r.status, 202, "{}", r.text());
        assert!(
            started.elapsed().as_secs() < 120,
            "{kick_off} did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut exported = Vec::new();
    for file in manifest["output"].as_array().unwrap() {
        let ndjson = server.request("GET", file["url"].as_str().unwrap()).send();
        assert_eq!(ndjson.status, 200);
        for line in ndjson.text().lines().filter(|l| !l.is_empty()) {
            let resource: Value = serde_json::from_str(line).unwrap();
            exported.push(format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap(),
                resource["id"].as_str().unwrap()
            ));
        }
    }
    server.delete(&status).assert_status(202);
    exported
}

both_backends! {
    fn a_patients_token_sees_nothing_of_another_patient() {
        let Some(world) = world() else { return };
        let a = world.a.clone();
        for (scope, fhir_user, patient) in [
            ("patient/*.rs", None, Some(a.as_str())),
            ("patient/*.read", None, Some(a.as_str())),
            ("launch/patient openid fhirUser patient/*.rs", None, Some(a.as_str())),
            ("user/*.rs", Some(format!("Patient/{a}")), None),
        ] {
            let token = world.server.token(scope, patient, fhir_user.as_deref());
            world.server.use_token(Some(&token));
            world.matrix();
        }
    }

    fn type_limited_and_granular_tokens_see_only_what_they_name() {
        let Some(world) = world() else { return };
        let (a, b) = (world.a.clone(), world.b.clone());
        let token = world.server.token("patient/Observation.rs patient/Patient.rs", Some(&a), None);
        world.server.use_token(Some(&token));
        assert_eq!(world.counted("Observation?_count=1000"), world.a_count("Observation"));
        world.server.get("Encounter").assert_error(403);
        // An include of a type not granted adds nothing.
        let included = world.clean(&format!("Observation?patient=Patient/{a}&_include=Observation:encounter&_count=5"));
        assert!(!names(&included).iter().any(|n| n.starts_with("Encounter/")));
        // A system search is of the granted types.
        let all = world.clean("?_count=1000");
        assert!(names(&all).iter().all(|n| n.starts_with("Observation/") || n.starts_with("Patient/")));
        // $everything holds only the granted types, all of them A's.
        let record = everything(&world.server, &a);
        assert!(record.iter().all(|n| n.starts_with("Observation/") || n.starts_with("Patient/")), "{record:?}");
        assert_eq!(record.iter().filter(|n| n.starts_with("Observation/")).count(), world.a_count("Observation"));

        let lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
        world.server.use_token(Some(&world.server.token("system/*.rs", None, None)));
        let labs = world.server.read_json(&format!("Observation?patient=Patient/{a}&category={lab}&_summary=count"))["total"].as_u64().unwrap() as usize;
        assert!(labs > 0 && labs < world.a_count("Observation"));
        let token = world.server.token(&format!("patient/Observation.rs?category={lab}"), Some(&a), None);
        world.server.use_token(Some(&token));
        assert_eq!(world.counted("Observation?_count=1000"), labs);
        assert_eq!(world.counted(&format!("Observation?patient=Patient/{b}&_count=1000")), 0);
        let vital = world.clean("Observation?category=vital-signs&_count=1000");
        assert_eq!(entries(&vital).len(), 0);
        // Its export holds A's lab results, and nothing else.
        let exported = export(&world.server, "Patient/$export?_type=Observation");
        assert_eq!(exported.len(), labs);
        assert!(exported.iter().all(|n| !world.b_data.contains(n)));

        // A system token sees both: the control.
        world.server.use_token(Some(&world.server.token("system/*.rs", None, None)));
        assert!(world.server.read_json(&format!("Observation?patient=Patient/{b}&_summary=count"))["total"].as_u64().unwrap() > 0);
    }
}

// ---------------------------------------------------------------------------
// HTTPS

both_backends! {
    fn https_serves_the_configured_certificate_to_a_verifying_client() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let port = conformance_tests::free_port();
        let server = Server::local(|config| {
            config.listen = None;
            config.tls = Some(hearth::config::Tls {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                cert: fixtures.join("tls-cert.pem"),
                key: fixtures.join("tls-key.pem"),
            });
        });
        assert_eq!(server.base, format!("https://127.0.0.1:{port}"));
        let ca = std::fs::read(fixtures.join("tls-ca.pem")).unwrap();
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        for host in ["localhost", "127.0.0.1"] {
            let response = client
                .get(format!("https://{host}:{port}/metadata"))
                .header("Accept", "application/fhir+json")
                .send()
                .unwrap();
            assert_eq!(response.status(), 200);
            let statement: Value = response.json().unwrap();
            // Links built from an HTTPS request say https.
            assert!(statement["implementation"]["url"].as_str().unwrap().starts_with("https://"), "{statement}");
        }
        // A client that does not trust the test CA refuses the connection.
        let strict = reqwest::blocking::Client::builder().use_rustls_tls().build().unwrap();
        assert!(strict.get(format!("https://localhost:{port}/metadata")).send().is_err());
        // Plain HTTP on the TLS port is no FHIR answer.
        let plain = reqwest::blocking::Client::new().get(format!("http://127.0.0.1:{port}/metadata")).send();
        assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    }
}
