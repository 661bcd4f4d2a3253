//! `hearth launch`: an EHR launch from the command line. It keeps a launch
//! context for an app (single-use, five minutes) and prints the app's
//! launch URL (`{launch_uri}?iss={base_url}&launch={value}`).

use clap::Args;
use hearth_auth::authorize::LaunchContext;
use hearth_store::Store;

use crate::config::{Auth, Config, ServeArgs};

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The app to launch (its client id; it needs a --launch-uri).
    #[arg(long)]
    pub client: String,
    /// The patient in context.
    #[arg(long)]
    pub patient: Option<String>,
    /// The encounter in context.
    #[arg(long)]
    pub encounter: Option<String>,
    /// What the app is opened to do (SMART's `intent`).
    #[arg(long)]
    pub intent: Option<String>,
    /// Whether the app must show a patient banner [default: true with a patient].
    #[arg(long = "need-patient-banner")]
    pub need_patient_banner: Option<bool>,
    /// A stylesheet the app may follow.
    #[arg(long = "smart-style-url")]
    pub smart_style_url: Option<String>,
    #[command(flatten)]
    pub settings: ServeArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot open the database: {0}")]
    Store(#[from] hearth_store::StoreError),
}

/// Keeps the launch; answers the app's launch URL.
pub fn run(args: &LaunchArgs, config: &Config) -> Result<String, LaunchError> {
    if !matches!(config.auth, Auth::Smart { .. }) {
        return Err(LaunchError::Invalid(
            "launches are for a server with auth = \"smart\"".into(),
        ));
    }
    let base = config
        .base_url
        .clone()
        .ok_or_else(|| LaunchError::Invalid("base_url is not set".into()))?;
    let store = Store::open(&config.database(), &config.store)?;
    let context = LaunchContext {
        client_id: args.client.clone(),
        patient: args.patient.clone(),
        encounter: args.encounter.clone(),
        fhir_context: Vec::new(),
        intent: args.intent.clone(),
        need_patient_banner: args.need_patient_banner,
        smart_style_url: args.smart_style_url.clone(),
    };
    let now = hearth_model::datetime::now_ms() / 1000;
    let (launch, url) = hearth_auth::authorize::launch(&base, &store, context, now)
        .map_err(|e| LaunchError::Invalid(e.to_string()))?;
    match url {
        Some(url) => Ok(url),
        None => Err(LaunchError::Invalid(format!(
            "app {} has no launch URI (hearth client add … --launch-uri URI); its launch is {launch}",
            args.client
        ))),
    }
}
