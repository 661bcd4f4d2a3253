//! Number and quantity search (search.html#number, #quantity): prefixes,
//! precision-aware equality, `value|system|code`, `value||code`, and UCUM
//! units compared in a canonical unit.

use conformance_tests::both_backends;
use conformance_tests::{json, Fixture, Server, Value};

const UCUM: &str = "http://unitsofmeasure.org";

fn risk(id: &str, probability: &str) -> Value {
    let probability: Value = serde_json::from_str(probability).expect("number");
    json!({"resourceType": "RiskAssessment", "id": id, "status": "final",
        "subject": {"reference": "Patient/someone"},
        "prediction": [{"probabilityDecimal": probability}]})
}

/// Ids name their values: n9.6 is 9.6.
fn numbers(f: &Fixture) {
    for value in ["9.6", "10", "10.4", "10.6", "1.04", "1.06"] {
        f.put(risk(&format!("~n{}", value.to_owned()), value));
    }
}

both_backends! {
    /// search.html#number: "[parameter]=100 Values that equal 100, to 3
    /// significant figures precision, so this is actually searching for values
    /// in the range [99.5 ... 100.5)".
    fn number_equality_uses_the_precision_of_the_search_value() {
        let server = Server::start();
        let f = Fixture::new(&server);
        numbers(&f);
        f.check("RiskAssessment?probability=10", &["n9.6", "n10", "n10.4"]);
        f.check("RiskAssessment?probability=eq10", &["n9.6", "n10", "n10.4"]);
        f.check("RiskAssessment?probability=10.0", &["n10"]);
        f.check("RiskAssessment?probability=1.0", &["n1.04"]);
        f.check("RiskAssessment?probability=1.06", &["n1.06"]);
        f.check(
            "RiskAssessment?probability=ne10",
            &["n10.6", "n1.04", "n1.06"],
        );
    }
}

both_backends! {
    fn number_gt_lt_sa_eb_compare_exactly() {
        let server = Server::start();
        let f = Fixture::new(&server);
        numbers(&f);
        f.check("RiskAssessment?probability=gt10", &["n10.4", "n10.6"]);
        f.check(
            "RiskAssessment?probability=lt10",
            &["n9.6", "n1.04", "n1.06"],
        );
        f.check("RiskAssessment?probability=sa10", &["n10.4", "n10.6"]);
        f.check(
            "RiskAssessment?probability=eb10",
            &["n9.6", "n1.04", "n1.06"],
        );
    }
}

both_backends! {
    /// search.html#number: "ge100 Values that are greater or equal to exactly
    /// 100", and "When a comparison prefix in the set lgt, lt, ge, le, sa & eb
    /// is provided, the implicit precision of the number is ignored, and they
    /// are treated as if they have arbitrarily high precision".
    fn number_ge_and_le_ignore_the_implicit_precision() {
        let server = Server::start();
        let f = Fixture::new(&server);
        numbers(&f);
        f.check(
            "RiskAssessment?probability=ge10",
            &["n10", "n10.4", "n10.6"],
        );
        f.check(
            "RiskAssessment?probability=le10",
            &["n9.6", "n10", "n1.04", "n1.06"],
        );
    }
}

both_backends! {
    fn number_ap_matches_within_about_ten_percent() {
        let server = Server::start();
        let f = Fixture::new(&server);
        numbers(&f);
        f.check(
            "RiskAssessment?probability=ap10",
            &["n9.6", "n10", "n10.4", "n10.6"],
        );
    }
}

fn measured(id: &str, quantity: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"text": "x"}, "valueQuantity": quantity})
}

fn ucum(value: f64, code: &str) -> Value {
    json!({"value": value, "unit": code, "system": UCUM, "code": code})
}

fn quantities(f: &Fixture) {
    f.put_all(vec![
        measured("~g1000", ucum(1000.0, "g")),
        measured("~kg1", ucum(1.0, "kg")),
        measured("~mg5.4", ucum(5.4, "mg")),
        measured("~mgdl100", ucum(100.0, "mg/dL")),
        measured("~gl1", ucum(1.0, "g/L")),
        measured("~unit5.4", json!({"value": 5.4, "unit": "mg"})),
        measured(
            "~local5.4",
            json!({"value": 5.4, "system": "http://example.org/units", "code": "mg"}),
        ),
    ]);
}

both_backends! {
    fn quantity_value_alone_ignores_units() {
        let server = Server::start();
        let f = Fixture::new(&server);
        quantities(&f);
        f.check(
            "Observation?value-quantity=5.4",
            &["mg5.4", "unit5.4", "local5.4"],
        );
        f.check("Observation?value-quantity=gt999", &["g1000"]);
    }
}

both_backends! {
    fn quantity_value_system_and_code() {
        let server = Server::start();
        let f = Fixture::new(&server);
        quantities(&f);
        f.check(
            &format!("Observation?value-quantity=5.4|{UCUM}|mg"),
            &["mg5.4"],
        );
        f.check(
            "Observation?value-quantity=5.4|http://example.org/units|mg",
            &["local5.4"],
        );
        f.check(
            &format!("Observation?value-quantity=le5.4|{UCUM}|mg"),
            &["mg5.4"],
        );
        f.check(&format!("Observation?value-quantity=5.5|{UCUM}|mg"), &[]);
    }
}

both_backends! {
    /// search.html#quantity: "value-quantity=5.4||mg: Search for all the
    /// observations with a value of 5.4(+/-0.05) mg where the unit - either the
    /// code (code) or the stated human unit (unit) are "mg"".
    fn quantity_value_and_code_without_system_matches_code_or_unit() {
        let server = Server::start();
        let f = Fixture::new(&server);
        quantities(&f);
        f.check(
            "Observation?value-quantity=5.4||mg",
            &["mg5.4", "unit5.4", "local5.4"],
        );
    }
}

both_backends! {
    fn quantity_ucum_units_compare_in_a_canonical_unit() {
        let server = Server::start();
        let f = Fixture::new(&server);
        quantities(&f);
        f.check(
            &format!("Observation?value-quantity=1|{UCUM}|kg"),
            &["g1000", "kg1"],
        );
        f.check(
            &format!("Observation?value-quantity=1000|{UCUM}|g"),
            &["g1000", "kg1"],
        );
        f.check(
            &format!("Observation?value-quantity=5400|{UCUM}|ug"),
            &["mg5.4"],
        );
        f.check(
            &format!("Observation?value-quantity=1|{UCUM}|g/L"),
            &["mgdl100", "gl1"],
        );
        f.check(
            &format!("Observation?value-quantity=100|{UCUM}|mg/dL"),
            &["mgdl100", "gl1"],
        );
        f.check(
            &format!("Observation?value-quantity=lt1|{UCUM}|g"),
            &["mg5.4"],
        );
        f.check(
            &format!("Observation?value-quantity=gt900|{UCUM}|g"),
            &["g1000", "kg1"],
        );
    }
}
