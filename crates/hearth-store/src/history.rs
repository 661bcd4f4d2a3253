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
    pub snapshot: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub entries: Vec<StoredVersion>,
    /// How many versions match in the whole snapshot.
    pub total: i64,
    pub snapshot: i64,
}

type Boxed<'a> = v::BoxedQuery<'a, crate::db::MultiBackend>;

fn filtered<'a>(query: &'a HistoryQuery, snapshot: i64) -> Boxed<'a> {
    let mut q = v::table.into_boxed().filter(v::seq.le(snapshot));
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

impl Tx<'_> {
    pub fn history(&mut self, query: &HistoryQuery) -> Result<HistoryPage> {
        let snapshot = match query.snapshot {
            Some(s) => s,
            None => v::table
                .select(max(v::seq))
                .first::<Option<i64>>(self.conn)?
                .unwrap_or(0),
        };
        let total: i64 = filtered(query, snapshot).count().get_result(self.conn)?;
        let rows = filtered(query, snapshot)
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
