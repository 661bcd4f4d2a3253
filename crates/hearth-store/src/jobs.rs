//! Background jobs as database rows: they survive a restart and resume from
//! their cursor. Today's only kind is `reindex`, which rebuilds the search
//! index of some resource types (needed after a custom SearchParameter is
//! defined) in batches, one transaction each.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::Dialect;
use crate::statement::{Bind, Sql};
use hearth_model::search_params::CustomParams;
use serde_json::Value;

use crate::schema::{resource_versions as v, resources as r};
use crate::versions::Tx;
use crate::{Result, Store, StoreError};

/// Resources reindexed per transaction.
const BATCH: i64 = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub types: Vec<String>,
    pub status: JobStatus,
    pub done: i64,
    pub total: i64,
    /// When it was queued (ms).
    pub created: i64,
    /// What was asked, for the kinds that keep it (an export's request).
    pub params: Option<serde_json::Value>,
}

#[derive(QueryableByName)]
pub(crate) struct JobRow {
    #[diesel(sql_type = Text)]
    pub(crate) id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    types: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) cursor: i64,
    #[diesel(sql_type = BigInt)]
    done: i64,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub(crate) created: i64,
    #[diesel(sql_type = Nullable<Text>)]
    params: Option<String>,
    /// Which of `types` an export is at.
    #[diesel(sql_type = BigInt)]
    pub(crate) position: i64,
    /// How many parts an export has written.
    #[diesel(sql_type = BigInt)]
    pub(crate) parts: i64,
}

impl JobRow {
    pub(crate) fn params(&self) -> Option<serde_json::Value> {
        self.params
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
    }

    pub(crate) fn types(&self) -> Vec<String> {
        self.types
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn job(self) -> Job {
        let types = self.types();
        let params = self.params();
        Job {
            status: match self.status.as_str() {
                "queued" => JobStatus::Queued,
                "running" => JobStatus::Running,
                "done" => JobStatus::Done,
                _ => JobStatus::Failed(self.error.unwrap_or_default()),
            },
            params,
            id: self.id,
            kind: self.kind,
            types,
            done: self.done,
            total: self.total,
            created: self.created,
        }
    }
}

const JOB_COLUMNS: &str =
    "id, kind, types, status, cursor, done, total, error, created, params, position, parts";

impl Tx<'_> {
    /// Whether the principal of this transaction may see job `id`: the
    /// one that started it (an open server's jobs are anyone's). An
    /// unknown job is nobody's.
    pub(crate) fn owns_job(&mut self, id: &str) -> Result<bool> {
        #[derive(QueryableByName)]
        struct Owner {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            requester: Option<String>,
        }
        let Some(me) = self.access.owner() else {
            return Ok(self.access.is_everything());
        };
        let row: Option<Owner> = Sql::with_binds(
            "SELECT requester FROM jobs WHERE id = ?",
            vec![Bind::Text(id.to_owned())],
        )
        .get_result(self.conn)
        .optional()?;
        Ok(row.is_some_and(|r| r.requester.as_deref() == Some(me)))
    }
}

impl Store {
    /// Queues a reindex of `types` (every type when empty).
    pub fn start_reindex(&self, types: &[String]) -> Result<String> {
        // It rewrites every resource's index: an administrative grant.
        if !self
            .access
            .grant()
            .is_system_wide(hearth_auth::Permission::Update)
        {
            return Err(StoreError::Forbidden(
                "$reindex needs system-level update of every type (system/*.u, system/*.cruds or system/*.write)".into(),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = hearth_model::datetime::now_ms();
        let (job_id, types) = (id.clone(), types.to_vec());
        let requester = self.access.owner().map(str::to_owned);
        self.write(move |tx| -> Result<()> {
            let total = tx.count_resources(&types)?;
            Sql::with_binds(
                "INSERT INTO jobs (id, kind, types, status, cursor, done, total, created, updated, requester) \
                 VALUES (?, 'reindex', ?, 'queued', 0, 0, ?, ?, ?, ?)",
                vec![
                    Bind::Text(job_id),
                    Bind::Text(types.join(",")),
                    Bind::Int(total),
                    Bind::Int(now),
                    Bind::Int(now),
                    Bind::OptText(requester),
                ],
            )
            .execute(tx.conn)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// A job, if this handle's principal may see it (see [`Tx::owns_job`]).
    pub fn job(&self, id: &str) -> Result<Option<Job>> {
        if !self.read_with(|tx| tx.owns_job(id))? {
            return Ok(None);
        }
        let mut conn = self.pool.get()?;
        let row: Option<JobRow> = Sql::with_binds(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"),
            vec![Bind::Text(id.to_owned())],
        )
        .get_result(&mut **conn)
        .optional()?;
        Ok(row.map(JobRow::job))
    }

    /// Runs one batch of the oldest unfinished job this node may run: one
    /// no node holds, or whose holder's lease ran out (it stopped). The
    /// node keeps the job while it renews the lease, one batch at a time,
    /// so a job is run by one node; another takes over if that one stops.
    /// Answers whether there was work, so a worker knows when to sleep.
    pub fn run_job_batch(&self) -> Result<bool> {
        let node = self.node.clone();
        let lease_ms = self.job_lease.as_millis() as i64;
        let job = self.write(move |tx| -> Result<Option<(JobRow, Option<CustomParams>)>> {
            let now = hearth_model::datetime::now_ms();
            let mut claim = Sql::with_binds(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') \
                     AND (owner IS NULL OR owner = ? OR lease_until < ?) ORDER BY created LIMIT 1"
                ),
                vec![Bind::Text(node.to_string()), Bind::Int(now)],
            );
            if tx.dialect() == Dialect::Postgres {
                // Nodes claiming at once skip each other's job.
                claim.push(" FOR UPDATE SKIP LOCKED");
            }
            let job: Option<JobRow> = claim.get_result(tx.conn).optional()?;
            let Some(job) = job else { return Ok(None) };
            if job.kind == "export" {
                tx.export_batch(&job, &node, now + lease_ms)?;
                return Ok(Some((job, None)));
            }
            let types = job.types();
            let keys = tx.reindex_batch(&types, job.cursor)?;
            match keys.last() {
                Some(last) => {
                    Sql::with_binds(
                        "UPDATE jobs SET status = 'running', cursor = ?, done = done + ?, updated = ?, \
                         owner = ?, lease_until = ? WHERE id = ?",
                        vec![
                            Bind::Int(*last),
                            Bind::Int(keys.len() as i64),
                            Bind::Int(now),
                            Bind::Text(node.to_string()),
                            Bind::Int(now + lease_ms),
                            Bind::Text(job.id.clone()),
                        ],
                    )
                    .execute(tx.conn)?;
                }
                None => {
                    Sql::with_binds(
                        "UPDATE jobs SET status = 'done', updated = ?, owner = NULL, lease_until = NULL \
                         WHERE id = ?",
                        vec![Bind::Int(now), Bind::Text(job.id.clone())],
                    )
                    .execute(tx.conn)?;
                    return Ok(Some((job, Some(crate::custom::mark_ready(tx.conn, &types)?))));
                }
            }
            Ok(Some((job, None)))
        })?;
        let Some((_, finished)) = job else {
            return Ok(false);
        };
        if let Some(custom) = finished {
            self.set_custom_params(custom);
        }
        Ok(true)
    }
}

impl Tx<'_> {
    fn count_resources(&mut self, types: &[String]) -> Result<i64> {
        let mut q = r::table.filter(r::deleted.eq(false)).into_boxed();
        if !types.is_empty() {
            q = q.filter(r::resource_type.eq_any(types));
        }
        Ok(q.count().get_result(self.conn)?)
    }

    /// Rebuilds the index rows of the next batch of resources after
    /// `cursor` (a res_key), returning the keys done.
    fn reindex_batch(&mut self, types: &[String], cursor: i64) -> Result<Vec<i64>> {
        // The parameters as stored now, not as this node last loaded them:
        // the job may be another node's, started for a SearchParameter this
        // node has not seen yet.
        self.custom = std::sync::Arc::new(crate::custom::load(self.conn)?);
        let mut q = r::table
            .inner_join(v::table.on(v::seq.eq(r::current_seq)))
            .filter(r::deleted.eq(false).and(r::res_key.gt(cursor)))
            .into_boxed();
        if !types.is_empty() {
            q = q.filter(r::resource_type.eq_any(types));
        }
        let batch: Vec<(i64, String, Option<Vec<u8>>)> = q
            .order(r::res_key)
            .limit(BATCH)
            .select((r::res_key, r::resource_type, v::body))
            .load(self.conn)?;
        let mut keys = Vec::with_capacity(batch.len());
        for (key, _, body) in batch {
            crate::index_rows::clear(self.conn, key)?;
            let document = crate::body::decode_opt(body)?
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .map(|resource| self.document(resource))
                .transpose()?;
            let text = match document {
                Some(d) => {
                    d.index.insert(self.conn, key)?;
                    Some(d.text)
                }
                None => None,
            };
            self.text.replace(key, true, text);
            keys.push(key);
        }
        Ok(keys)
    }
}
