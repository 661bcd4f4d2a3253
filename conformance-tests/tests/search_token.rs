//! Token search (search.html#token): `code`, `system|code`, `|code`,
//! `system|` on Coding, CodeableConcept, Identifier, ContactPoint, boolean
//! and code, and the modifiers `:text`, `:not`, `:of-type`, `:missing`.

use conformance_tests::both_backends;
use conformance_tests::{json, Fixture, Server, Value};

const LOINC: &str = "http://loinc.org";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

fn observation(id: &str, code: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final", "code": code})
}

/// o1: LOINC 2345-7 with text; o2: local 2345-7; o3: code with no system;
/// o4: text only.
fn codes(f: &Fixture) {
    f.put_all(vec![
        observation("~o1", json!({"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose [Mass/volume] in Serum"}], "text": "Blood sugar"})),
        observation("~o2", json!({"coding": [{"system": "http://example.org/local", "code": "2345-7"}]})),
        observation("~o3", json!({"coding": [{"code": "2345-7"}]})),
        observation("~o4", json!({"text": "Glucose by eye"})),
    ]);
}

both_backends! {
    fn token_code_alone_matches_any_system() {
        let server = Server::start();
        let f = Fixture::new(&server);
        codes(&f);
        f.check("Observation?code=2345-7", &["o1", "o2", "o3"]);
        f.check("Observation?code=2345", &[]);
    }
}

both_backends! {
    fn token_system_and_code_match_both() {
        let server = Server::start();
        let f = Fixture::new(&server);
        codes(&f);
        f.check(&format!("Observation?code={LOINC}|2345-7"), &["o1"]);
        f.check(&format!("Observation?code={LOINC}|9999-9"), &[]);
    }
}

both_backends! {
    fn token_bar_code_matches_only_codes_without_a_system() {
        let server = Server::start();
        let f = Fixture::new(&server);
        codes(&f);
        f.check("Observation?code=|2345-7", &["o3"]);
    }
}

both_backends! {
    fn token_system_bar_matches_any_code_in_the_system() {
        let server = Server::start();
        let f = Fixture::new(&server);
        codes(&f);
        f.check(&format!("Observation?code={LOINC}|"), &["o1"]);
        f.check("Observation?code=http://example.org/local|", &["o2"]);
    }
}

both_backends! {
    fn token_on_coding_identifier_telecom_boolean_and_code() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            json!({"resourceType": "Patient", "id": "~p1", "active": true, "gender": "female",
                "identifier": [{"system": "http://hospital.example/mrn", "value": "MRN-1"}],
                "telecom": [{"system": "phone", "value": "555-1234"}, {"system": "email", "value": "ann@example.org"}]}),
            json!({"resourceType": "Patient", "id": "~p2", "active": false, "gender": "male",
                "identifier": [{"system": "http://other.example/id", "value": "MRN-1"}]}),
            json!({"resourceType": "Encounter", "id": "~e1", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}),
        ]);
        f.check("Patient?identifier=MRN-1", &["p1", "p2"]);
        f.check(
            "Patient?identifier=http://hospital.example/mrn|MRN-1",
            &["p1"],
        );
        f.check("Patient?identifier=http://hospital.example/mrn|", &["p1"]);
        f.check("Patient?telecom=555-1234", &["p1"]);
        f.check("Patient?phone=555-1234", &["p1"]);
        f.check("Patient?email=ann@example.org", &["p1"]);
        f.check("Patient?email=555-1234", &[]);
        f.check("Patient?active=true", &["p1"]);
        f.check("Patient?active=false", &["p2"]);
        f.check("Patient?gender=female", &["p1"]);
        f.check("Encounter?class=AMB", &["e1"]);
        f.check(
            "Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB",
            &["e1"],
        );
        f.check("Encounter?class=|AMB", &[]);
    }
}

both_backends! {
    /// search.html#token, the table of data types: "code | (implicit) | code |
    /// the system is defined in the value set (though it's not usually needed)".
    fn token_on_a_code_accepts_the_system_of_its_value_set() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            json!({"resourceType": "Patient", "id": "~m", "gender": "male"}),
            json!({"resourceType": "Patient", "id": "~f", "gender": "female"}),
        ]);
        f.check(
            "Patient?gender=http://hl7.org/fhir/administrative-gender|male",
            &["m"],
        );
    }
}

both_backends! {
    /// A text the coding's display already says (as Synthea writes every
    /// concept) is found by `:text`, and counts once.
    fn token_text_finds_a_text_its_display_repeats() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            observation("~hr", json!({"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "HEART  rate"})),
            observation("~bp", json!({"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure"}], "text": "Blood pressure panel"})),
        ]);
        f.check("Observation?code:text=heart rate", &["hr"]);
        f.check("Observation?code:text=blood pressure p", &["bp"]);
        f.check("Observation?code:text=blood", &["bp"]);
        f.check(&format!("Observation?code:not={LOINC}|8867-4"), &["bp"]);
        f.check("Observation?code:missing=false", &["hr", "bp"]);
    }
}

both_backends! {
    fn token_text_searches_concept_text_and_coding_display() {
        let server = Server::start();
        let f = Fixture::new(&server);
        codes(&f);
        f.check("Observation?code:text=glucose", &["o1", "o4"]);
        f.check("Observation?code:text=BLOOD SUG", &["o1"]);
        f.check("Observation?code:text=2345-7", &[]);
    }
}

both_backends! {
    fn token_not_excludes_matches_and_keeps_resources_without_the_element() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            json!({"resourceType": "Patient", "id": "~f", "gender": "female"}),
            json!({"resourceType": "Patient", "id": "~m", "gender": "male"}),
            json!({"resourceType": "Patient", "id": "~none"}),
        ]);
        f.check("Patient?gender:not=male", &["f", "none"]);
        f.check("Patient?gender:not=male,female", &["none"]);
    }
}

both_backends! {
    fn token_of_type_matches_identifier_type_and_value() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let id = |id: &str, code: &str, value: &str| {
            json!({"resourceType": "Patient", "id": id, "identifier": [{
                "type": {"coding": [{"system": V2_0203, "code": code}], "text": "Record number"},
                "system": "http://hospital.example/ids", "value": value}]})
        };
        f.put_all(vec![
            id("~mr", "MR", "12345"),
            id("~dl", "DL", "12345"),
            id("~mr2", "MR", "99999"),
        ]);
        f.check(
            &format!("Patient?identifier:of-type={V2_0203}|MR|12345"),
            &["mr"],
        );
        f.check(
            &format!("Patient?identifier:of-type={V2_0203}|DL|12345"),
            &["dl"],
        );
        f.check(
            &format!("Patient?identifier:of-type={V2_0203}|MR|00000"),
            &[],
        );
        f.check("Patient?identifier:text=record", &["mr", "dl", "mr2"]);
    }
}

both_backends! {
    fn token_missing_tells_absent_from_present_elements() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            json!({"resourceType": "Patient", "id": "~g", "gender": "other", "active": true}),
            json!({"resourceType": "Patient", "id": "~n"}),
        ]);
        f.check("Patient?gender:missing=true", &["n"]);
        f.check("Patient?gender:missing=false", &["g"]);
        f.check("Patient?active:missing=true", &["n"]);
        f.check("Patient?identifier:missing=true", &["g", "n"]);
        f.check("Patient?identifier:missing=false", &[]);
    }
}

both_backends! {
    fn combo_parameters_search_the_observation_and_its_components() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let quantity = |v: f64| json!({"value": v, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"});
        f.put_all(vec![
            // A blood pressure: its values are in components.
            json!({"resourceType": "Observation", "id": "~bp", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                "component": [
                    {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": quantity(120.0)},
                    {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": quantity(80.0)}
                ]}),
            // A heart rate: its value is its own.
            json!({"resourceType": "Observation", "id": "~hr", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}),
            json!({"resourceType": "Observation", "id": "~none", "status": "final",
                "code": {"text": "no code"}, "dataAbsentReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}]}}),
        ]);
        f.check(&format!("Observation?combo-code={LOINC}|85354-9"), &["bp"]);
        f.check(&format!("Observation?combo-code={LOINC}|8480-6"), &["bp"]);
        f.check("Observation?combo-code=8867-4,8462-4", &["bp", "hr"]);
        f.check(&format!("Observation?code={LOINC}|8480-6"), &[]);
        f.check("Observation?combo-value-quantity=gt100", &["bp"]);
        f.check("Observation?combo-value-quantity=lt90", &["bp", "hr"]);
        f.check("Observation?combo-value-quantity=70|http://unitsofmeasure.org|/min", &[]);
        f.check("Observation?combo-value-quantity=72|http://unitsofmeasure.org|/min", &["hr"]);
        f.check("Observation?combo-data-absent-reason=unknown", &["none"]);
        f.check("Observation?combo-value-quantity:missing=true&status=final", &["none"]);
        f.check("Observation?combo-value-quantity:missing=false", &["bp", "hr"]);
        f.check("Observation?combo-code:not=8480-6&status=final", &["hr", "none"]);
        let count = f.get("Observation?combo-code=8867-4,8462-4&_summary=count", &[]).json();
        assert_eq!(count["total"], 2);

        // The composite over both: a code and a value of the same focus.
        f.check("Observation?combo-code-value-quantity=8480-6$gt100", &["bp"]);
        f.check("Observation?combo-code-value-quantity=8462-4$gt100", &[]);
        f.check("Observation?combo-code-value-quantity=8867-4$72", &["hr"]);
        f.check("Observation?combo-code-value-quantity=85354-9$120", &[]);
        f.check(
            "Observation?combo-code-value-quantity=8462-4$lt90,8867-4$lt90",
            &["bp", "hr"],
        );
        f.check("Observation?code-value-quantity=8480-6$120", &[]);
        f.check("Observation?component-code-value-quantity=8480-6$120", &["bp"]);
        f.check(
            "Observation?combo-code-value-quantity:missing=true&status=final",
            &["none"],
        );
        f.check("Observation?code-value-quantity:missing=false", &["hr"]);
        let count = f
            .get("Observation?combo-code-value-quantity=8480-6$ge120&_summary=count", &[])
            .json();
        assert_eq!(count["total"], 1);
    }
}

both_backends! {
    fn a_system_and_code_count_counts_each_resource_once() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let s = "http://example.org/count";
        f.put_all(vec![
            // The same coding twice, told apart only by its display.
            observation("~twice", json!({"coding": [{"system": s, "code": "c1", "display": "one"},
                {"system": s, "code": "c1", "display": "two"}]})),
            observation("~once", json!({"coding": [{"system": s, "code": "c1"}]})),
            observation("~other", json!({"coding": [{"system": "http://example.org/else", "code": "c1"}]})),
            // A `code` element, whose system is implied: a stated system
            // does not rule it out.
            json!({"resourceType": "CodeSystem", "id": "~cs", "url": s, "status": "active",
                "content": "complete", "concept": [{"code": "c1"}, {"code": "c2"}]}),
        ]);
        let count = |q: &str| f.get(&format!("{q}&_summary=count"), &[]).json()["total"].clone();
        f.check(&format!("Observation?code={s}|c1"), &["twice", "once"]);
        assert_eq!(count(&format!("Observation?code={s}|c1")), 2);
        assert_eq!(count("Observation?code=c1"), 3);
        f.check(&format!("CodeSystem?code={s}|c1"), &["cs"]);
        assert_eq!(count(&format!("CodeSystem?code={s}|c1")), 1);
        assert_eq!(count(&format!("CodeSystem?code={s}|c3")), 0);
        // The second coding alike still answers `:text`; when the first
        // goes, the second stands for the resource in the count.
        f.check("Observation?code:text=two", &["twice"]);
        f.put(observation("~twice", json!({"coding": [{"system": s, "code": "c2"},
            {"system": s, "code": "c1", "display": "two"}, {"system": s, "code": "c1"}]})));
        assert_eq!(count(&format!("Observation?code={s}|c1")), 2);
        assert_eq!(count(&format!("Observation?code={s}|c2")), 1);
        f.delete("Observation/~once");
        assert_eq!(count(&format!("Observation?code={s}|c1")), 1);
        f.check(&format!("Observation?code={s}|c1"), &["twice"]);
    }
}

both_backends! {
    /// `code-value-*` pair an Observation's own code with its own value:
    /// they are searched as a matching code and a matching value of the
    /// same Observation, every coding with the value, never a component's.
    fn composites_of_the_observations_own_code_and_value() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let snomed = "http://snomed.info/sct";
        let ucum = |value: f64, unit: &str| json!({"value": value, "system": "http://unitsofmeasure.org", "code": unit});
        f.put_all(vec![
            // Two codings of one heart rate: each pairs with the value.
            json!({"resourceType": "Observation", "id": "~hr", "status": "final",
                "subject": {"reference": "Patient/~p"},
                "code": {"coding": [{"system": LOINC, "code": "8867-4"}, {"system": snomed, "code": "364075005"}]},
                "valueQuantity": ucum(72.0, "/min")}),
            json!({"resourceType": "Observation", "id": "~temp", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "8310-5"}]},
                "valueQuantity": ucum(37.0, "Cel")}),
            // A heart rate only in a component: not the Observation's own.
            json!({"resourceType": "Observation", "id": "~panel", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "85353-1"}]},
                "component": [{"code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                    "valueQuantity": ucum(72.0, "/min")}]}),
            json!({"resourceType": "Observation", "id": "~smoker", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
                "valueCodeableConcept": {"coding": [{"system": snomed, "code": "8517006"}]}}),
            json!({"resourceType": "Observation", "id": "~onset", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "11368-8"}]},
                "valuePeriod": {"start": "2021-03-01", "end": "2021-04-01"}}),
            // A code and no value.
            json!({"resourceType": "Observation", "id": "~pending", "status": "registered",
                "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}}),
            json!({"resourceType": "Patient", "id": "~p"}),
        ]);
        f.check("Observation?code-value-quantity=8867-4$72", &["hr"]);
        f.check(&format!("Observation?code-value-quantity={snomed}|364075005$72"), &["hr"]);
        f.check(&format!("Observation?code-value-quantity={LOINC}|8867-4$gt70|http://unitsofmeasure.org|/min"), &["hr"]);
        f.check("Observation?code-value-quantity=8867-4$gt100", &[]);
        f.check("Observation?code-value-quantity=8310-5$72", &[]);
        // Several values: one of them, each a code and a value together.
        f.check("Observation?code-value-quantity=8867-4$gt100,8310-5$lt40", &["temp"]);
        f.check("Observation?code-value-quantity=8867-4$lt40,8310-5$gt100", &[]);
        // Both parameters ANDed: each holds.
        f.check("Observation?code-value-quantity=8867-4$72&code-value-quantity=364075005$ge72", &["hr"]);
        f.check(&format!("Observation?code-value-concept=72166-2${snomed}|8517006"), &["smoker"]);
        f.check("Observation?code-value-concept=72166-2$other", &[]);
        f.check("Observation?code-value-date=11368-8$ge2021-03-15", &["onset"]);
        f.check("Observation?code-value-date=11368-8$lt2021-01-01", &[]);
        f.check("Observation?code-value-quantity:missing=false", &["hr", "temp"]);
        f.check("Observation?code-value-quantity:missing=true", &["panel", "smoker", "onset", "pending"]);
        f.check("Observation?code-value-concept:missing=false", &["smoker"]);
        // Through _has, and counted.
        f.check("Patient?_has:Observation:subject:code-value-quantity=8867-4$72", &["p"]);
        f.check("Patient?_has:Observation:subject:code-value-quantity=8867-4$73", &[]);
        let count = f.get("Observation?code-value-quantity=8867-4$ge72,8310-5$37&_summary=count", &[]).json();
        assert_eq!(count["total"], 2);
        // The combination with the components' pairings.
        f.check("Observation?combo-code-value-quantity=8867-4$72", &["hr", "panel"]);
        f.check("Observation?combo-code-value-quantity:missing=true", &["smoker", "onset", "pending"]);
    }
}
