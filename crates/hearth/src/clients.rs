//! `hearth client`: the apps and services registered with Hearth's
//! authorization server (kept in the database: every node serves them at
//! once).

use std::io::Read;

use clap::{Args, Subcommand};
use hearth_auth::client::{self, Client, Credentials};
use hearth_store::Store;

use crate::config::{Config, ServeArgs};

/// The scopes a client may be granted when `--scope` is not given: an
/// app reads; a backend service reads everything.
const APP_SCOPES: &str =
    "launch launch/patient launch/encounter openid fhirUser offline_access online_access patient/*.rs user/*.rs";
const SERVICE_SCOPES: &str = "system/*.rs";

/// The shortest client secret accepted.
const MIN_SECRET_CHARS: usize = 16;

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(subcommand)]
    pub command: ClientCommand,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. Without credentials it is public (a browser or
    /// native app, which must use PKCE); with --secret-stdin, confidential
    /// symmetric; with --jwks or --jwks-url, confidential asymmetric (SMART
    /// Backend Services' private_key_jwt).
    Add(AddArgs),
    /// List the clients: id, kind, name, allowed scopes.
    List,
    /// Remove a client: it gets no more tokens (those it has live until
    /// they expire; `hearth revoke` stops them sooner).
    Remove {
        /// The client's id.
        client_id: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The client's id (letters, digits, '.', '_', '~', '-').
    pub client_id: String,
    /// The name shown to people asked to approve it.
    #[arg(long)]
    pub name: String,
    /// A redirect URI an authorization request may name (exactly); repeat
    /// for several.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Read the client's secret from standard input (at least 16
    /// characters; kept as an Argon2id hash).
    #[arg(long = "secret-stdin", conflicts_with_all = ["jwks", "jwks_url"])]
    pub secret_stdin: bool,
    /// A file holding the client's public keys (a JWKS: RSA or EC P-384).
    #[arg(long, conflicts_with = "jwks_url")]
    pub jwks: Option<std::path::PathBuf>,
    /// The URL where the client publishes its public keys (https).
    #[arg(long = "jwks-url")]
    pub jwks_url: Option<String>,
    /// The scopes it may be granted, space-separated [default: reading
    /// scopes: "system/*.rs" for a client with keys, otherwise
    /// "launch launch/patient launch/encounter openid fhirUser
    /// offline_access online_access patient/*.rs user/*.rs"].
    #[arg(long)]
    pub scope: Option<String>,
    /// Where an EHR launches it.
    #[arg(long = "launch-uri")]
    pub launch_uri: Option<String>,
    /// The client is an EHR: it may create launch contexts for apps
    /// (`POST /auth/launch`); it must be confidential.
    #[arg(long = "launches")]
    pub launches: bool,
}

impl AddArgs {
    /// A client with only an id and a name: public, default scopes.
    pub fn new(client_id: &str, name: &str) -> AddArgs {
        AddArgs {
            client_id: client_id.to_owned(),
            name: name.to_owned(),
            redirect_uris: Vec::new(),
            secret_stdin: false,
            jwks: None,
            jwks_url: None,
            scope: None,
            launch_uri: None,
            launches: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot open the database: {0}")]
    Store(#[from] hearth_store::StoreError),
}

/// Runs the command; answers what to print. `stdin` gives the secret.
pub fn run(
    args: &ClientArgs,
    config: &Config,
    stdin: &mut dyn Read,
) -> Result<String, ClientError> {
    let store = Store::open(&config.database(), &config.store)?;
    match &args.command {
        ClientCommand::Add(add) => {
            let client = client_of(add, stdin)?;
            if !store.add_client(&client)? {
                return Err(ClientError::Invalid(format!(
                    "client {} is registered already (remove it first)",
                    client.id
                )));
            }
            Ok(format!(
                "registered {} ({}), allowed: {}\n",
                client.id,
                client.credentials.kind(),
                client.scope
            ))
        }
        ClientCommand::List => Ok(store
            .clients()?
            .iter()
            .map(|c| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    c.id,
                    c.credentials.kind(),
                    c.name,
                    c.scope
                )
            })
            .collect()),
        ClientCommand::Remove { client_id } => {
            if store.remove_client(client_id)? {
                Ok(format!("removed {client_id}\n"))
            } else {
                Err(ClientError::Invalid(format!(
                    "no client {client_id} is registered"
                )))
            }
        }
    }
}

fn client_of(add: &AddArgs, stdin: &mut dyn Read) -> Result<Client, ClientError> {
    let credentials = if add.secret_stdin {
        let mut secret = String::new();
        stdin
            .take(4096)
            .read_to_string(&mut secret)
            .map_err(|e| ClientError::Invalid(format!("cannot read the secret: {e}")))?;
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(ClientError::Invalid(format!(
                "the secret must be at least {MIN_SECRET_CHARS} characters"
            )));
        }
        Credentials::Secret {
            hash: client::hash_secret(secret),
        }
    } else if let Some(path) = &add.jwks {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let jwks: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ClientError::Invalid(format!("{} is not JSON: {e}", path.display())))?;
        Credentials::Jwks { jwks }
    } else if let Some(url) = &add.jwks_url {
        Credentials::JwksUrl { url: url.clone() }
    } else {
        Credentials::None
    };
    let scope = add.scope.clone().unwrap_or_else(|| {
        match credentials {
            Credentials::Jwks { .. } | Credentials::JwksUrl { .. } => SERVICE_SCOPES,
            _ => APP_SCOPES,
        }
        .to_owned()
    });
    let client = Client {
        id: add.client_id.clone(),
        name: add.name.clone(),
        redirect_uris: add.redirect_uris.clone(),
        scope,
        launch_uri: add.launch_uri.clone(),
        credentials,
        launches: add.launches,
        created_at: hearth_model::datetime::now_ms(),
    };
    client
        .validate()
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    Ok(client)
}
