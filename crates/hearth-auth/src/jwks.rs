//! JSON Web Key Sets published at a URL: an external issuer's keys, and
//! the keys a backend client registers by URL. A set is kept as long as
//! its response's `Cache-Control: max-age` says, between a minute and a
//! day (five minutes without one).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

/// The largest JWKS read.
const MAX_BYTES: u64 = 1024 * 1024;
/// A set that lacks a key asked for is fetched again, at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// An HTTP client for key sets: short timeouts, no redirects followed to
/// somewhere else.
pub(crate) fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Fetches the JWKS at `url`: the set, and how long it may be kept.
pub(crate) fn fetch(
    http: &reqwest::blocking::Client,
    url: &str,
) -> Result<(JwkSet, Duration), String> {
    let response = http
        .get(url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.without_url().to_string())?;
    let max_age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age="))
                .and_then(|n| n.trim().parse::<u64>().ok())
        });
    let mut body = Vec::new();
    response
        .take(MAX_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() as u64 > MAX_BYTES {
        return Err("the key set is larger than 1 MiB".into());
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
    let lifetime = Duration::from_secs(max_age.unwrap_or(300).clamp(60, 86_400));
    Ok((set, lifetime))
}

struct Cached {
    set: Arc<JwkSet>,
    fetched: Instant,
    lifetime: Duration,
}

/// Key sets fetched by URL, shared by a server's workers.
pub struct RemoteKeySets {
    http: reqwest::blocking::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Default for RemoteKeySets {
    fn default() -> Self {
        RemoteKeySets {
            http: http_client(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl RemoteKeySets {
    /// The set at `url`, from the cache while it is fresh and holds `kid`;
    /// fetched otherwise (blocking: call it off the async workers).
    pub fn get(&self, url: &str, kid: &str) -> Result<Arc<JwkSet>, String> {
        let now = Instant::now();
        if let Some(cached) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
        {
            let fresh = now.duration_since(cached.fetched) < cached.lifetime;
            let has_kid = cached
                .set
                .keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(kid));
            // An unknown kid may be a key published since; a client
            // cannot make the server fetch more than every 30 s for it.
            if fresh && (has_kid || now.duration_since(cached.fetched) < REFETCH_AFTER) {
                return Ok(cached.set.clone());
            }
        }
        let (set, lifetime) = fetch(&self.http, url)?;
        let set = Arc::new(set);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            url.to_owned(),
            Cached {
                set: set.clone(),
                fetched: now,
                lifetime,
            },
        );
        Ok(set)
    }
}
