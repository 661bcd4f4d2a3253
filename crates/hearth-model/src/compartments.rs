//! The R4 CompartmentDefinitions: which search parameters put a resource in
//! a Patient, Encounter, Practitioner, RelatedPerson or Device compartment.

use foldhash::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

const DEFINITIONS: [(&str, &str); 5] = [
    (
        "Patient",
        include_str!("../../../fhir-profiles/CompartmentDefinition-patient.json"),
    ),
    (
        "Encounter",
        include_str!("../../../fhir-profiles/CompartmentDefinition-encounter.json"),
    ),
    (
        "Practitioner",
        include_str!("../../../fhir-profiles/CompartmentDefinition-practitioner.json"),
    ),
    (
        "RelatedPerson",
        include_str!("../../../fhir-profiles/CompartmentDefinition-relatedPerson.json"),
    ),
    (
        "Device",
        include_str!("../../../fhir-profiles/CompartmentDefinition-device.json"),
    ),
];

/// compartment type → (resource type → parameter codes), types in order.
type Table = HashMap<&'static str, Vec<(String, Vec<String>)>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        DEFINITIONS
            .iter()
            .map(|(code, text)| {
                let definition: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                let members = definition["resource"]
                    .as_array()
                    .map(|resources| {
                        resources
                            .iter()
                            .filter_map(|r| {
                                let params: Vec<String> = r["param"]
                                    .as_array()?
                                    .iter()
                                    .filter_map(|p| p.as_str().map(str::to_owned))
                                    .collect();
                                Some((r["code"].as_str()?.to_owned(), params))
                            })
                            .filter(|(_, params)| !params.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                (*code, members)
            })
            .collect()
    })
}

/// Whether `compartment_type` names a compartment.
pub fn is_compartment(compartment_type: &str) -> bool {
    table().contains_key(compartment_type)
}

/// The parameters of `resource_type` that place it in a compartment of
/// `compartment_type`; `None` when it is never in one.
pub fn params(compartment_type: &str, resource_type: &str) -> Option<&'static [String]> {
    table()
        .get(compartment_type)?
        .iter()
        .find(|(t, _)| t == resource_type)
        .map(|(_, p)| p.as_slice())
}

/// Every resource type that can be in a compartment, with its parameters.
pub fn members(compartment_type: &str) -> impl Iterator<Item = (&'static str, &'static [String])> {
    table()
        .get(compartment_type)
        .into_iter()
        .flatten()
        .map(|(t, p)| (t.as_str(), p.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_are_in_a_patients_compartment_by_subject_and_performer() {
        let observation = params("Patient", "Observation").unwrap();
        assert!(observation.iter().any(|p| p == "subject"));
        assert!(observation.iter().any(|p| p == "performer"));
        assert!(params("Patient", "CodeSystem").is_none());
        assert!(members("Patient").count() > 50);
        assert!(is_compartment("Encounter") && !is_compartment("Observation"));
    }
}
