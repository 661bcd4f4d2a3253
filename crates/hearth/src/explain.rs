//! `hearth explain`: the database's plans for searches, to check that they
//! use indexes (the operator's view of what a query costs).

use hearth_store::search::{self, ParseOptions};
use hearth_store::{Store, StoreError};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("'{search}' is not a search: {reason}")]
    Search { search: String, reason: String },
}

/// The plan of each search (`Type?parameters`), one block per search.
pub fn plans(config: &Config, searches: &[String]) -> Result<String, ExplainError> {
    let store = Store::open(&config.database(), &config.store)?;
    let mut report = String::new();
    for text in searches {
        let (resource_type, query) = text.split_once('?').unwrap_or((text.as_str(), ""));
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let options = ParseOptions {
            strict: true,
            default_count: config.default_page_size,
            max_count: config.max_page_size,
            base: None,
            custom: store.custom_params(),
        };
        let parsed =
            search::parse(&[resource_type.to_owned()], &params, &options).map_err(|e| {
                ExplainError::Search {
                    search: text.clone(),
                    reason: format!("{}: {}", e.param, e.message),
                }
            })?;
        report.push_str(&format!("== {text}\n"));
        for line in store.explain(&parsed)? {
            report.push_str(&line);
            report.push('\n');
        }
    }
    Ok(report)
}
