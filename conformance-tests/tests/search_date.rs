//! Date search (search.html#date): values are ranges by their precision,
//! time zones are honoured, and the prefixes eq ne gt lt ge le sa eb ap
//! apply to date, dateTime, instant and Period (open-ended too).

use std::time::Duration;

use conformance_tests::both_backends;
use conformance_tests::{json, Fixture, Server, Value};

fn born(id: &str, date: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "birthDate": date})
}

fn observed(id: &str, field: &str, value: Value) -> Value {
    let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"text": "x"}});
    o[field] = value;
    o
}

/// Birth dates at day, month and year precision around 2020, plus one far away.
fn birth_dates(f: &Fixture) {
    f.put_all(vec![
        born("~d20191231", "2019-12-31"),
        born("~d20200101", "2020-01-01"),
        born("~d20200315", "2020-03-15"),
        born("~d20210101", "2021-01-01"),
        born("~m202003", "2020-03"),
        born("~y2020", "2020"),
        born("~d20100101", "2010-01-01"),
    ]);
}

both_backends! {
    fn date_precision_makes_a_year_or_month_cover_its_whole_range() {
        let server = Server::start();
        let f = Fixture::new(&server);
        birth_dates(&f);
        f.check(
            "Patient?birthdate=2020",
            &["d20200101", "d20200315", "m202003", "y2020"],
        );
        f.check("Patient?birthdate=2020-03", &["d20200315", "m202003"]);
        f.check("Patient?birthdate=2020-03-15", &["d20200315"]);
        f.check("Patient?birthdate=2019", &["d20191231"]);
    }
}

both_backends! {
    fn date_prefixes_on_a_date() {
        let server = Server::start();
        let f = Fixture::new(&server);
        birth_dates(&f);
        let q = |v: &str| format!("Patient?birthdate={v}");
        f.check(&q("eq2020-01-01"), &["d20200101"]);
        f.check(
            &q("ne2020-01-01"),
            &[
                "d20191231",
                "d20200315",
                "d20210101",
                "m202003",
                "y2020",
                "d20100101",
            ],
        );
        f.check(
            &q("gt2020-01-01"),
            &["d20200315", "d20210101", "m202003", "y2020"],
        );
        f.check(&q("lt2020-01-01"), &["d20191231", "d20100101"]);
        f.check(
            &q("ge2020-01-01"),
            &["d20200101", "d20200315", "d20210101", "m202003", "y2020"],
        );
        f.check(&q("le2020-01-01"), &["d20191231", "d20200101", "d20100101"]);
        f.check(&q("sa2020-01-01"), &["d20200315", "d20210101", "m202003"]);
        f.check(&q("eb2020-01-01"), &["d20191231", "d20100101"]);
    }
}

both_backends! {
    /// search.html#date: "ap … 14-Mar 2013 is included - as it exactly matches
    /// … 15-Jun 2015 is not included - as it is not near 14-Mar 2013"; the
    /// recommended approximation for a date is 10% of the gap to now.
    fn date_ap_matches_dates_near_the_value_only() {
        let server = Server::start();
        let f = Fixture::new(&server);
        birth_dates(&f);
        f.check(
            "Patient?birthdate=ap2020-01-01",
            &["d20191231", "d20200101", "d20200315", "m202003", "y2020"],
        );
    }
}

both_backends! {
    fn date_time_zones_are_honoured() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            // 2020-01-02T04:30:00Z
            observed(
                "~late",
                "effectiveDateTime",
                json!("2020-01-01T23:30:00-05:00"),
            ),
            // 2020-01-01T22:30:00Z
            observed(
                "~early",
                "effectiveDateTime",
                json!("2020-01-02T00:30:00+02:00"),
            ),
        ]);
        f.check("Observation?date=2020-01-02T04:30:00Z", &["late"]);
        f.check("Observation?date=2020-01-01T23:30:00-05:00", &["late"]);
        f.check("Observation?date=ge2020-01-02T00:00:00Z", &["late"]);
        f.check("Observation?date=lt2020-01-02T00:00:00Z", &["early"]);
        f.check(
            "Observation?date=lt2020-01-02T06:00:00+01:00",
            &["early", "late"],
        );
        f.check("Observation?date=lt2020-01-02T04:00:00+01:00", &["early"]);
        if server.is_local() {
            // Hearth's own time zone is UTC.
            f.check("Observation?date=2020-01-02", &["late"]);
            f.check("Observation?date=2020-01-01", &["early"]);
        }
    }
}

both_backends! {
    fn date_on_date_time_with_a_time_in_the_search_value() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            observed("~day", "effectiveDateTime", json!("2013-01-14")),
            observed("~ten", "effectiveDateTime", json!("2013-01-14T10:00:00Z")),
            observed("~next", "effectiveDateTime", json!("2013-01-15T00:00:00Z")),
        ]);
        // The spec's own examples (search.html#date).
        f.check("Observation?date=eq2013-01-14", &["day", "ten"]);
        f.check("Observation?date=ne2013-01-14", &["next"]);
        f.check("Observation?date=lt2013-01-14T10:00:00Z", &["day"]);
        f.check("Observation?date=gt2013-01-14T10:00:00Z", &["day", "next"]);
    }
}

/// Periods: closed [2020-01-01, 2020-06-30], open-ended from 2021-01-01,
/// open-started up to 2019-06-30.
fn periods(f: &Fixture) {
    f.put_all(vec![
        observed(
            "~closed",
            "effectivePeriod",
            json!({"start": "2020-01-01", "end": "2020-06-30"}),
        ),
        observed(
            "~from2021",
            "effectivePeriod",
            json!({"start": "2021-01-01"}),
        ),
        observed("~to2019", "effectivePeriod", json!({"end": "2019-06-30"})),
    ]);
}

both_backends! {
    fn date_prefixes_on_closed_and_open_periods() {
        let server = Server::start();
        let f = Fixture::new(&server);
        periods(&f);
        let q = |v: &str| format!("Observation?date={v}");
        f.check(&q("2020"), &["closed"]);
        f.check(&q("ne2020"), &["from2021", "to2019"]);
        f.check(&q("gt2020"), &["from2021"]);
        f.check(&q("lt2020"), &["to2019"]);
        f.check(&q("ge2030"), &["from2021"]);
        f.check(&q("le1990"), &["to2019"]);
        f.check(&q("ge2020-03-01"), &["closed", "from2021"]);
        f.check(&q("le2020-03-01"), &["closed", "to2019"]);
    }
}

both_backends! {
    fn date_sa_and_eb_with_open_periods() {
        let server = Server::start();
        let f = Fixture::new(&server);
        periods(&f);
        let q = |v: &str| format!("Observation?date={v}");
        f.check(&q("sa2020"), &["from2021"]);
        f.check(&q("eb2020"), &["to2019"]);
        f.check(&q("sa1990"), &["closed", "from2021"]);
        f.check(&q("eb2030"), &["closed", "to2019"]);
        f.check(&q("sa2030"), &[]);
        f.check(&q("eb1990"), &[]);
    }
}

both_backends! {
    fn date_on_an_instant() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put_all(vec![
            observed("~i1", "effectiveInstant", json!("2020-05-05T10:00:00.000Z")),
            observed("~i2", "effectiveInstant", json!("2020-05-05T10:00:01.000Z")),
        ]);
        f.check("Observation?date=2020-05-05T10:00:00Z", &["i1"]);
        f.check("Observation?date=2020-05-05", &["i1", "i2"]);
        f.check("Observation?date=gt2020-05-05T10:00:00Z", &["i2"]);
        f.check("Observation?date=le2020-05-05T10:00:00Z", &["i1"]);
    }
}

both_backends! {
    fn last_updated_compares_the_instant_of_each_version() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let first = f.put(born("~first", "2000-01-01"));
        std::thread::sleep(Duration::from_millis(20));
        let second = f.put(born("~second", "2000-01-01"));
        let t1 = first["meta"]["lastUpdated"]
            .as_str()
            .expect("lastUpdated")
            .to_owned();
        let t2 = second["meta"]["lastUpdated"]
            .as_str()
            .expect("lastUpdated")
            .to_owned();
        assert!(t1 < t2, "{t1} {t2}");
        f.check(
            &format!("Patient?_lastUpdated=ge{t1}"),
            &["first", "second"],
        );
        f.check(&format!("Patient?_lastUpdated=gt{t1}"), &["second"]);
        f.check(&format!("Patient?_lastUpdated=lt{t2}"), &["first"]);
        f.check(&format!("Patient?_lastUpdated=le{t1}"), &["first"]);
        f.check(&format!("Patient?_lastUpdated={t2}"), &["second"]);
        f.check(&format!("Patient?_lastUpdated=sa{t1}"), &["second"]);
        f.check(&format!("Patient?_lastUpdated=eb{t2}"), &["first"]);
        f.check("Patient?_lastUpdated=lt2000-01-01", &[]);
    }
}
