//! Bulk Data export (HL7 Bulk Data Access 2.0) as a background job: the
//! job walks its resource types in order, a batch per transaction, and
//! writes each batch's NDJSON as a part in `export_parts`, with its cursor
//! in the same transaction. A batch is bounded by bytes as well as by
//! resources, so memory stays flat however large the resources (Synthea's
//! Provenance are 150 kB each), any node can serve the parts, and a job
//! interrupted by a restart resumes after its last part.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use serde_json::{json, Value};

use crate::jobs::JobRow;
use crate::search::{self, ParseOptions};
use crate::statement::{Bind, Sql};
use crate::versions::Tx;
use crate::{body, Result, Store, StoreError};
use hearth_auth::{Permission, TypeAccess};

/// Resources per batch (and part) at most.
const BATCH: i64 = 5000;

/// Stored (compressed) bytes a batch reads at most, unless its first
/// resource alone is larger.
const BATCH_STORED_BYTES: i64 = 4 << 20;

/// NDJSON bytes a part holds at most, unless its first resource alone is
/// larger (a stored body may expand more than the usual three times).
const PART_BYTES: usize = 16 << 20;

/// What an export is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportRequest {
    /// The types to export, in order (`_type`; all with resources when
    /// empty).
    pub types: Vec<String>,
    /// `_since`: resources written at or after (ms).
    pub since: Option<i64>,
    /// `_typeFilter`: searches (`Type?params`); a type with filters
    /// exports what matches any of them.
    pub type_filters: Vec<String>,
    /// Patient or Group level: only the Patient compartment, of these
    /// patients (`None`: every patient).
    pub patients: Option<Vec<String>>,
    pub patient_level: bool,
    /// The kick-off request's URL, for the manifest.
    pub request: String,
    /// What a lenient kick-off (`Prefer: handling=lenient`) passed over,
    /// for the manifest's `error` file.
    pub warnings: Vec<String>,
}

impl ExportRequest {
    fn to_value(&self) -> Value {
        json!({
            "since": self.since,
            "typeFilters": self.type_filters,
            "patients": self.patients,
            "patientLevel": self.patient_level,
            "request": self.request,
            "warnings": self.warnings,
        })
    }

    fn from_value(types: Vec<String>, v: &Value) -> ExportRequest {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        ExportRequest {
            types,
            since: v["since"].as_i64(),
            type_filters: strings(&v["typeFilters"]),
            patients: v["patients"].is_array().then(|| strings(&v["patients"])),
            patient_level: v["patientLevel"].as_bool().unwrap_or(false),
            request: v["request"].as_str().unwrap_or_default().to_owned(),
            warnings: strings(&v["warnings"]),
        }
    }
}

/// One file of a finished export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPart {
    pub n: i64,
    pub resource_type: String,
    pub resources: i64,
}

#[derive(QueryableByName)]
struct PartRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = BigInt)]
    resources: i64,
}

#[derive(QueryableByName)]
struct Data {
    #[diesel(sql_type = Binary)]
    data: Vec<u8>,
}

#[derive(QueryableByName)]
struct Body {
    #[diesel(sql_type = BigInt)]
    res_key: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    body: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = BigInt)]
    res_key: i64,
    #[diesel(sql_type = BigInt)]
    size: i64,
}

#[derive(QueryableByName)]
struct TypeRow {
    #[diesel(sql_type = Text)]
    resource_type: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The searches of `_typeFilter`, checked as a search would be.
pub fn parse_type_filter(
    filter: &str,
    custom: std::sync::Arc<hearth_model::search_params::CustomParams>,
) -> std::result::Result<search::SearchQuery, String> {
    let (resource_type, query) = filter
        .split_once('?')
        .ok_or_else(|| format!("_typeFilter '{filter}' is not Type?parameters"))?;
    if !hearth_model::structure::is_resource_type(resource_type) {
        return Err(format!("_typeFilter '{filter}' names no resource type"));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let options = ParseOptions {
        strict: true,
        default_count: 1,
        max_count: 1,
        base: None,
        custom,
    };
    search::parse(&[resource_type.to_owned()], &params, &options)
        .map_err(|e| format!("_typeFilter '{filter}': {}: {}", e.param, e.message))
}

impl Store {
    /// Queues an export; answers the job's id.
    pub fn start_export(&self, request: &ExportRequest) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = hearth_model::datetime::now_ms();
        let (job_id, request) = (id.clone(), request.clone());
        let owner = self.access.owner().map(str::to_owned);
        self.write(move |tx| -> Result<()> {
            // A system-level export reaches what `system/` scopes grant; at
            // Patient or Group level, what the whole grant does.
            let grant = if request.patient_level {
                tx.access.grant().clone()
            } else {
                tx.access.grant().system_part()
            };
            // Without `_type`: every type the grant lets the client read,
            // of those stored.
            let asked: Vec<String> = if request.types.is_empty() {
                hearth_model::structure::resource_types()
                    .filter(|t| grant.allows_some(t, Permission::Read))
                    .map(str::to_owned)
                    .collect()
            } else {
                request.types.clone()
            };
            if asked.is_empty() {
                return Err(StoreError::Forbidden(
                    "the access token grants read of no type at system level; /$export needs \
                     system/ scopes (a patient's or a user's export goes through Patient/$export)"
                        .into(),
                ));
            }
            // The job runs later, on a thread of its own: the limits of
            // the grant (to a patient, to a granular search) go with it.
            let mut limits = serde_json::Map::new();
            for t in &asked {
                match grant.access(t, Permission::Read) {
                    TypeAccess::All => {}
                    TypeAccess::None if request.patient_level => {
                        return Err(crate::access::forbidden(t, Permission::Read))
                    }
                    TypeAccess::None => {
                        return Err(StoreError::Forbidden(format!(
                            "the access token does not grant read of {t} at system level; \
                             /$export needs system/ scopes"
                        )))
                    }
                    TypeAccess::Limited(within) => {
                        let within: Vec<Value> = within
                            .iter()
                            .map(|l| json!({"patient": l.patient, "filter": l.filter}))
                            .collect();
                        limits.insert(t.clone(), Value::Array(within));
                    }
                }
            }
            let types = if request.types.is_empty() {
                let stored = tx.stored_types()?;
                if grant.is_everything() {
                    stored
                } else {
                    let granted: Vec<String> =
                        stored.into_iter().filter(|t| asked.contains(t)).collect();
                    // Never empty: a job without types exports every type.
                    if granted.is_empty() {
                        asked
                    } else {
                        granted
                    }
                }
            } else {
                asked
            };
            // Patient level: the types of the Patient compartment.
            let types: Vec<String> = types
                .into_iter()
                .filter(|t| {
                    !request.patient_level
                        || t == "Patient"
                        || hearth_model::compartments::params("Patient", t).is_some()
                })
                .collect();
            let mut count = Sql::on(tx.dialect());
            count.push("SELECT COUNT(*) AS n FROM resources r WHERE NOT r.deleted");
            if !types.is_empty() {
                count.push(" AND r.resource_type IN ").list(&types);
            }
            let total: Count = count.get_result(tx.conn)?;
            let mut params = request.to_value();
            if !limits.is_empty() {
                params["limits"] = Value::Object(limits);
            }
            Sql::with_binds(
                "INSERT INTO jobs (id, kind, types, status, cursor, done, total, created, updated, params, requester) \
                 VALUES (?, 'export', ?, 'queued', 0, 0, ?, ?, ?, ?, ?)",
                vec![
                    Bind::Text(job_id),
                    Bind::Text(types.join(",")),
                    Bind::Int(total.n),
                    Bind::Int(now),
                    Bind::Int(now),
                    Bind::Text(params.to_string()),
                    Bind::OptText(owner),
                ],
            )
            .execute(tx.conn)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// The files of an export, in order.
    pub fn export_parts(&self, id: &str) -> Result<Vec<ExportPart>> {
        self.read_with(|tx| {
            if !tx.owns_job(id)? {
                return Ok(Vec::new());
            }
            let rows: Vec<PartRow> = Sql::with_binds(
                "SELECT n, resource_type, resources FROM export_parts WHERE job_id = ? ORDER BY n",
                vec![Bind::Text(id.to_owned())],
            )
            .load(tx.conn)?;
            Ok(rows
                .into_iter()
                .map(|r| ExportPart {
                    n: r.n,
                    resource_type: r.resource_type,
                    resources: r.resources,
                })
                .collect())
        })
    }

    /// The NDJSON of one part.
    pub fn export_part(&self, id: &str, n: i64) -> Result<Option<Vec<u8>>> {
        let row: Option<Data> = self.read_with(|tx| {
            if !tx.owns_job(id)? {
                return Ok(None);
            }
            Ok(Sql::with_binds(
                "SELECT data FROM export_parts WHERE job_id = ? AND n = ?",
                vec![Bind::Text(id.to_owned()), Bind::Int(n)],
            )
            .get_result(tx.conn)
            .optional()?)
        })?;
        row.map(|d| body::decode(d.data)).transpose()
    }

    /// Cancels a job and deletes what it wrote; `false` if there was none.
    pub fn delete_job(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |tx| -> Result<bool> {
            if !tx.owns_job(&id)? {
                return Ok(false);
            }
            Sql::with_binds(
                "DELETE FROM export_parts WHERE job_id = ?",
                vec![Bind::Text(id.clone())],
            )
            .execute(tx.conn)?;
            let deleted = Sql::with_binds("DELETE FROM jobs WHERE id = ?", vec![Bind::Text(id)])
                .execute(tx.conn)?;
            Ok(deleted > 0)
        })
    }
}

impl Tx<'_> {
    fn stored_types(&mut self) -> Result<Vec<String>> {
        let rows: Vec<TypeRow> = Sql::new(
            "SELECT DISTINCT resource_type FROM resources WHERE NOT deleted ORDER BY resource_type",
        )
        .load(self.conn)?;
        Ok(rows.into_iter().map(|r| r.resource_type).collect())
    }

    /// Exports the next batch of `job` (claimed by `node` until `lease`).
    pub(crate) fn export_batch(&mut self, job: &JobRow, node: &str, lease: i64) -> Result<()> {
        let now = hearth_model::datetime::now_ms();
        let types = job.types();
        let params = job.params().unwrap_or_default();
        let request = ExportRequest::from_value(types.clone(), &params);
        let Some(resource_type) = types.get(job.position as usize) else {
            Sql::with_binds(
                "UPDATE jobs SET status = 'done', updated = ?, owner = NULL, lease_until = NULL WHERE id = ?",
                vec![Bind::Int(now), Bind::Text(job.id.clone())],
            )
            .execute(self.conn)?;
            return Ok(());
        };
        // Its conditions (`_typeFilter` parsed) once, for both statements.
        let limits = params["limits"][resource_type].as_array();
        let batch_rows = self.batch_rows(job, &request, limits, resource_type)?;
        // The batch's resources, by their stored sizes: as many as fit,
        // and the first whatever its size.
        let mut sizes = Sql::on(self.dialect());
        sizes.push(
            "SELECT r.res_key AS res_key, CAST(COALESCE(LENGTH(v.body), 0) AS BIGINT) AS size",
        );
        sizes.append(batch_rows.clone());
        sizes.push(" ORDER BY r.res_key LIMIT ").int(BATCH);
        let sizes: Vec<Size> = sizes.load(self.conn)?;
        let mut stored = 0;
        let Some(upto) = sizes
            .iter()
            .take_while(|row| {
                let first = stored == 0;
                stored += row.size;
                first || stored <= BATCH_STORED_BYTES
            })
            .last()
            .map(|row| row.res_key)
        else {
            // This type is done: the next one, from its start.
            Sql::with_binds(
                "UPDATE jobs SET status = 'running', position = position + 1, cursor = 0, updated = ?, \
                 owner = ?, lease_until = ? WHERE id = ?",
                vec![
                    Bind::Int(now),
                    Bind::Text(node.to_owned()),
                    Bind::Int(lease),
                    Bind::Text(job.id.clone()),
                ],
            )
            .execute(self.conn)?;
            return Ok(());
        };
        let mut s = Sql::on(self.dialect());
        s.push("SELECT r.res_key AS res_key, v.body AS body");
        s.append(batch_rows);
        s.push(" AND r.res_key <= ").int(upto);
        s.push(" ORDER BY r.res_key");
        let rows: Vec<Body> = s.load(self.conn)?;
        let mut ndjson = Vec::with_capacity(PART_BYTES.min(rows.len() * 2048));
        // The part ends at `upto`, or before the first resource that finds
        // it full (the next batch starts there).
        let (mut count, mut cursor) = (0, upto);
        let mut previous = None;
        for row in rows {
            if let Some(previous) = previous.filter(|_| ndjson.len() >= PART_BYTES) {
                cursor = previous;
                break;
            }
            if let Some(b) = body::decode_opt(row.body)? {
                ndjson.extend_from_slice(&b);
                ndjson.push(b'\n');
            }
            count += 1;
            previous = Some(row.res_key);
        }
        if count > 0 {
            self.add_part(job, resource_type, count, &ndjson)?;
        }
        Sql::with_binds(
            "UPDATE jobs SET status = 'running', cursor = ?, done = done + ?, parts = parts + ?, \
             updated = ?, owner = ?, lease_until = ? WHERE id = ?",
            vec![
                Bind::Int(cursor),
                Bind::Int(count),
                Bind::Int((count > 0).into()),
                Bind::Int(now),
                Bind::Text(node.to_owned()),
                Bind::Int(lease),
                Bind::Text(job.id.clone()),
            ],
        )
        .execute(self.conn)?;
        Ok(())
    }

    /// Writes `job`'s next part: `count` resources of `resource_type`.
    fn add_part(
        &mut self,
        job: &JobRow,
        resource_type: &str,
        count: i64,
        ndjson: &[u8],
    ) -> Result<()> {
        Sql::with_binds(
            "INSERT INTO export_parts (job_id, n, resource_type, resources, data) VALUES (?, ?, ?, ?, ?)",
            vec![
                Bind::Text(job.id.clone()),
                Bind::Int(job.parts),
                Bind::Text(resource_type.to_owned()),
                Bind::Int(count),
                Bind::Bytes(body::encode(ndjson)),
            ],
        )
        .execute(self.conn)?;
        Ok(())
    }

    /// ` FROM … WHERE …`: the resources of `resource_type` that `job`
    /// exports after its cursor, within `limits` (those of the grant it was
    /// started under, for this type) when there are any.
    fn batch_rows(
        &self,
        job: &JobRow,
        request: &ExportRequest,
        limits: Option<&Vec<Value>>,
        resource_type: &str,
    ) -> Result<Sql> {
        let mut s = Sql::on(self.dialect());
        s.push(
            " FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
             WHERE NOT r.deleted AND r.resource_type = ",
        )
        .text(resource_type)
        .push(" AND r.res_key > ")
        .int(job.cursor)
        // As of the kick-off (the manifest's transactionTime): what is
        // written later is for the next export `_since` then.
        .push(" AND r.last_updated <= ")
        .int(job.created);
        if let Some(since) = request.since {
            s.push(" AND r.last_updated >= ").int(since);
        }
        if request.patient_level {
            self.compartment_condition(&mut s, resource_type, request.patients.as_deref());
        }
        if let Some(limits) = limits {
            let group = search::GrantGroup {
                types: vec![resource_type.to_owned()],
                limits: Some(
                    limits
                        .iter()
                        .filter_map(|l| self.export_limit(resource_type, l))
                        .collect(),
                ),
            };
            s.push(" AND ");
            search::groups_clause(&[group], search::Checked::Resource("r"), None, &mut s);
        }
        let filters: Vec<search::SearchQuery> = request
            .type_filters
            .iter()
            .filter(|f| f.split_once('?').is_some_and(|(t, _)| t == resource_type))
            .map(|f| parse_type_filter(f, self.custom.clone()).map_err(StoreError::InvalidResource))
            .collect::<Result<_>>()?;
        if !filters.is_empty() {
            s.push(" AND (");
            for (i, filter) in filters.iter().enumerate() {
                if i > 0 {
                    s.push(" OR ");
                }
                s.push("(");
                crate::search::filter_sql(filter, &mut s);
                s.push(")");
            }
            s.push(")");
        }
        Ok(s)
    }

    /// A limit an export job carries (`{"patient", "filter"}`); `None`
    /// (nothing within it) when its search no longer parses.
    fn export_limit(&self, resource_type: &str, limit: &Value) -> Option<search::GrantLimit> {
        let filter: Vec<(String, String)> = serde_json::from_value(limit["filter"].clone()).ok()?;
        Some(search::GrantLimit {
            patient: limit["patient"].as_str().map(str::to_owned),
            conditions: crate::access::filter_conditions(
                resource_type,
                &filter,
                &self.custom,
                None,
            )?,
        })
    }

    /// Only resources in the Patient compartment (of `patients`).
    fn compartment_condition(&self, s: &mut Sql, resource_type: &str, patients: Option<&[String]>) {
        if resource_type == "Patient" {
            if let Some(ids) = patients {
                s.push(" AND r.id IN ").list(ids);
            }
            return;
        }
        let params: Vec<String> = hearth_model::compartments::params("Patient", resource_type)
            .unwrap_or_default()
            .iter()
            .map(|c| format!("{resource_type}.{c}"))
            .collect();
        s.push(" AND r.res_key IN (SELECT ref.res_key FROM idx_reference ref WHERE ref.param IN ")
            .list(&params)
            .push(" AND ref.target_type = 'Patient'");
        if let Some(ids) = patients {
            s.push(" AND ref.target_id IN ").list(ids);
        }
        s.push(")");
    }
}
