//! The authorization server's web pages: the authorization endpoint
//! (`GET` or form `POST /auth/authorize`), sign-in (`POST /auth/sign-in`)
//! and consent (`POST /auth/consent`). Plain accessible HTML with its one
//! stylesheet inline (allowed by its hash), no script and no external
//! asset; every form carries a CSRF token that must match the browser's
//! cookie and the ticket (`hearth_auth::authorize`); the pages are never
//! framed, cached or sent with a referrer.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hearth_auth::authorize::{AuthRequest, Refusal};
use hearth_auth::oauth::Params;
use hearth_auth::scope::{Level, Permission, ResourceScope, Scope, Scopes};
use hearth_auth::user::User;

use crate::AppState;

const CSRF_COOKIE: &str = "hearth_csrf";
const MAX_FORM_BYTES: usize = 64 * 1024;

const STYLE: &str = "body{font:1rem/1.5 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1a1a1a}\
main{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border:1px solid #c8cdd2;border-radius:6px}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:.75rem 0 .25rem;font-weight:600}\
input[type=text],input[type=password],select{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #5f6b76;border-radius:4px;font:inherit}\
ul{list-style:none;padding:0}li{margin:.5rem 0;padding:.5rem;border:1px solid #dde1e5;border-radius:4px}\
li label{display:inline;font-weight:400}li label.choice{display:block;margin:.5rem 0 .25rem;font-weight:600}\
button{font:inherit;padding:.55rem 1.2rem;margin:1rem .5rem 0 0;border-radius:4px;border:1px solid #0b4f8a;background:#0b5cab;color:#fff;cursor:pointer}\
button.secondary{background:#fff;color:#0b4f8a}button:focus,input:focus,select:focus{outline:3px solid #f0a500;outline-offset:2px}\
.error{color:#8a1010;background:#fdecec;border:1px solid #e4a0a0;padding:.5rem;border-radius:4px}.who{color:#404a53}";

/// `Content-Security-Policy`: nothing but the inline stylesheet, forms
/// posted to this server or (the consent's redirect) `redirect_origin`.
fn csp(redirect_origin: Option<&str>) -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    let hash = HASH.get_or_init(|| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(hearth_auth::digest(STYLE.as_bytes()))
    });
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        redirect_origin.map(|o| format!(" {o}")).unwrap_or_default()
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: its status, title and body, with the headers every page has.
fn page(
    state: &AppState,
    status: u16,
    title: &str,
    body: &str,
    csrf: Option<&str>,
    redirect_origin: Option<&str>,
) -> HttpResponse {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Hearth</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp(redirect_origin)))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if let Some(csrf) = csrf {
        let secure = state
            .oauth
            .as_ref()
            .is_some_and(|s| s.base().starts_with("https://"));
        response.insert_header((
            header::SET_COOKIE,
            format!(
                "{CSRF_COOKIE}={csrf}; Path=/auth; HttpOnly; SameSite=Strict{}",
                if secure { "; Secure" } else { "" }
            ),
        ));
    }
    response.body(html)
}

fn error_page(state: &AppState, message: &str) -> HttpResponse {
    page(
        state,
        400,
        "Cannot continue",
        &format!(
            "<h1>This request cannot continue</h1><p class=\"error\" role=\"alert\">{}</p>\
             <p>Return to the app and start again.</p>",
            escape(message)
        ),
        None,
        None,
    )
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

/// The CSRF cookie the browser sent.
fn cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// The pairs of a form POST (form-encoded, at most 64 KiB, arriving within
/// `body_timeout`): the pages' forms and the token, introspection,
/// revocation and launch endpoints'.
pub(crate) async fn read_form(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, String)>, String> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err("the request body must be application/x-www-form-urlencoded".into());
    }
    let body = crate::context::read_body(&state.config, req, payload, MAX_FORM_BYTES)
        .await
        .map_err(|e| match e {
            crate::error::ApiError::PayloadTooLarge { .. } => {
                "the request body is larger than 64 KiB".to_owned()
            }
            other => other.to_string(),
        })?;
    Ok(form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// A form posted from one of the pages after the first: its fields, and
/// the request and user its ticket carries, once the ticket and the CSRF
/// token check out.
struct Ticketed {
    server: std::sync::Arc<hearth_auth::oauth::AuthServer>,
    pairs: Vec<(String, String)>,
    request: AuthRequest,
    username: Option<String>,
    ticket: String,
    csrf: String,
}

/// [`ticketed`], for the pages after sign-in: the ticket must name the user.
async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Ticketed, String), HttpResponse> {
    let form = ticketed(state, req, payload).await?;
    match form.username.clone() {
        Some(username) => Ok((form, username)),
        None => Err(error_page(state, "Sign in first.")),
    }
}

/// Reads a page's form and checks its ticket; the error page otherwise.
async fn ticketed(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Ticketed, HttpResponse> {
    let Some(server) = state.oauth.clone() else {
        return Err(error_page(
            state,
            "This server has no authorization server.",
        ));
    };
    let pairs = read_form(state, req, payload)
        .await
        .map_err(|e| error_page(state, &e))?;
    let csrf = cookie(req);
    let ticket = single(&pairs, "ticket").unwrap_or_default().to_owned();
    let (request, username) = server
        .read_ticket(&ticket, csrf.as_deref(), single(&pairs, "csrf"), now())
        .map_err(|e| error_page(state, &e))?;
    Ok(Ticketed {
        server,
        pairs,
        request,
        username,
        ticket,
        csrf: csrf.unwrap_or_default(),
    })
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) if !v.is_empty() => Some(v.as_str()),
        _ => None,
    }
}

fn now() -> i64 {
    hearth_model::datetime::now_ms() / 1000
}

/// `GET` or `POST /auth/authorize`: checks the request; a refusal goes
/// back to the app (or, for a bad client or redirect, is shown here); a
/// good request gets the sign-in page.
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(server) = state.oauth.clone() else {
        return error_page(&state, "This server has no authorization server.");
    };
    let pairs = if req.method() == actix_web::http::Method::POST {
        match read_form(&state, &req, payload).await {
            Ok(pairs) => pairs,
            Err(e) => return error_page(&state, &e),
        }
    } else {
        form_urlencoded::parse(req.query_string().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    let params = match Params::new(pairs) {
        Ok(params) => params,
        Err(e) => return error_page(&state, &e.to_string()),
    };
    let store = state.store.clone();
    let checked = {
        let server = server.clone();
        web::block(move || server.authorization_request(&store, &params, now())).await
    };
    let (request, client) = match checked {
        Ok(Ok(found)) => found,
        Ok(Err(refusal)) => return refused(&state, &refusal),
        Err(_) => return error_page(&state, "The server is shutting down."),
    };
    let csrf = cookie(&req).unwrap_or_else(hearth_auth::authorize::random_token);
    let ticket = server.ticket(&request, None, &csrf, now());
    sign_in_page(&state, &client.name, &ticket, &csrf, None)
}

fn refused(state: &AppState, refusal: &Refusal) -> HttpResponse {
    match (refusal, refusal.location()) {
        (Refusal::Page(message), _) => error_page(state, message),
        (_, Some(location)) => redirect(&location),
        _ => error_page(state, "The request cannot continue."),
    }
}

fn sign_in_page(
    state: &AppState,
    app: &str,
    ticket: &str,
    csrf: &str,
    error: Option<&str>,
) -> HttpResponse {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"error\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p><strong>{app}</strong> asks to use your health record. Sign in to decide what it may see.</p>{error}\
         <form method=\"post\" action=\"/auth/sign-in\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        app = escape(app),
        ticket = escape(ticket),
        csrf = escape(csrf),
    );
    page(
        state,
        if error.is_empty() { 200 } else { 401 },
        "Sign in",
        &body,
        Some(csrf),
        None,
    )
}

/// `POST /auth/sign-in`: the consent page, or the sign-in page again.
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Ticketed {
        server,
        pairs,
        request,
        ticket,
        csrf,
        ..
    } = match ticketed(&state, &req, payload).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    let username = single(&pairs, "username").unwrap_or_default().to_owned();
    let password = single(&pairs, "password").unwrap_or_default().to_owned();
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let store = state.store.clone();
    let client_id = request.client_id.clone();
    let answer = {
        let server = server.clone();
        web::block(move || {
            let user = server.sign_in(&store, &username, &password, &address);
            let client = store.client(&client_id).ok().flatten();
            (user, client)
        })
        .await
    };
    let Ok((user, client)) = answer else {
        return error_page(&state, "The server is shutting down.");
    };
    let Some(client) = client else {
        return error_page(&state, "The app is no longer registered.");
    };
    match user {
        Ok(user) => {
            let ticket = server.ticket(&request, Some(&user.username), &csrf, now());
            if request.needs_patient(&user) {
                return picker_page(&state, &client.name, &ticket, &csrf, &Picked::default());
            }
            consent_page(&state, &client.name, &request, &user, &ticket, &csrf)
        }
        Err(e) => sign_in_page(&state, &client.name, &ticket, &csrf, Some(&e.to_string())),
    }
}

/// What the patient picker shows: the search made and what it found.
#[derive(Default)]
struct Picked {
    name: String,
    birthdate: String,
    /// (id, name, birth date) of each patient found.
    found: Vec<(String, String, String)>,
    message: Option<String>,
}

/// The most patients the picker lists.
const PICKER_PAGE: usize = 20;

/// The patient picker: a practitioner in a standalone launch chooses whose
/// record the app opens (searched by name and birth date).
fn picker_page(
    state: &AppState,
    app: &str,
    ticket: &str,
    csrf: &str,
    picked: &Picked,
) -> HttpResponse {
    let hidden = format!(
        "<input type=\"hidden\" name=\"ticket\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(ticket),
        escape(csrf)
    );
    let message = picked
        .message
        .as_deref()
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    let mut results = String::new();
    if !picked.found.is_empty() {
        results.push_str(&format!(
            "<form method=\"post\" action=\"/auth/patient\">{hidden}<fieldset><legend>Patients found</legend><ul>"
        ));
        for (i, (id, name, birth)) in picked.found.iter().enumerate() {
            results.push_str(&format!(
                "<li><input type=\"radio\" id=\"patient-{i}\" name=\"patient\" value=\"{}\"{}> <label for=\"patient-{i}\">{} (born {}, id {})</label></li>",
                escape(id),
                if i == 0 { " checked" } else { "" },
                escape(name),
                escape(birth),
                escape(id)
            ));
        }
        results.push_str("</ul></fieldset><button type=\"submit\" name=\"action\" value=\"choose\">Choose this patient</button></form>");
    }
    let body = format!(
        "<h1>Choose a patient</h1><p><strong>{app}</strong> opens one patient's record. Find the patient.</p>{message}\
         <form method=\"post\" action=\"/auth/patient\">{hidden}\
         <label for=\"name\">Name</label><input type=\"text\" id=\"name\" name=\"name\" value=\"{name}\" autofocus>\
         <label for=\"birthdate\">Birth date (YYYY-MM-DD)</label><input type=\"text\" id=\"birthdate\" name=\"birthdate\" value=\"{birthdate}\" inputmode=\"numeric\">\
         <button type=\"submit\" name=\"action\" value=\"search\" class=\"secondary\">Search</button></form>{results}",
        app = escape(app),
        name = escape(&picked.name),
        birthdate = escape(&picked.birthdate),
    );
    page(state, 200, "Choose a patient", &body, Some(csrf), None)
}

/// The store as the practitioner `fhir_user` reads patients: their own
/// grant for `user/Patient.rs`.
fn as_practitioner(store: &hearth_store::Store, fhir_user: &str) -> hearth_store::Store {
    let principal = hearth_auth::Principal {
        issuer: String::new(),
        subject: None,
        client_id: None,
        fhir_user: Some(fhir_user.to_owned()),
        patient: None,
        encounter: None,
        scopes: Scopes::parse_strict("user/Patient.rs").unwrap_or_default(),
        expires_at: 0,
        token_id: None,
    };
    store.under(hearth_store::Access::new(
        hearth_auth::Grant::of(&principal),
        None,
    ))
}

/// A Patient's name and birth date, for the picker.
fn patient_summary(body: &[u8]) -> (String, String) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let name = &value["name"][0];
    let given: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let text = match (name["family"].as_str(), given.is_empty()) {
        (Some(family), false) => format!("{family}, {}", given.join(" ")),
        (Some(family), true) => family.to_owned(),
        (None, _) => name["text"].as_str().unwrap_or("(no name)").to_owned(),
    };
    (
        text,
        value["birthDate"].as_str().unwrap_or("unknown").to_owned(),
    )
}

/// `POST /auth/patient`: the picker's search (`action=search`, `name`,
/// `birthdate`) and choice (`action=choose`, `patient`), which leads to
/// the consent page.
pub async fn patient(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (form, username) = match signed_in(&state, &req, payload).await {
        Ok(signed_in) => signed_in,
        Err(page) => return page,
    };
    let Ticketed {
        server,
        pairs,
        mut request,
        ticket,
        csrf,
        ..
    } = form;
    let action = single(&pairs, "action").unwrap_or("search").to_owned();
    let name = single(&pairs, "name").unwrap_or_default().trim().to_owned();
    let birthdate = single(&pairs, "birthdate")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let chosen = single(&pairs, "patient").map(str::to_owned);
    let store = state.store.clone();
    let client_id = request.client_id.clone();
    let found = web::block(move || {
        let user = store.user(&username).ok().flatten();
        let client = store.client(&client_id).ok().flatten();
        let (Some(user), Some(client)) = (user, client) else {
            return Err("The user or the app is no longer registered.".to_owned());
        };
        let practitioner = as_practitioner(&store, &user.fhir_user);
        let mut picked = Picked {
            name: name.clone(),
            birthdate: birthdate.clone(),
            ..Picked::default()
        };
        if action == "choose" {
            let id = chosen.ok_or("Choose a patient.")?;
            return match practitioner.read("Patient", &id) {
                Ok(_) => Ok((user, client, picked, Some(id))),
                Err(_) => Err("That patient cannot be found.".to_owned()),
            };
        }
        let mut params: Vec<(String, String)> = Vec::new();
        if !name.is_empty() {
            params.push(("name".into(), name));
        }
        if !birthdate.is_empty() {
            params.push(("birthdate".into(), birthdate));
        }
        if params.is_empty() {
            picked.message = Some("Give a name or a birth date.".into());
            return Ok((user, client, picked, None));
        }
        let options = hearth_store::search::ParseOptions {
            strict: true,
            default_count: PICKER_PAGE as i64,
            max_count: PICKER_PAGE as i64,
            base: None,
            custom: practitioner.custom_params(),
        };
        let query = match hearth_store::search::parse(&["Patient".to_owned()], &params, &options) {
            Ok(query) => query,
            Err(_) => {
                picked.message = Some("The birth date must be written YYYY-MM-DD.".into());
                return Ok((user, client, picked, None));
            }
        };
        let results = practitioner
            .search(&query, &hearth_store::search::SearchPage::default())
            .map_err(|_| "The search could not be run; try again.".to_owned())?;
        picked.found = results
            .matches
            .iter()
            .filter_map(|v| {
                let (name, birth) = patient_summary(v.body.as_deref()?);
                Some((v.id.clone(), name, birth))
            })
            .collect();
        if picked.found.is_empty() {
            picked.message = Some("No patient matches.".into());
        }
        Ok((user, client, picked, None))
    })
    .await;
    match found {
        Ok(Ok((user, client, _, Some(id)))) => {
            request.patient = Some(id);
            let ticket = server.ticket(&request, Some(&user.username), &csrf, now());
            consent_page(&state, &client.name, &request, &user, &ticket, &csrf)
        }
        Ok(Ok((_, client, picked, None))) => {
            picker_page(&state, &client.name, &ticket, &csrf, &picked)
        }
        Ok(Err(message)) => error_page(&state, &message),
        Err(_) => error_page(&state, "The server is shutting down."),
    }
}

/// The narrower choices offered for a broad scope (a category of
/// observations or conditions), and the question they answer.
fn narrowings(scope: &ResourceScope) -> (&'static str, &'static [(&'static str, &'static str)]) {
    if !scope.filter.is_empty() {
        return ("", &[]);
    }
    match scope.resource_type.as_deref() {
        Some("Observation") => (
            "Which observations",
            &[
                (
                    "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
                    "Only lab results",
                ),
                (
                    "category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
                    "Only vital signs",
                ),
            ],
        ),
        Some("Condition") => (
            "Which conditions",
            &[(
                "category=http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item",
                "Only the problem list",
            )],
        ),
        _ => ("", &[]),
    }
}

/// What a resource type holds, in plain words.
fn noun(resource_type: Option<&str>) -> String {
    match resource_type {
        None => "health records".into(),
        Some("Patient") => "demographics (name, birth date, contact details)".into(),
        Some("Observation") => "lab results, vital signs and other observations".into(),
        Some("Condition") => "conditions and health problems".into(),
        Some("MedicationRequest") => "prescribed medications".into(),
        Some("MedicationStatement") => "medications taken".into(),
        Some("AllergyIntolerance") => "allergies and intolerances".into(),
        Some("Immunization") => "immunizations".into(),
        Some("Encounter") => "visits and admissions".into(),
        Some("Procedure") => "procedures".into(),
        Some("DiagnosticReport") => "lab and imaging reports".into(),
        Some("DocumentReference") => "clinical documents".into(),
        Some("CarePlan") => "care plans".into(),
        Some(other) => format!("{other} records"),
    }
}

/// A scope in plain words, for a person deciding whether to allow it.
pub fn describe(scope: &Scope, patient_user: bool) -> String {
    match scope {
        Scope::Resource(r) => {
            let mut verbs = Vec::new();
            if r.permissions.contains(Permission::Read)
                || r.permissions.contains(Permission::Search)
            {
                verbs.push("read");
            }
            if r.permissions.contains(Permission::Create) {
                verbs.push("add to");
            }
            if r.permissions.contains(Permission::Update) {
                verbs.push("change");
            }
            if r.permissions.contains(Permission::Delete) {
                verbs.push("delete");
            }
            let verbs = match verbs.as_slice() {
                [] => "use".to_owned(),
                [one] => (*one).to_owned(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
            };
            let noun = noun(r.resource_type.as_deref());
            let mut text = match (r.level, patient_user) {
                (_, true) => format!("{} your {noun}", capitalise(&verbs)),
                (Level::Patient, false) => format!("{} the patient's {noun}", capitalise(&verbs)),
                _ => format!("{} the {noun} you have access to", capitalise(&verbs)),
            };
            if !r.filter.is_empty() {
                let only: Vec<String> = r
                    .filter
                    .iter()
                    .map(|(k, v)| format!("{k} {}", v.rsplit('|').next().unwrap_or(v)))
                    .collect();
                text.push_str(&format!(" (only {})", only.join(", ")));
            }
            text
        }
        Scope::LaunchContext(_) => "Know which patient's record you are using".into(),
        Scope::OfflineAccess => {
            "Keep its access when you are not using it, until you revoke it".into()
        }
        Scope::OnlineAccess => "Keep its access for the rest of the day".into(),
        Scope::OpenId | Scope::FhirUser | Scope::Profile => "Know who you are".into(),
        Scope::Launch => "Open in the context of your record".into(),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

fn consent_page(
    state: &AppState,
    app: &str,
    request: &AuthRequest,
    user: &User,
    ticket: &str,
    csrf: &str,
) -> HttpResponse {
    let scopes = Scopes::parse_strict(&request.scope).unwrap_or_default();
    let patient_user = user.patient().is_some();
    let mut items = String::new();
    for (i, scope) in scopes.iter().enumerate() {
        let mut item = format!(
            "<li><input type=\"checkbox\" id=\"scope-{i}\" name=\"scope\" value=\"{i}\" checked> \
             <label for=\"scope-{i}\">{}</label>",
            escape(&describe(scope, patient_user))
        );
        if let Scope::Resource(r) = scope {
            let (question, choices) = narrowings(r);
            if !choices.is_empty() {
                item.push_str(&format!(
                    "<label class=\"choice\" for=\"narrow-{i}\">{question}</label><select id=\"narrow-{i}\" name=\"narrow-{i}\"><option value=\"\">All of them</option>"
                ));
                for (filter, words) in choices {
                    item.push_str(&format!(
                        "<option value=\"{}\">{}</option>",
                        escape(&format!("{scope}?{filter}")),
                        escape(words)
                    ));
                }
                item.push_str("</select>");
            }
        }
        item.push_str("</li>");
        items.push_str(&item);
    }
    let body = format!(
        "<h1>Allow {app} to use your health record?</h1>\
         <p class=\"who\">Signed in as {username} ({fhir_user}).{for_patient}</p>\
         <form method=\"post\" action=\"/auth/consent\">\
         <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <fieldset><legend>{app} asks to:</legend><ul>{items}</ul></fieldset>\
         <p>Untick what you do not want to share. You can revoke access later.</p>\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>",
        app = escape(app),
        username = escape(&user.username),
        fhir_user = escape(&user.fhir_user),
        for_patient = request
            .patient
            .as_deref()
            .map(|p| format!(" For patient {}.", escape(p)))
            .unwrap_or_default(),
        ticket = escape(ticket),
        csrf = escape(csrf),
    );
    page(
        state,
        200,
        "Allow access",
        &body,
        Some(csrf),
        hearth_auth::client::origin(&request.redirect_uri).as_deref(),
    )
}

/// `POST /auth/consent`: the code (or the refusal) goes back to the app.
pub async fn consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (form, username) = match signed_in(&state, &req, payload).await {
        Ok(signed_in) => signed_in,
        Err(page) => return page,
    };
    let Ticketed {
        server,
        pairs,
        request,
        ..
    } = form;
    if single(&pairs, "decision") != Some("approve") {
        return redirect(&server.deny(&request));
    }
    let asked: Vec<Scope> = Scopes::parse_strict(&request.scope)
        .unwrap_or_default()
        .iter()
        .cloned()
        .collect();
    let mut granted = Vec::new();
    for (name, value) in &pairs {
        if name != "scope" {
            continue;
        }
        let Some(scope) = value.parse::<usize>().ok().and_then(|i| asked.get(i)) else {
            return error_page(&state, "The form names a scope that was not asked for.");
        };
        let narrowed = single(&pairs, &format!("narrow-{value}"));
        let chosen = match narrowed.map(Scope::parse) {
            Some(Ok(Some(narrow))) => narrow,
            Some(_) => return error_page(&state, "The form's choice is not a scope."),
            None => scope.clone(),
        };
        if !granted.contains(&chosen) {
            granted.push(chosen);
        }
    }
    let granted = Scopes::from_vec(granted);
    let store = state.store.clone();
    let outcome = web::block(move || {
        let user = store
            .user(&username)
            .map_err(|e| Refusal::Page(e.to_string()))?
            .ok_or_else(|| Refusal::Page("The user no longer exists.".into()))?;
        server.approve(&store, &request, &user, &granted, now())
    })
    .await;
    match outcome {
        Ok(Ok(location)) => redirect(&location),
        Ok(Err(refusal)) => refused(&state, &refusal),
        Err(_) => error_page(&state, "The server is shutting down."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_said_in_plain_words() {
        let said = |text: &str, patient| describe(&Scope::parse(text).unwrap().unwrap(), patient);
        assert_eq!(
            said("patient/Observation.rs", true),
            "Read your lab results, vital signs and other observations"
        );
        assert_eq!(
            said("patient/*.cruds", true),
            "Read, add to, change and delete your health records"
        );
        assert_eq!(
            said("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true),
            "Read your lab results, vital signs and other observations (only category laboratory)"
        );
        assert_eq!(
            said("offline_access", true),
            "Keep its access when you are not using it, until you revoke it"
        );
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(
            csp(Some("https://app.example")).contains("form-action 'self' https://app.example;")
        );
    }
}
