//! What the fuzz targets share: the work the server does with a resource
//! it has accepted.

use hearth_model::search_params::CustomParams;
use hearth_model::summary::{self, SummaryMode};
use hearth_model::Value;

/// Index extraction, `_summary` in every mode, `_elements`, and rendering
/// as JSON and XML (and reading that XML back).
pub fn exercise(resource: Value) {
    let _ = hearth_model::index::extract(&resource, &CustomParams::default());
    for mode in [
        SummaryMode::True,
        SummaryMode::Text,
        SummaryMode::Data,
        SummaryMode::False,
    ] {
        let mut shaped = resource.clone();
        summary::summary(&mut shaped, mode);
    }
    let mut shaped = resource.clone();
    summary::elements(&mut shaped, &["id", "name", "code", "subject"]);
    let json = hearth_model::to_json_bytes(&resource, false);
    if let Ok(xml) = hearth_model::to_xml(&json) {
        let _ = hearth_model::parse(&xml, hearth_model::Format::Xml);
    }
}
