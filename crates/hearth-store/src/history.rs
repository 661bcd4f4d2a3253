//! History of an instance, a type or the whole system, newest first.
//!
//! Paging is stable while other clients write: the first page fixes a
//! snapshot (the highest `seq` then written) and later pages read only
//! versions up to it. Versions are never changed once written, so an offset
//! within a snapshot always means the same entry.

use diesel::dsl::{exists, max, not};
use diesel::prelude::*;

use hearth_model::datetime::Range;

use crate::schema::resource_versions as v;
use crate::versions::{StoredVersion, Tx, VERSION_COLUMNS};
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

type Boxed<'a> = v::BoxedQuery<'a, crate::db::MultiBackend>;

fn filtered<'a>(query: &'a HistoryQuery, snapshot: &'a HistorySnapshot) -> Boxed<'a> {
    let mut q = v::table.into_boxed().filter(v::seq.le(snapshot.seq));
    if let Some(transactions) = &snapshot.transactions {
        q = q.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("pg_visible_in_snapshot(xid, CAST(")
                .bind::<diesel::sql_types::Text, _>(transactions)
                .sql(" AS pg_snapshot))"),
        );
    }
    match &query.scope {
        HistoryScope::System => {}
        HistoryScope::Type(t) => q = q.filter(v::resource_type.eq(t)),
        HistoryScope::Instance(t, id) => q = q.filter(v::resource_type.eq(t)).filter(v::id.eq(id)),
    }
    if let Some(since) = query.since {
        q = q.filter(v::last_updated.ge(since));
    }
    if let Some(at) = query.at {
        // Current during [start, end): written before the end, and not
        // replaced by a newer version before the start.
        let newer = diesel::alias!(v as newer);
        q = q.filter(v::last_updated.lt(at.end)).filter(not(exists(
            newer
                .filter(newer.field(v::resource_type).eq(v::resource_type))
                .filter(newer.field(v::id).eq(v::id))
                .filter(newer.field(v::version_id).gt(v::version_id))
                .filter(newer.field(v::last_updated).le(at.start)),
        )));
    }
    q
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
        let total: i64 = filtered(query, &snapshot).count().get_result(self.conn)?;
        let rows = filtered(query, &snapshot)
            .order(v::seq.desc())
            .limit(query.count)
            .offset(query.offset)
            .select(VERSION_COLUMNS)
            .load::<crate::versions::VersionRow>(self.conn)?;
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
