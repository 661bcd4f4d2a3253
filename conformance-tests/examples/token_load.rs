//! Load on the token endpoint (`bench/tokens.sh`): SMART Backend Services
//! clients asking for tokens with ES384 assertions, each assertion new.
//!
//!   token_load keygen DIR
//!       writes DIR/key.pk8 (the P-384 private key) and DIR/jwks.json
//!   token_load run BASE CLIENT DIR COUNT CONCURRENCY
//!       signs COUNT assertions first (not timed), then posts them from
//!       CONCURRENCY keep-alive connections; prints tokens/s and failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde_json::json;

const KID: &str = "bench-key";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["keygen", dir] => keygen(dir),
        ["run", base, client, dir, count, concurrency] => run(
            base,
            client,
            dir,
            count.parse().expect("COUNT"),
            concurrency.parse().expect("CONCURRENCY"),
        ),
        _ => {
            eprintln!(
                "usage: token_load keygen DIR | token_load run BASE CLIENT DIR COUNT CONCURRENCY"
            );
            std::process::exit(2);
        }
    }
}

fn keygen(dir: &str) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": KID, "alg": "ES384",
        "x": URL_SAFE_NO_PAD.encode(&point[1..49]), "y": URL_SAFE_NO_PAD.encode(&point[49..97])}]});
    std::fs::write(format!("{dir}/key.pk8"), pkcs8.as_ref()).unwrap();
    std::fs::write(format!("{dir}/jwks.json"), jwks.to_string()).unwrap();
}

fn run(base: &str, client: &str, dir: &str, count: usize, concurrency: usize) {
    let rng = SystemRandom::new();
    let pkcs8 = std::fs::read(format!("{dir}/key.pk8")).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &pkcs8, &rng).unwrap();
    let token_url = format!("{}/auth/token", base.trim_end_matches('/'));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 290;
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES384", "typ": "JWT", "kid": KID}).to_string());
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..count)
            .map(|i| {
                let claims = json!({"iss": client, "sub": client, "aud": token_url, "exp": exp,
                    "jti": format!("{}-{i}", uuid::Uuid::new_v4())});
                let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
                let signature = pair.sign(&rng, input.as_bytes()).unwrap();
                let assertion = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("scope", "system/*.rs")
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", &assertion)
                    .finish()
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (bodies, next, failed, url) = (
                bodies.clone(),
                next.clone(),
                failed.clone(),
                token_url.clone(),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let ok = http
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body.clone())
                        .send()
                        .map(|r| {
                            let ok = r.status().is_success();
                            if !ok && failed.load(Ordering::Relaxed) == 0 {
                                eprintln!("{}: {}", r.status(), r.text().unwrap_or_default());
                            }
                            ok
                        })
                        .unwrap_or(false);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{count} tokens in {seconds:.2} s: {:.0} tokens/s, {} failed",
        count as f64 / seconds,
        failed.load(Ordering::Relaxed)
    );
}
