//! String search (search.html#string): case- and accent-insensitive prefix
//! matching by default, `:exact`, `:contains`, and HumanName / Address
//! matching any of their parts.

use conformance_tests::both_backends;
use conformance_tests::{json, Fixture, Server, Value};

fn person(id: &str, name: Value) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [name]})
}

fn names(f: &Fixture) {
    f.put_all(vec![
        person("~muller", json!({"family": "Müller", "given": ["Jürgen"]})),
        person("~mulberry", json!({"family": "Mulberry", "given": ["Ann"]})),
        person("~smith", json!({"family": "Smith", "given": ["Ann", "Maria"], "prefix": ["Dr."], "text": "Dr. Ann Maria Smith"})),
        person("~kamuller", json!({"family": "Kamuller"})),
    ]);
}

both_backends! {
    fn string_default_is_a_case_and_accent_insensitive_prefix_match() {
        let server = Server::start();
        let f = Fixture::new(&server);
        names(&f);
        f.check("Patient?family=muller", &["muller"]);
        f.check("Patient?family=MÜL", &["muller", "mulberry"]);
        f.check("Patient?family=Müller", &["muller"]);
        f.check("Patient?family=mul", &["muller", "mulberry"]);
        f.check("Patient?family=uller", &[]);
    }
}

both_backends! {
    fn string_exact_matches_the_whole_string_with_case_and_accents() {
        let server = Server::start();
        let f = Fixture::new(&server);
        names(&f);
        f.check("Patient?family:exact=Müller", &["muller"]);
        f.check("Patient?family:exact=muller", &[]);
        f.check("Patient?family:exact=Müll", &[]);
        f.check("Patient?family:exact=MÜLLER", &[]);
    }
}

both_backends! {
    fn string_contains_matches_anywhere_in_the_string() {
        let server = Server::start();
        let f = Fixture::new(&server);
        names(&f);
        f.check("Patient?family:contains=ULLER", &["muller", "kamuller"]);
        f.check("Patient?family:contains=üll", &["muller", "kamuller"]);
        f.check("Patient?family:contains=berr", &["mulberry"]);
    }
}

both_backends! {
    fn string_on_human_name_matches_any_part() {
        let server = Server::start();
        let f = Fixture::new(&server);
        names(&f);
        f.check("Patient?name=smith", &["smith"]);
        f.check("Patient?name=maria", &["smith"]);
        f.check("Patient?name=dr", &["smith"]);
        f.check("Patient?name=dr. ann maria", &["smith"]);
        f.check("Patient?name=jurg", &["muller"]);
        f.check("Patient?name=ann", &["smith", "mulberry"]);
        f.check("Patient?given=ann", &["smith", "mulberry"]);
    }
}

both_backends! {
    fn string_on_address_matches_any_part() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            json!({"resourceType": "Patient", "id": "~a", "address": [{
                "line": ["12 Rue de l'Église"], "city": "Montréal", "postalCode": "H2X 1Y4",
                "state": "QC", "country": "Canada"}]}),
            json!({"resourceType": "Patient", "id": "~b", "address": [{
                "line": ["1 Main Street"], "city": "Boston", "postalCode": "02101",
                "country": "USA"}]}),
        ]);
        f.check("Patient?address=montreal", &["a"]);
        f.check("Patient?address=H2X", &["a"]);
        f.check("Patient?address=12 rue de l'eglise", &["a"]);
        f.check("Patient?address=canada", &["a"]);
        f.check("Patient?address=1 main", &["b"]);
        f.check("Patient?address-city=BOS", &["b"]);
        f.check("Patient?address-postalcode=02101", &["b"]);
        f.check("Patient?address-city=canada", &[]);
    }
}
