//! Whose data each version is: the rows of `version_patients`, written
//! with every version, through which patient-limited grants are enforced
//! (`access.rs`). A deletion belongs to whom the version before it did, so
//! a patient's history shows the deletion of their resources.

use diesel::prelude::*;
use serde_json::Value;

use crate::db::Db;
use crate::schema::resource_versions as v;
use crate::statement::Sql;
use crate::Result;

/// Bumped when the rule of `patients_of` changes: opening the store then
/// computes every version's patients again.
const PATIENTS_VERSION: &str = "1";

struct InsertPatient;
struct CopyPatients;

/// Records that version `seq` belongs to `patients`.
pub(crate) fn insert(conn: &mut Db, seq: i64, patients: &[String]) -> Result<()> {
    for patient in patients {
        let mut sql = Sql::default();
        sql.push("INSERT INTO version_patients (seq, patient_id) VALUES (")
            .int(seq)
            .push(", ")
            .text(patient.as_str())
            .push(")");
        sql.cached::<InsertPatient>().execute_on(conn)?;
    }
    Ok(())
}

/// Version `seq` (a deletion) belongs to whom version `previous` did.
pub(crate) fn copy(conn: &mut Db, seq: i64, previous: i64) -> Result<()> {
    let mut sql = Sql::default();
    sql.push("INSERT INTO version_patients (seq, patient_id) SELECT ")
        .int(seq)
        .push(", patient_id FROM version_patients WHERE seq = ")
        .int(previous);
    sql.cached::<CopyPatients>().execute_on(conn)?;
    Ok(())
}

/// The patients of a stored body, from its linking parameters alone.
fn of_body(resource_type: &str, id: &str, body: &[u8]) -> Vec<String> {
    let Ok(resource) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(links) = hearth_model::compartments::patient_links(resource_type) else {
        return Vec::new();
    };
    let entries: Vec<hearth_model::index::IndexEntry> = links
        .iter()
        .filter_map(|code| hearth_model::search_params::spec_get(resource_type, code))
        .flat_map(|param| {
            hearth_model::index::param_values(param, &resource)
                .into_iter()
                .map(|value| hearth_model::index::IndexEntry {
                    param: param.code.clone(),
                    value,
                })
        })
        .collect();
    hearth_model::compartments::patients_of(resource_type, Some(id), &entries)
}

/// Computes every version's patients when the store holds versions written
/// before they were recorded (or under another rule). Runs once, when the
/// store opens, in one transaction.
pub(crate) fn fill_if_stale(conn: &mut Db) -> Result<()> {
    if crate::store_meta::get(conn, "patients_version")?.as_deref() == Some(PATIENTS_VERSION) {
        return Ok(());
    }
    conn.write_transaction(|conn| {
        diesel::sql_query("DELETE FROM version_patients").execute(conn)?;
        // The seq of each resource's latest version seen, for deletions.
        let mut last: std::collections::HashMap<(String, String), i64> = Default::default();
        let mut after = 0i64;
        let mut filled = 0usize;
        loop {
            type Row = (i64, String, String, Option<Vec<u8>>);
            let batch: Vec<Row> = v::table
                .filter(v::seq.gt(after))
                .order(v::seq)
                .limit(1000)
                .select((v::seq, v::resource_type, v::id, v::body))
                .load(conn)?;
            let Some(end) = batch.last() else { break };
            after = end.0;
            for (seq, resource_type, id, body) in batch {
                match crate::body::decode_opt(body)? {
                    Some(body) => insert(conn, seq, &of_body(&resource_type, &id, &body))?,
                    None => {
                        if let Some(previous) = last.get(&(resource_type.clone(), id.clone())) {
                            copy(conn, seq, *previous)?;
                        }
                    }
                }
                last.insert((resource_type, id), seq);
                filled += 1;
            }
        }
        crate::store_meta::set(conn, "patients_version", PATIENTS_VERSION.to_owned())?;
        if filled > 0 {
            tracing::info!(versions = filled, "patients of stored versions recorded");
        }
        Ok::<(), crate::StoreError>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use crate::{Store, StoreOptions};

    crate::both_backends! {
        fn a_store_from_before_gets_its_versions_patients_on_opening() {
            let db = TestDatabase::new();
            let store = Store::open(&db.database, &StoreOptions::default()).unwrap();
            let obs = |subject: &str| serde_json::json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": subject}});
            let id = store.create(obs("Patient/a")).unwrap().version.id;
            store.update(&id, obs("Patient/b"), None, crate::Method::Put).unwrap();
            store.delete("Observation", &id, None).unwrap();
            let rows = |store: &Store| -> Vec<(i64, String)> {
                #[derive(diesel::QueryableByName)]
                struct Row {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    seq: i64,
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    patient_id: String,
                }
                let rows: Vec<Row> = store
                    .read_with(|tx| Ok(Sql::new("SELECT seq, patient_id FROM version_patients ORDER BY seq, patient_id").load(tx.conn)?))
                    .unwrap();
                rows.into_iter().map(|r| (r.seq, r.patient_id)).collect()
            };
            let written = rows(&store);
            let patients: Vec<&str> = written.iter().map(|(_, p)| p.as_str()).collect();
            // Version 1 is a's, 2 is b's, and the deletion b's.
            assert_eq!(patients, ["a", "b", "b"]);
            // As a store written before the rows existed.
            store
                .write(|tx| -> crate::Result<()> {
                    diesel::sql_query("DELETE FROM version_patients").execute(tx.conn)?;
                    diesel::sql_query("DELETE FROM store_meta WHERE key = 'patients_version'").execute(tx.conn)?;
                    Ok(())
                })
                .unwrap();
            assert!(rows(&store).is_empty());
            drop(store);
            let reopened = Store::open(&db.database, &StoreOptions::default()).unwrap();
            assert_eq!(rows(&reopened), written);
        }
    }

    #[test]
    fn a_stored_body_belongs_to_the_patients_it_links_to() {
        let body = br#"{"resourceType":"Observation","id":"o","subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"}],"focus":[{"reference":"Patient/c"}]}"#;
        assert_eq!(of_body("Observation", "o", body), ["a", "b"]);
        assert_eq!(
            of_body("Patient", "p", br#"{"resourceType":"Patient","id":"p"}"#),
            ["p"]
        );
        assert!(of_body("Practitioner", "d", br#"{"resourceType":"Practitioner"}"#).is_empty());
    }
}
