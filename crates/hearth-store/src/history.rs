//! History of an instance, a type or the whole system, newest first.
//!
//! Paging is stable while other clients write: the first page fixes a
//! snapshot (the highest `seq` then written) and later pages read only
//! versions up to it. Versions are never changed once written, so an offset
//! within a snapshot always means the same entry.

use diesel::dsl::max;
use diesel::prelude::*;
use hearth_auth::Permission;

use hearth_model::datetime::Range;

use crate::schema::resource_versions as v;
use crate::statement::Sql;
use crate::versions::{StoredVersion, Tx};
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance(String, String),
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// Only versions written at or after this instant (ms since the epoch).
    pub since: Option<i64>,
    /// Only versions that were current at some point during this range.
    pub at: Option<Range>,
    pub count: i64,
    pub offset: i64,
    /// The snapshot of an earlier page; `None` for a first page.
    pub snapshot: Option<HistorySnapshot>,
}

/// What a first history page saw, so that later pages show the same list:
/// the highest `seq` then written and, on PostgreSQL, the database snapshot
/// (which of the transactions with smaller seqs had committed). Written in
/// paging links as `seq` or `seq~xmin:xmax:xip,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySnapshot {
    pub seq: i64,
    transactions: Option<String>,
}

impl std::fmt::Display for HistorySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transactions {
            Some(t) => write!(f, "{}~{t}", self.seq),
            None => write!(f, "{}", self.seq),
        }
    }
}

impl std::str::FromStr for HistorySnapshot {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{s}' is not a history snapshot");
        let (seq, transactions) = match s.split_once('~') {
            Some((seq, t)) => (seq, Some(t)),
            None => (s, None),
        };
        let seq: i64 = seq.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
        // xmin:xmax:xip,xip,… (pg_snapshot's text form), with
        // xmin <= xip < xmax.
        if let Some(t) = transactions {
            let number = |p: &str| -> Option<u64> {
                p.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| p.parse().ok())?
            };
            let parts: Vec<&str> = t.split(':').collect();
            let [xmin, xmax, xip] = parts.as_slice() else {
                return Err(bad());
            };
            let (xmin, xmax) = (number(xmin).ok_or_else(bad)?, number(xmax).ok_or_else(bad)?);
            let in_range = xip.is_empty()
                || xip
                    .split(',')
                    .all(|x| number(x).is_some_and(|x| xmin <= x && x < xmax));
            if xmin > xmax || !in_range {
                return Err(bad());
            }
        }
        Ok(HistorySnapshot {
            seq,
            transactions: transactions.map(str::to_owned),
        })
    }
}

#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub entries: Vec<StoredVersion>,
    /// How many versions match in the whole snapshot.
    pub total: i64,
    pub snapshot: HistorySnapshot,
}

impl Tx<'_> {
    /// `WHERE` for the versions of a history (alias `v`), held to the
    /// transaction's grant: an instance's history needs `r` on its type,
    /// a type's or the system's `s`; each version is seen when it was
    /// the patient's (`Access::versions_clause`).
    fn history_filter(&self, query: &HistoryQuery, snapshot: &HistorySnapshot, sql: &mut Sql) {
        sql.push(" WHERE v.seq <= ").int(snapshot.seq);
        if let Some(transactions) = &snapshot.transactions {
            sql.push(" AND pg_visible_in_snapshot(xid, CAST(")
                .text(transactions.as_str())
                .push(" AS pg_snapshot))");
        }
        let all_types: Vec<&str>;
        let (types, permission): (Vec<&str>, Permission) = match &query.scope {
            HistoryScope::System => {
                all_types = hearth_model::structure::resource_types().collect();
                (all_types, Permission::Search)
            }
            HistoryScope::Type(t) => {
                sql.push(" AND v.resource_type = ").text(t.as_str());
                (vec![t.as_str()], Permission::Search)
            }
            HistoryScope::Instance(t, id) => {
                sql.push(" AND v.resource_type = ")
                    .text(t.as_str())
                    .push(" AND v.id = ")
                    .text(id.as_str());
                (vec![t.as_str()], Permission::Read)
            }
        };
        if let Some(since) = query.since {
            sql.push(" AND v.last_updated >= ").int(since);
        }
        if let Some(at) = query.at {
            // Current during [start, end): written before the end, and not
            // replaced by a newer version before the start.
            sql.push(" AND v.last_updated < ")
                .int(at.end)
                .push(
                    " AND NOT EXISTS (SELECT 1 FROM resource_versions n \
                     WHERE n.resource_type = v.resource_type AND n.id = v.id \
                     AND n.version_id > v.version_id AND n.last_updated <= ",
                )
                .int(at.start)
                .push(")");
        }
        self.access
            .versions_clause(types, permission, &self.custom, sql);
    }
}

#[derive(diesel::QueryableByName)]
struct PgSnapshot {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    seq: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    transactions: String,
}

impl Tx<'_> {
    /// What a first page sees: on PostgreSQL, with the snapshot of the
    /// same statement.
    fn history_snapshot(&mut self) -> Result<HistorySnapshot> {
        if self.dialect() == crate::db::Dialect::Postgres {
            let row: PgSnapshot = crate::statement::Sql::new(
                "SELECT (SELECT max(seq) FROM resource_versions) AS seq, \
                 CAST(pg_current_snapshot() AS text) AS transactions",
            )
            .get_result(self.conn)?;
            return Ok(HistorySnapshot {
                seq: row.seq.unwrap_or(0),
                transactions: Some(row.transactions),
            });
        }
        let seq = v::table
            .select(max(v::seq))
            .first::<Option<i64>>(self.conn)?
            .unwrap_or(0);
        Ok(HistorySnapshot {
            seq,
            transactions: None,
        })
    }

    pub fn history(&mut self, query: &HistoryQuery) -> Result<HistoryPage> {
        let snapshot = match &query.snapshot {
            // A PostgreSQL snapshot means nothing to SQLite.
            Some(s)
                if s.transactions.is_some() && self.dialect() != crate::db::Dialect::Postgres =>
            {
                return Err(crate::StoreError::InvalidResource(format!(
                    "'{s}' is not a history snapshot of this server"
                )))
            }
            Some(s) => s.clone(),
            None => self.history_snapshot()?,
        };
        let (resource_type, permission) = match &query.scope {
            HistoryScope::System => (None, Permission::Search),
            HistoryScope::Type(t) => (Some(t), Permission::Search),
            HistoryScope::Instance(t, _) => (Some(t), Permission::Read),
        };
        match resource_type {
            Some(t) => self.access.require(t, permission)?,
            None if self
                .access
                .grant()
                .types_with(Permission::Search)
                .is_some_and(|t| t.is_empty()) =>
            {
                return Err(crate::StoreError::Forbidden(
                    "the access token grants no search of any resource type".into(),
                ))
            }
            None => {}
        }
        let mut count = Sql::on(self.dialect());
        count.push("SELECT COUNT(*) AS n FROM resource_versions v");
        self.history_filter(query, &snapshot, &mut count);
        let total = count.get_result::<crate::search::Count>(self.conn)?.n;
        let mut page = Sql::on(self.dialect());
        page.push(
            "SELECT v.resource_type, v.id, v.version_id, v.last_updated, v.method, v.body \
             FROM resource_versions v",
        );
        self.history_filter(query, &snapshot, &mut page);
        page.push(" ORDER BY v.seq DESC LIMIT ")
            .int(query.count)
            .push(" OFFSET ")
            .int(query.offset);
        let rows: Vec<crate::versions::VersionRow> = page.load(self.conn)?;
        Ok(HistoryPage {
            entries: rows
                .into_iter()
                .map(crate::versions::VersionRow::version)
                .collect::<Result<_>>()?,
            total,
            snapshot,
        })
    }
}
