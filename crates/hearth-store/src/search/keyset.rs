//! Broad searches read a page at a time by walking an index in the
//! search's order (keyset paging): the index of the one date parameter
//! they are sorted by, or, unsorted or sorted by `_lastUpdated`, the
//! type's resources by when they were last updated; an unsorted chain over
//! few targets walks their referrers ([`super::referrers`]).
//!
//! Other searches compute every matching key, sorted, and keep them as the
//! paging snapshot: exact `total`, stable pages, but a cost that grows with
//! the matches. For a search whose one condition matches many resources
//! (`Observation?category=laboratory&_sort=-date`,
//! `Patient?_has:Observation:patient:code=8867-4`), the first page is found
//! after a few dozen candidates instead: the walk checks each one's
//! conditions through the primary keys and stops after a page. Later pages
//! start after the last resource given ([`Cursor`]), so they stay cheap and
//! never repeat or skip a resource that did not change. `total` is then
//! given only when it is known without counting (the results fit in one
//! page), as search.html allows (`Bundle.total` is optional, and
//! `_total=none|estimate` say a client may do without); `_total=accurate`
//! asks for the counted, snapshot paging instead.

use std::fmt;
use std::str::FromStr;

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::run::{Count, Key, SearchPage, SearchResults};
use super::sql::{self, Sql};
use super::{referrers, Condition, SearchQuery, SortKey, Total};
use crate::versions::Tx;
use crate::Result;

/// A condition matching fewer index rows than this is selective enough to
/// drive the search itself.
const BROAD: i64 = 1000;

/// Where a keyset page starts: after the resource `key` whose sort value
/// is `value`, or, once every match with a value has been given, after the
/// resource `key` among those without one (which sort last); or, in a walk
/// by update, after the resource `key` last updated at `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Dated {
        value: i64,
        key: i64,
    },
    Undated {
        key: i64,
    },
    Updated {
        value: i64,
        key: i64,
    },
    /// In a walk of referrers, after the resource `key`.
    Key {
        key: i64,
    },
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::Dated { value, key } => write!(f, "d.{value}.{key}"),
            Cursor::Undated { key } => write!(f, "u.{key}"),
            Cursor::Updated { value, key } => write!(f, "t.{value}.{key}"),
            Cursor::Key { key } => write!(f, "k.{key}"),
        }
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Cursor, String> {
        let bad = || format!("'{s}' is not a search cursor");
        let parts: Vec<&str> = s.split('.').collect();
        let int = |p: &str| p.parse::<i64>().map_err(|_| bad());
        match parts.as_slice() {
            ["d", value, key] => Ok(Cursor::Dated {
                value: int(value)?,
                key: int(key)?,
            }),
            ["u", key] => Ok(Cursor::Undated { key: int(key)? }),
            ["t", value, key] => Ok(Cursor::Updated {
                value: int(value)?,
                key: int(key)?,
            }),
            ["k", key] => Ok(Cursor::Key { key: int(key)? }),
            _ => Err(bad()),
        }
    }
}

/// How a keyset page pages on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysetPage {
    /// The cursor this page started at (`None` for the first page).
    pub current: Option<Cursor>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
    /// Whether `total` holds the number of matches.
    pub total_known: bool,
}

#[derive(QueryableByName)]
struct Dated {
    #[diesel(sql_type = BigInt)]
    res_key: i64,
    #[diesel(sql_type = BigInt)]
    v: i64,
}

/// Which index a keyset page walks.
#[derive(Debug, Clone, Copy)]
enum Walk<'q> {
    /// The index of the one date parameter the search is sorted by.
    Date(&'q SortKey),
    /// The one type's resources by `last_updated`, then key (unsorted, or
    /// sorted by `_lastUpdated`).
    Updated { descending: bool },
    /// The referrers of an unsorted chain's targets, by key.
    Referrers,
}

impl Walk<'_> {
    fn starts_at(self, cursor: Cursor) -> bool {
        matches!(
            (self, cursor),
            (Walk::Date(_), Cursor::Dated { .. } | Cursor::Undated { .. })
                | (Walk::Updated { .. }, Cursor::Updated { .. })
                | (Walk::Referrers, Cursor::Key { .. })
        )
    }
}

/// Whether a page of `query` can start at `cursor`: the server gives
/// cursors only for the searches a keyset page can walk, uncounted, each
/// kind for its walk. A cursor on any other search (a link edited by hand,
/// or with its sort or `_total` changed) would otherwise be ignored and
/// page 1 given again.
pub fn pages_by_cursor(query: &SearchQuery, cursor: Cursor) -> bool {
    walk(query).is_some_and(|w| w.starts_at(cursor))
}

/// The walk a keyset page of `query` can take, if any.
fn walk(query: &SearchQuery) -> Option<Walk<'_>> {
    if query.total == Total::Accurate || query.count_only || query.count <= 0 {
        return None;
    }
    let by_update = |descending| (query.types.len() == 1).then_some(Walk::Updated { descending });
    match query.sort.as_slice() {
        [] if query.types.len() == 1 && referrers::chain(query).is_some() => Some(Walk::Referrers),
        [] => by_update(false),
        [key] => match sql::resource_column(&key.params) {
            Some((sql::ResourceColumn::LastUpdated, _)) => by_update(key.descending),
            Some(_) => None,
            None => (key.kind == hearth_model::search_params::ParamType::Date)
                .then_some(Walk::Date(key)),
        },
        _ => None,
    }
}

impl Tx<'_> {
    /// A page of `query` read through an index in its order, or `None`
    /// when the query is not a broad one a keyset page can walk (the
    /// caller then computes all its keys).
    pub(crate) fn keyset_page(
        &mut self,
        query: &SearchQuery,
        page: &SearchPage,
    ) -> Result<Option<SearchResults>> {
        let Some(walk) = walk(query) else {
            return Ok(None);
        };
        match page.cursor {
            Some(cursor) if !walk.starts_at(cursor) => return Ok(None),
            None if !matches!(walk, Walk::Referrers) && !self.is_broad(query)? => return Ok(None),
            _ => {}
        }
        // One more than a page tells whether there is a next page.
        let limit = query.count + 1;
        let mut keys = match walk {
            Walk::Date(sort) => self.by_date(query, sort, page.cursor, limit)?,
            Walk::Referrers => {
                // A later page walks whatever the targets are now.
                let (targets, after) = match page.cursor {
                    Some(Cursor::Key { key }) => (self.chain_targets(query, None)?, Some(key)),
                    _ => match self.walkable_targets(query, BROAD)? {
                        Some(targets) => (targets, None),
                        None => return Ok(None),
                    },
                };
                self.referrers(query, &targets, after, limit)?
                    .into_iter()
                    .map(|key| Cursor::Key { key })
                    .collect()
            }
            Walk::Updated { descending } => {
                let after = match page.cursor {
                    Some(Cursor::Updated { value, key }) => Some((value, key)),
                    _ => None,
                };
                let rows: Vec<Dated> = self
                    .by_update(query, descending, after, limit)
                    .load(self.conn)?;
                rows.into_iter()
                    .map(|r| Cursor::Updated {
                        value: r.v,
                        key: r.res_key,
                    })
                    .collect()
            }
        };
        let more = keys.len() as i64 > query.count;
        keys.truncate(query.count as usize);
        let page_keys: Vec<i64> = keys
            .iter()
            .map(|c| match c {
                Cursor::Dated { key, .. }
                | Cursor::Undated { key }
                | Cursor::Updated { key, .. }
                | Cursor::Key { key } => *key,
            })
            .collect();
        let total_known = page.cursor.is_none() && !more;
        let matches = self.current_versions(&page_keys)?;
        let (included, includes_cut) = self.included(query, &page_keys)?;
        Ok(Some(SearchResults {
            includes_cut,
            total: if total_known { matches.len() as i64 } else { 0 },
            matches: matches.into_iter().map(|(_, v)| v).collect(),
            included,
            snapshot: None,
            offset: 0,
            keyset: Some(KeysetPage {
                current: page.cursor,
                next: if more { keys.last().copied() } else { None },
                total_known,
            }),
        }))
    }

    /// Up to `limit` matches in the order of the date `sort`, from
    /// `cursor`: those with a value, then those without.
    fn by_date(
        &mut self,
        query: &SearchQuery,
        sort: &SortKey,
        cursor: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<Cursor>> {
        let mut keys: Vec<Cursor> = Vec::new();
        if !matches!(cursor, Some(Cursor::Undated { .. })) {
            let after = match cursor {
                Some(Cursor::Dated { value, key }) => Some((value, key)),
                _ => None,
            };
            let rows: Vec<Dated> = self.dated(query, sort, after, limit).load(self.conn)?;
            keys.extend(rows.into_iter().map(|r| Cursor::Dated {
                value: r.v,
                key: r.res_key,
            }));
        }
        if (keys.len() as i64) < limit {
            let after = match cursor {
                Some(Cursor::Undated { key }) => Some(key),
                _ => None,
            };
            let rest = limit - keys.len() as i64;
            let rows: Vec<Key> = self.undated(query, sort, after, rest).load(self.conn)?;
            keys.extend(rows.into_iter().map(|r| Cursor::Undated { key: r.res_key }));
        }
        Ok(keys)
    }

    /// Whether the search has one condition and it matches at least
    /// [`BROAD`] index rows (or, without conditions, the types hold that
    /// many resources); a `_has`, when its inner condition does: that many
    /// referrers mostly point at many targets. Two broad conditions may
    /// meet in a few resources (`Observation?patient=X&code=Y&date=ge2015`
    /// on the 10× Synthea data: 1,277, 16,310 and 300,000 index rows, 41
    /// matches), and a walk would then check every candidate to find them
    /// (319 ms against 7 ms counted). Conditions of other kinds (chains,
    /// `:missing`, `:not`, full text) may be selective in ways a probe
    /// cannot tell: their searches are not broad.
    fn is_broad(&mut self, query: &SearchQuery) -> Result<bool> {
        let dialect = self.dialect();
        let mut condition = match query.conditions.as_slice() {
            [] => {
                let mut s = Sql::on(dialect);
                s.push("SELECT COUNT(*) AS n FROM (SELECT 1 FROM resources r WHERE ");
                sql::filter(query, &mut s);
                s.push(" LIMIT ").int(BROAD).push(") p");
                let count: Count = s.get_result(self.conn)?;
                return Ok(count.n >= BROAD);
            }
            [one] => one,
            _ => return Ok(false),
        };
        while let Condition::Has { inner, .. } = condition {
            condition = inner;
        }
        let Some(s) = sql::probe(condition, query.base.as_deref(), BROAD, dialect) else {
            return Ok(false);
        };
        let count: Count = s.get_result(self.conn)?;
        Ok(count.n >= BROAD)
    }

    /// The matches with a value for the sort, in order, after `after`:
    /// each resource once, at its greatest value when descending (its
    /// smallest when ascending), ties by key, as [`sql::order`] sorts.
    fn dated(
        &self,
        query: &SearchQuery,
        sort: &SortKey,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Sql {
        let (column, beyond, direction) = if sort.descending {
            ("hi", ">", "DESC")
        } else {
            ("lo", "<", "ASC")
        };
        let mut s = Sql::on(self.dialect());
        s.push("SELECT d.res_key AS res_key, d.")
            .push(column)
            .push(" AS v FROM idx_date d CROSS JOIN resources r WHERE d.param IN ")
            .list(&sort.params)
            .push(" AND r.res_key = d.res_key AND ");
        sql::filter_listed(query, 0, &mut s);
        // The resource's other rows for the sort sort after this one.
        s.push(" AND NOT EXISTS (SELECT 1 FROM idx_date e WHERE e.res_key = d.res_key AND ")
            .unindexed("e.param")
            .push(" IN ")
            .list(&sort.params)
            .push(" AND (e.")
            .push(column)
            .push(" ")
            .push(beyond)
            .push(" d.")
            .push(column)
            .push(" OR (e.")
            .push(column)
            .push(" = d.")
            .push(column)
            .push(" AND e.n < d.n)))");
        if let Some((value, key)) = after {
            let before = if sort.descending { "<" } else { ">" };
            s.push(" AND (d.")
                .push(column)
                .push(" ")
                .push(before)
                .push(" ")
                .int(value)
                .push(" OR (d.")
                .push(column)
                .push(" = ")
                .int(value)
                .push(" AND d.res_key > ")
                .int(key)
                .push("))");
        }
        s.push(" ORDER BY d.")
            .push(column)
            .push(" ")
            .push(direction)
            .push(", d.res_key LIMIT ")
            .int(limit);
        s
    }

    /// The matches of a one-type `query` by `last_updated`, then key, after
    /// `after`: the type's resources walked through `resources_type_updated`
    /// (whose entries end with the key, so no sort is needed), each checked
    /// against every condition.
    fn by_update(
        &self,
        query: &SearchQuery,
        descending: bool,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Sql {
        let (beyond, direction) = if descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut s = Sql::on(self.dialect());
        s.push("SELECT r.res_key AS res_key, r.last_updated AS v FROM resources r WHERE r.resource_type = ")
            .text(query.types.first().map_or("", String::as_str))
            .push(" AND NOT r.deleted");
        sql::checks(query, &mut s);
        if let Some((value, key)) = after {
            s.push(" AND (r.last_updated ")
                .push(beyond)
                .push(" ")
                .int(value)
                .push(" OR (r.last_updated = ")
                .int(value)
                .push(" AND r.res_key ")
                .push(beyond)
                .push(" ")
                .int(key)
                .push("))");
        }
        s.push(" ORDER BY r.last_updated ")
            .push(direction)
            .push(", r.res_key ")
            .push(direction)
            .push(" LIMIT ")
            .int(limit);
        s
    }

    /// The matches without a value for the sort, by key, after `after`.
    fn undated(&self, query: &SearchQuery, sort: &SortKey, after: Option<i64>, limit: i64) -> Sql {
        let mut s = Sql::on(self.dialect());
        s.push("SELECT r.res_key AS res_key FROM resources r WHERE ");
        sql::filter(query, &mut s);
        s.push(" AND NOT EXISTS (SELECT 1 FROM idx_date e WHERE e.res_key = r.res_key AND ")
            .unindexed("e.param")
            .push(" IN ")
            .list(&sort.params)
            .push(")");
        if let Some(key) = after {
            s.push(" AND r.res_key > ").int(key);
        }
        s.push(" ORDER BY r.res_key LIMIT ").int(limit);
        s
    }
}
