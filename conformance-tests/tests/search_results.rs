//! Shaping search results (search.html#include, #revinclude, #sort,
//! #count, #total, #summary, #elements) and paging links that stay correct
//! while others write.

use conformance_tests::both_backends;
use conformance_tests::{json, link, Fixture, Server, Value};

fn observation(id: &str, subject: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"text": "x"}, "subject": {"reference": subject},
        "performer": [{"reference": "Practitioner/~doc"}]})
}

/// o1 → p1 → acme; o2 → loc; o3 → gone (deleted); every observation's
/// performer is doc.
fn world(f: &Fixture) {
    f.put_all(vec![
        json!({"resourceType": "Organization", "id": "~acme", "name": "Acme"}),
        json!({"resourceType": "Practitioner", "id": "~doc"}),
        json!({"resourceType": "Patient", "id": "~p1",
            "managingOrganization": {"reference": "Organization/~acme"}}),
        json!({"resourceType": "Patient", "id": "~gone"}),
        json!({"resourceType": "Location", "id": "~loc", "name": "Ward"}),
        observation("~o1", "Patient/~p1"),
        observation("~o2", "Location/~loc"),
        observation("~o3", "Patient/~gone"),
    ]);
    f.delete("Patient/~gone");
}

both_backends! {
    fn include_adds_referenced_resources_marked_include() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        let q = "Observation?_id=~o1&_include=Observation:subject";
        assert_eq!(
            f.entries(q),
            [
                ("match".into(), "o1".into()),
                ("include".into(), "p1".into())
            ]
        );
    }
}

both_backends! {
    fn include_with_a_target_type_follows_only_that_type() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        let q = "Observation?_id=~o1,~o2&_include=Observation:subject:Location";
        f.check(q, &["o1", "o2"]);
        assert_eq!(f.included(q), ["loc"]);
    }
}

both_backends! {
    fn include_star_follows_every_reference_parameter() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        assert_eq!(
            f.included("Observation?_id=~o1&_include=Observation:*"),
            ["doc", "p1"]
        );
    }
}

both_backends! {
    fn include_iterate_follows_references_of_included_resources() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        let base = "Observation?_id=~o1&_include=Observation:subject";
        assert_eq!(
            f.included(&format!("{base}&_include=Patient:organization")),
            ["p1"]
        );
        assert_eq!(
            f.included(&format!("{base}&_include:iterate=Patient:organization")),
            ["acme", "p1"]
        );
    }
}

both_backends! {
    fn include_of_a_reference_to_a_deleted_resource_leaves_it_out() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        let q = "Observation?_id=~o3&_include=Observation:subject";
        f.check(q, &["o3"]);
        assert_eq!(f.included(q), Vec::<String>::new());
    }
}

both_backends! {
    fn revinclude_adds_resources_that_refer_to_the_matches() {
        let server = Server::start();
        let f = Fixture::new(&server);
        world(&f);
        let q = "Patient?_id=~p1&_revinclude=Observation:subject";
        f.check(q, &["p1"]);
        assert_eq!(f.included(q), ["o1"]);
        let q = "Practitioner?_id=~doc&_revinclude=Observation:performer";
        assert_eq!(f.included(q), ["o1", "o2", "o3"]);
    }
}

fn people(f: &Fixture) {
    for (id, family, born) in [
        ("~a", "Adams", "1990-05-01"),
        ("~b", "Baker", "1980-01-01"),
        ("~c", "Adams", "1970-01-01"),
        ("~d", "Carter", "1990-05-01"),
    ] {
        f.put(json!({"resourceType": "Patient", "id": id,
            "name": [{"family": family, "given": ["Pager"]}], "birthDate": born}));
    }
}

both_backends! {
    fn sort_by_dates_and_strings_ascending_and_descending() {
        let server = Server::start();
        let f = Fixture::new(&server);
        people(&f);
        f.check_order(
            "Patient?given=pager&_sort=birthdate,_id",
            &["c", "b", "a", "d"],
        );
        f.check_order(
            "Patient?given=pager&_sort=-birthdate,-_id",
            &["d", "a", "b", "c"],
        );
        f.check_order(
            "Patient?given=pager&_sort=family,-birthdate",
            &["a", "c", "b", "d"],
        );
        f.check_order(
            "Patient?given=pager&_sort=-family,birthdate",
            &["d", "b", "c", "a"],
        );
    }
}

fn ids_of(f: &Fixture, bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str()?.strip_prefix(&f.prefix))
        .map(str::to_owned)
        .collect()
}

both_backends! {
    fn count_pages_with_self_first_previous_next_and_last_links() {
        let server = Server::start();
        let f = Fixture::new(&server);
        for id in ["~a", "~b", "~c", "~d", "~e"] {
            f.put(json!({"resourceType": "Patient", "id": id}));
        }
        let first = server.read_json(&f.query_url("Patient?_id=~a,~b,~c,~d,~e&_sort=_id&_count=2"));
        assert_eq!(first["total"], 5);
        assert_eq!(ids_of(&f, &first), ["a", "b"]);
        for relation in ["self", "first", "next", "last"] {
            assert!(link(&first, relation).is_some(), "no {relation}: {first}");
        }
        assert!(link(&first, "previous").is_none(), "{first}");
        let second = server.follow(&first, "next").expect("next");
        assert_eq!(ids_of(&f, &second), ["c", "d"]);
        let back = server.follow(&second, "previous").expect("previous");
        assert_eq!(ids_of(&f, &back), ["a", "b"]);
        let last = server.follow(&first, "last").expect("last");
        assert_eq!(ids_of(&f, &last), ["e"]);
        assert!(link(&last, "next").is_none(), "{last}");
        let again = server.follow(&last, "first").expect("first");
        assert_eq!(ids_of(&f, &again), ["a", "b"]);
        let this = server.follow(&second, "self").expect("self");
        assert_eq!(ids_of(&f, &this), ["c", "d"]);
    }
}

both_backends! {
    fn paging_is_stable_while_matching_resources_are_inserted() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let patient = |id: &str| json!({"resourceType": "Patient", "id": id, "name": [{"family": "Stable", "given": ["~"]}]});
        for id in ["~b", "~d", "~f", "~h", "~j"] {
            f.put(patient(id));
        }
        let mut page = server.read_json(&f.query_url("Patient?given=~&_sort=_id&_count=2"));
        let mut seen = ids_of(&f, &page);
        let mut inserted = 0;
        while let Some(next) = link(&page, "next") {
            // Sorts before everything already returned: offset paging without a
            // snapshot would repeat a resource on the next page.
            f.put(patient(&format!("~a{inserted}")));
            inserted += 1;
            page = server.read_json(&next);
            seen.extend(ids_of(&f, &page));
        }
        let originals: Vec<&String> = seen.iter().filter(|id| !id.starts_with('a')).collect();
        assert_eq!(originals, ["b", "d", "f", "h", "j"], "{seen:?}");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
    }
}

both_backends! {
    fn total_none_omits_the_total_and_accurate_gives_it() {
        let server = Server::start();
        let f = Fixture::new(&server);
        people(&f);
        let none = server.read_json(&f.query_url("Patient?given=pager&_total=none"));
        assert!(none.get("total").is_none(), "{none}");
        let accurate = server.read_json(&f.query_url("Patient?given=pager&_total=accurate"));
        assert_eq!(accurate["total"], 4);
    }
}

both_backends! {
    fn summary_count_gives_the_total_without_entries() {
        let server = Server::start();
        let f = Fixture::new(&server);
        people(&f);
        let bundle = server.read_json(&f.query_url("Patient?given=pager&_summary=count"));
        assert_eq!(bundle["total"], 4);
        let matches = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"] == "match")
            .count();
        assert_eq!(matches, 0, "{bundle}");
    }
}

fn is_subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["code"] == "SUBSETTED"))
}

both_backends! {
    fn summary_true_and_elements_shape_each_entry() {
        let server = Server::start();
        let f = Fixture::new(&server);
        f.put(
            json!({"resourceType": "Patient", "id": "~p", "name": [{"family": "Shape"}],
            "birthDate": "1970-01-01", "contact": [{"name": {"family": "Other"}}]}),
        );
        let bundle = server.read_json(&f.query_url("Patient?_id=~p&_summary=true"));
        let patient = &bundle["entry"][0]["resource"];
        assert_eq!(patient["name"][0]["family"], "Shape", "{patient}");
        assert!(patient.get("contact").is_none(), "{patient}");
        assert!(is_subsetted(patient), "{patient}");

        let bundle = server.read_json(&f.query_url("Patient?_id=~p&_elements=birthDate"));
        let patient = &bundle["entry"][0]["resource"];
        assert_eq!(patient["birthDate"], "1970-01-01", "{patient}");
        assert!(patient["id"].is_string(), "{patient}");
        assert!(patient.get("name").is_none(), "{patient}");
        assert!(patient.get("contact").is_none(), "{patient}");
        assert!(is_subsetted(patient), "{patient}");
    }
}

/// 1,203 laboratory Observations (enough to be read through the date
/// index): dates over 1,200 days with some ties, every tenth a Period, and
/// three without a date. Returns the local ids with their dates' upper
/// ends (`None` for the undated).
fn laboratory(server: &Server, f: &Fixture) -> Vec<(String, Option<String>)> {
    let mut entries = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1203 {
        let id = format!("lab{i}");
        let day = |d: i64| {
            let date = chrono_day(d);
            format!("{date}T10:00:00Z")
        };
        let mut resource = json!({"resourceType": "Observation", "id": f.expand(&format!("~{id}")),
            "status": "final", "code": {"text": "x"},
            "category": [{"coding": [{"system": "http://example.org/cat", "code": f.expand("~lab")}]}]});
        let hi = if i >= 1200 {
            None
        } else if i % 10 == 0 {
            resource["effectivePeriod"] = json!({"start": day(i - 30), "end": day(i)});
            Some(day(i))
        } else {
            // Pairs of equal dates: ties are broken the same way everywhere.
            resource["effectiveDateTime"] = json!(day(i / 2 * 2));
            Some(day(i / 2 * 2))
        };
        expected.push((id.clone(), hi));
        entries.push(json!({"resource": resource, "request": {"method": "PUT",
            "url": format!("Observation/{}", f.expand(&format!("~{id}")))}}));
    }
    server
        .post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
        )
        .assert_status(200);
    expected
}

/// `2020-01-01` plus `days`, as a date.
fn chrono_day(days: i64) -> String {
    // Days from 1970-01-01 to 2020-01-01.
    let mut n = 18262 + days;
    let mut year = 1970;
    loop {
        let length = if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
            366
        } else {
            365
        };
        if n < length {
            break;
        }
        n -= length;
        year += 1;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let months = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while n >= months[month] {
        n -= months[month];
        month += 1;
    }
    format!("{year}-{:02}-{:02}", month + 1, n + 1)
}

both_backends! {
    fn a_broad_date_sort_pages_through_the_index_in_the_counted_order() {
        let server = Server::start();
        let f = Fixture::new(&server);
        let stored = laboratory(&server, &f);
        for (sort, descending) in [("-date", true), ("date", false)] {
            let q = format!("Observation?category=http://example.org/cat|~lab&_sort={sort}&_count=100");
            let first = server.read_json(&f.query_url(&q));
            assert!(first.get("total").is_none(), "a broad sorted page is not counted: {}", first["total"]);
            assert!(link(&first, "next").unwrap().contains("_cursor="));
            assert!(link(&first, "previous").is_none() && link(&first, "last").is_none());
            let walked = f.matches(&q);
            let counted = f.matches(&format!("{q}&_total=accurate"));
            assert_eq!(walked.len(), 1203, "each match once");
            assert_eq!(walked, counted, "{sort}: the same order as the counted search");
            // Dated matches by their date, the undated last.
            let date_of = |id: &String| stored.iter().find(|(i, _)| i == id).unwrap().1.clone();
            let dates: Vec<Option<String>> = walked.iter().map(date_of).collect();
            assert!(dates[1200..].iter().all(Option::is_none), "{sort}: undated last");
            let dated: Vec<&String> = dates[..1200].iter().map(|d| d.as_ref().unwrap()).collect();
            if descending {
                assert!(dated.windows(2).all(|w| w[0] >= w[1]), "{sort}: newest first");
            }
            let accurate = server.read_json(&f.query_url(&format!("{q}&_total=accurate")));
            assert_eq!(accurate["total"], 1203);
        }
    }
}

/// Follows `next` links from the search at `url`, collecting each entry's
/// id in order; `between` runs after each page with the number of pages
/// read and the ids so far (to write while paging). Answers the ids and
/// the last page.
fn walk(
    server: &Server,
    url: &str,
    mut between: impl FnMut(usize, &[String]),
) -> (Vec<String>, Value) {
    let mut page = server.read_json(url);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        for e in page["entry"]
            .as_array()
            .unwrap_or_else(|| panic!("page {pages}: {page}"))
        {
            seen.push(e["resource"]["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        between(pages, &seen);
        match link(&page, "next") {
            Some(url) => page = server.read_json(&url),
            None => return (seen, page),
        }
    }
}

both_backends! {
    fn keyset_pages_neither_repeat_nor_skip_while_others_write() {
        let server = Server::start();
        let f = Fixture::new(&server);
        laboratory(&server, &f);
        let q = "Observation?category=http://example.org/cat|~lab&_sort=-date&_count=50";
        let (seen, page) = walk(&server, &f.query_url(q), |pages, _| {
            if pages == 3 {
                // Newer than everything (before the cursor) and older than
                // everything (still ahead): the first is not given, the
                // second is, and nothing else moves.
                for (id, date) in [("~newest", "2030-01-01"), ("~oldest", "1990-01-01")] {
                    f.put(json!({"resourceType": "Observation", "id": id, "status": "final",
                        "code": {"text": "x"}, "effectiveDateTime": date,
                        "category": [{"coding": [{"system": "http://example.org/cat", "code": "~lab"}]}]}));
                }
            }
        });
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no resource twice");
        assert_eq!(seen.len(), 1204, "all 1,203 and the older one");
        assert!(seen.contains(&f.expand("~oldest")) && !seen.contains(&f.expand("~newest")));
        assert!(page.get("total").is_none());
    }
}

both_backends! {
    fn a_cursor_the_server_did_not_give_is_refused() {
        let server = Server::start();
        let outcome = server
            .get("/Observation?_sort=-date&_cursor=d.x.1")
            .assert_error(400);
        assert!(outcome.to_string().contains("search cursor"), "{outcome}");
    }
}

both_backends! {
    fn a_cursor_on_a_search_it_cannot_page_is_refused() {
        let server = Server::start();
        // Well formed, but these searches do not page by cursor: giving
        // page 1 again would repeat it forever.
        for q in [
            "/Observation?_cursor=u.5",
            "/Observation?_sort=-date&_total=accurate&_cursor=d.1.5",
            "/Patient?_sort=family&_cursor=u.5",
            "/Observation?_sort=-date&_cursor=t.1.5",
            "/Observation?_cursor=t.1.5&_total=accurate",
            "/Observation?_sort=_id&_cursor=t.1.5",
        ] {
            let outcome = server.get(q).assert_error(400);
            assert!(outcome.to_string().contains("_cursor"), "{q}: {outcome}");
        }
        // The same cursors on the searches that page by them are taken.
        for q in [
            "/Observation?_sort=-date&_cursor=u.5",
            "/Observation?_cursor=t.1.5",
            "/Observation?_sort=-_lastUpdated&_cursor=t.1.5",
        ] {
            assert_eq!(server.read_json(q)["type"], "searchset", "{q}");
        }
    }
}

/// The `meta.lastUpdated` of every match, page after page.
fn updates(f: &Fixture, query: &str) -> Vec<(String, String)> {
    f.pages(query)
        .iter()
        .flat_map(|b| b["entry"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let r = &e["resource"];
            let id = r["id"].as_str().unwrap().to_owned();
            (id, r["meta"]["lastUpdated"].as_str().unwrap().to_owned())
        })
        .collect()
}

both_backends! {
    fn a_broad_unsorted_search_pages_by_update_uncounted() {
        let server = Server::start();
        let f = Fixture::new(&server);
        laboratory(&server, &f);
        let q = "Observation?category=http://example.org/cat|~lab&_count=100";
        let first = server.read_json(&f.query_url(q));
        assert!(first.get("total").is_none(), "a broad page is not counted: {}", first["total"]);
        assert!(link(&first, "next").unwrap().contains("_cursor=t."), "{}", first["link"]);
        assert!(link(&first, "last").is_none());
        let mut walked = f.matches(q);
        assert_eq!(walked.len(), 1203, "each match once");
        let mut counted = f.matches(&format!("{q}&_total=accurate"));
        walked.sort();
        counted.sort();
        assert_eq!(walked, counted, "the same matches as the counted search");
        let accurate = server.read_json(&f.query_url(&format!("{q}&_total=accurate")));
        assert_eq!(accurate["total"], 1203);
        // Two broad conditions may meet in few resources, where a walk
        // would check every candidate: such a search is counted.
        let two = server.read_json(&f.query_url(&format!("{q}&status=final")));
        assert_eq!(two["total"], 1203, "{}", two["link"]);
        assert!(link(&two, "next").unwrap().contains("_snapshot="));
        // Sorted by _lastUpdated, either way, the walk keeps the order.
        for (sort, descending) in [("_lastUpdated", false), ("-_lastUpdated", true)] {
            let dates: Vec<String> = updates(&f, &format!("{q}&_sort={sort}"))
                .into_iter()
                .map(|(_, d)| d)
                .collect();
            assert_eq!(dates.len(), 1203, "{sort}");
            let ordered = dates.windows(2).all(|w| if descending { w[0] >= w[1] } else { w[0] <= w[1] });
            assert!(ordered, "{sort}: in order of lastUpdated");
        }
    }
}

both_backends! {
    fn a_walk_by_update_gives_what_changed_behind_it_again_and_skips_nothing() {
        let server = Server::start();
        let f = Fixture::new(&server);
        laboratory(&server, &f);
        let q = "Observation?category=http://example.org/cat|~lab&_count=50";
        let (seen, _) = walk(&server, &f.query_url(q), |pages, seen| {
            if pages == 3 {
                // One given already is updated, one new is created: both
                // are now the latest, so both come at the end.
                let first = seen[0].clone();
                let mut changed = server.read_json(&format!("/Observation/{first}"));
                changed["status"] = json!("amended");
                server.put(&format!("/Observation/{first}"), &changed).assert_status(200);
                f.put(json!({"resourceType": "Observation", "id": "~new", "status": "final",
                    "code": {"text": "x"},
                    "category": [{"coding": [{"system": "http://example.org/cat", "code": "~lab"}]}]}));
            }
        });
        assert_eq!(seen.len(), 1205, "all 1,203, the changed one again and the new one");
        assert_eq!(seen.last(), Some(&f.expand("~new")));
        assert_eq!(seen.iter().filter(|id| **id == seen[0]).count(), 2);
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 1204, "nothing else twice");
    }
}

/// 60 patients of the family `~fam` with 34 heart rates each (2,040
/// Observations: a broad `_has`), the first 30 also named `~few` (1,020
/// Observations of few patients: a broad chain), and three patients
/// without any.
fn heart_rates(server: &Server, f: &Fixture) {
    let mut entries = Vec::new();
    for p in 0..63 {
        let id = f.expand(&format!("~p{p}"));
        entries.push(json!({"resource": {"resourceType": "Patient", "id": id,
            "name": [{"family": f.expand("~fam"),
                "given": [if p < 30 { f.expand("~few") } else { "many".to_owned() }]}]},
            "request": {"method": "PUT", "url": format!("Patient/{id}")}}));
        if p >= 60 {
            continue;
        }
        for o in 0..34 {
            let oid = f.expand(&format!("~hr{p}-{o}"));
            entries.push(
                json!({"resource": {"resourceType": "Observation", "id": oid,
                "status": "final", "subject": {"reference": format!("Patient/{id}")},
                "code": {"coding": [{"system": "http://loinc.org", "code": f.expand("~hr")}]}},
                "request": {"method": "PUT", "url": format!("Observation/{oid}")}}),
            );
        }
    }
    server
        .post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
        )
        .assert_status(200);
}

both_backends! {
    fn a_broad_has_pages_by_update_and_finds_every_target_once() {
        let server = Server::start();
        let f = Fixture::new(&server);
        heart_rates(&server, &f);
        let expected: Vec<String> = {
            let mut ids: Vec<String> = (0..60).map(|p| format!("p{p}")).collect();
            ids.sort();
            ids
        };
        let q = "Patient?_has:Observation:subject:code=http://loinc.org|~hr&_count=7";
        let first = server.read_json(&f.query_url(q));
        assert!(first.get("total").is_none(), "{}", first["total"]);
        assert!(link(&first, "next").unwrap().contains("_cursor=t."));
        let mut walked = f.matches(q);
        walked.sort();
        assert_eq!(walked, expected, "each patient with a heart rate once");
        let accurate = server.read_json(&f.query_url(&format!("{q}&_total=accurate")));
        assert_eq!(accurate["total"], 60);
        // Checked per candidate another condition selects, the same `_has`
        // keeps its meaning: the family drives, the heart rates filter.
        let both = "Patient?family=~fam&_has:Observation:subject:code=http://loinc.org|~hr&_count=100";
        let mut matched = f.matches(both);
        matched.sort();
        assert_eq!(matched, expected);
        let none = f.matches("Patient?family=~fam&_has:Observation:subject:code=http://loinc.org|~other");
        assert!(none.is_empty(), "{none:?}");
    }
}

both_backends! {
    fn a_chain_over_few_targets_walks_their_referrers_in_the_counted_order() {
        let server = Server::start();
        let f = Fixture::new(&server);
        heart_rates(&server, &f);
        let q = "Observation?subject:Patient.given=~few&_count=100";
        let first = server.read_json(&f.query_url(q));
        assert!(first.get("total").is_none(), "{}", first["total"]);
        assert!(link(&first, "next").unwrap().contains("_cursor=k."), "{}", first["link"]);
        let walked = f.matches(q);
        let counted = f.matches(&format!("{q}&_total=accurate"));
        assert_eq!(walked.len(), 1020, "each of the 30 patients' 34 once");
        assert_eq!(walked, counted, "the same order as the counted search");
        assert!(walked.iter().all(|id| id.starts_with("hr")
            && id[2..].split('-').next().unwrap().parse::<u32>().unwrap() < 30));
        let accurate = server.read_json(&f.query_url(&format!("{q}&_total=accurate")));
        assert_eq!(accurate["total"], 1020);
        // Sixty targets are too many to walk: the search is counted.
        let many = server.read_json(&f.query_url("Observation?subject:Patient.family=~fam"));
        assert_eq!(many["total"], 2040);
        // A chain that finds no target matches nothing.
        assert!(f.matches("Observation?subject:Patient.given=~nobody").is_empty());
    }
}
