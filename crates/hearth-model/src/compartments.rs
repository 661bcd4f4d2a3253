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

/// The parameters through which a resource of `resource_type` belongs to
/// a patient: those of the Patient CompartmentDefinition, or, for a type
/// it leaves out, every reference parameter of the type that may point to
/// a Patient (`Device.patient`: a patient's implant is that patient's
/// data). `None` for a type whose resources never belong to a patient
/// (Practitioner, Organization, Medication, …).
pub fn patient_links(resource_type: &str) -> Option<&'static [String]> {
    static LINKS: OnceLock<HashMap<&'static str, Vec<String>>> = OnceLock::new();
    LINKS
        .get_or_init(|| {
            crate::structure::resource_types()
                .filter_map(|t| {
                    let params = match params("Patient", t) {
                        Some(p) => p.to_vec(),
                        None => crate::search_params::spec_for_type(t)
                            .filter(|p| {
                                p.param_type == crate::search_params::ParamType::Reference
                                    && p.targets.iter().any(|target| target == "Patient")
                            })
                            .map(|p| p.code.clone())
                            .collect(),
                    };
                    (!params.is_empty() || t == "Patient").then_some((t, params))
                })
                .collect()
        })
        .get(resource_type)
        .map(Vec::as_slice)
}

/// The patients a resource belongs to, from its index entries (see
/// [`patient_links`]): the patients its linking parameters refer to by a
/// relative reference (a Patient also belongs to itself, which its id,
/// when known, adds). Absolute references, even to this server, are not
/// followed: the resource then belongs to no one.
pub fn patients_of(
    resource_type: &str,
    id: Option<&str>,
    entries: &[crate::index::IndexEntry],
) -> Vec<String> {
    let Some(links) = patient_links(resource_type) else {
        return Vec::new();
    };
    let mut patients: Vec<String> = Vec::new();
    if let (Some(id), "Patient") = (id, resource_type) {
        patients.push(id.to_owned());
    }
    for entry in entries {
        if let crate::index::IndexValue::Reference {
            resource_type: Some(t),
            id: Some(target),
            url: None,
            ..
        } = &entry.value
        {
            if t == "Patient" && links.contains(&entry.param) {
                patients.push(target.clone());
            }
        }
    }
    patients.sort_unstable();
    patients.dedup();
    patients
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

    #[test]
    fn a_patients_data_is_their_compartment_and_what_refers_to_them() {
        assert!(patient_links("Observation")
            .unwrap()
            .iter()
            .any(|p| p == "subject"));
        // Not in the CompartmentDefinition, but a patient's implant.
        assert_eq!(patient_links("Device").unwrap(), ["patient".to_owned()]);
        assert!(patient_links("Patient").is_some());
        for t in ["Practitioner", "Organization", "Location", "Medication"] {
            assert!(patient_links(t).is_none(), "{t}");
        }
        let observation = serde_json::json!({
            "resourceType": "Observation",
            "subject": {"reference": "Patient/a"},
            "performer": [{"reference": "Patient/b"}, {"reference": "Practitioner/c"}],
            "hasMember": [{"reference": "Observation/x"}],
            "focus": [{"reference": "Patient/z"}]
        });
        let entries = crate::index::extract(&observation, &Default::default());
        assert_eq!(patients_of("Observation", Some("o"), &entries), ["a", "b"]);
        let absolute = serde_json::json!({
            "resourceType": "Observation",
            "subject": {"reference": "http://elsewhere.example/Patient/a"}
        });
        let entries = crate::index::extract(&absolute, &Default::default());
        assert!(patients_of("Observation", Some("o"), &entries).is_empty());
        let patient = serde_json::json!({"resourceType": "Patient", "link": [{"other": {"reference": "Patient/old"}, "type": "replaces"}]});
        let entries = crate::index::extract(&patient, &Default::default());
        assert_eq!(patients_of("Patient", Some("b"), &entries), ["b", "old"]);
    }
}
