//! Running a search: the ordered keys of every match, a page of them with
//! their current versions, and the resources `_include` / `_revinclude` add.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};

use super::keyset::{Cursor, KeysetPage};
use super::sql::{self, Sql};
use super::{Include, SearchQuery};
use crate::db::Dialect;
use crate::statement::Bind;
use crate::versions::{StoredVersion, Tx};
use crate::Result;

/// How long a paging snapshot is kept.
const SNAPSHOT_TTL_MS: i64 = 60 * 60 * 1000;
/// How many rounds `:iterate` follows.
const MAX_ITERATIONS: usize = 4;

/// Which page of a search to return.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// The snapshot of an earlier page; `None` runs the search afresh.
    pub snapshot: Option<String>,
    pub offset: i64,
    /// Where a page read through its sort index starts (see `keyset`).
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchResults {
    pub total: i64,
    pub matches: Vec<StoredVersion>,
    pub included: Vec<StoredVersion>,
    /// Set when `_include`/`_revinclude` found more than the query's
    /// limit and `included` holds only that many.
    pub includes_cut: bool,
    /// Set when the results span more than one page.
    pub snapshot: Option<String>,
    pub offset: i64,
    /// Set for a page read through its sort index instead of a snapshot.
    pub keyset: Option<KeysetPage>,
}

#[derive(QueryableByName)]
pub(super) struct Key {
    #[diesel(sql_type = BigInt)]
    pub res_key: i64,
}

#[derive(QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

#[derive(QueryableByName)]
struct Snapshot {
    #[diesel(sql_type = Binary)]
    res_keys: Vec<u8>,
    #[diesel(sql_type = Nullable<Text>)]
    grant_key: Option<String>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    res_key: i64,
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = BigInt)]
    last_updated: i64,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Nullable<Binary>)]
    body: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct SqlitePlan {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PostgresPlan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}

fn encode(keys: &[i64]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

impl Tx<'_> {
    /// How many resources match (`_summary=count`).
    pub(crate) fn count(&mut self, query: &SearchQuery) -> Result<SearchResults> {
        let query = &*self.access.clone().held(query, &self.custom)?;
        if query.uses_full_text() {
            self.apply_pending_text()?;
        }
        let count: Count = self.count_sql(query)?.get_result(self.conn)?;
        Ok(SearchResults {
            total: count.n,
            ..SearchResults::default()
        })
    }

    /// A search inside this transaction (a read of a transaction Bundle):
    /// it sees the transaction's own writes, and a result larger than a
    /// page is kept as a snapshot for its paging links.
    pub fn search(&mut self, query: &SearchQuery, page: &SearchPage) -> Result<SearchResults> {
        let query = &*self.access.clone().held(query, &self.custom)?;
        if query.count_only {
            return self.count(query);
        }
        let (keys, stored) = self.result_keys(page, |tx| tx.matching_keys(query))?;
        let snapshot = match stored {
            Some(id) => Some(id),
            None if keys.len() as i64 > query.count => Some(self.save_snapshot(&keys)?),
            None => None,
        };
        self.page(query, &keys, snapshot, page.offset)
    }

    /// The ordered keys of a result: from the page's snapshot when it
    /// still exists (returned with it), or from `keys`.
    pub(crate) fn result_keys(
        &mut self,
        page: &SearchPage,
        keys: impl FnOnce(&mut Self) -> Result<Vec<i64>>,
    ) -> Result<(Vec<i64>, Option<String>)> {
        if let Some(id) = &page.snapshot {
            if let Some(keys) = self.load_snapshot(id)? {
                return Ok((keys, Some(id.clone())));
            }
        }
        Ok((keys(self)?, None))
    }

    /// One page of `keys`, with its includes.
    pub(crate) fn page(
        &mut self,
        query: &SearchQuery,
        keys: &[i64],
        snapshot: Option<String>,
        offset: i64,
    ) -> Result<SearchResults> {
        let offset = if snapshot.is_some() { offset.max(0) } else { 0 };
        let start = (offset as usize).min(keys.len());
        let end = (start + query.count.max(0) as usize).min(keys.len());
        let page_keys = &keys[start..end];
        let matches = self.current_versions(page_keys)?;
        let (included, includes_cut) = self.included(query, page_keys)?;
        Ok(SearchResults {
            total: keys.len() as i64,
            matches: matches.into_iter().map(|(_, v)| v).collect(),
            included,
            includes_cut,
            snapshot,
            offset,
            keyset: None,
        })
    }

    /// The current versions of at most `limit` matches, for conditional
    /// interactions (which only need to tell none, one and several apart).
    /// The current versions of the first `limit` matches, for a
    /// conditional write: until the transaction ends, other conditional
    /// writes on the same types wait, so two of them racing on one
    /// condition cannot both find nothing and both create.
    pub fn matching(&mut self, query: &SearchQuery, limit: i64) -> Result<Vec<StoredVersion>> {
        let mut types = query.types.clone();
        types.sort();
        for resource_type in &types {
            self.lock(&format!("conditional {resource_type}"))?;
        }
        self.find(query, limit)
    }

    /// The current versions of the first `limit` matches, without the
    /// lock of [`Tx::matching`]: for lookups that write nothing on what
    /// they find (resolving a conditional reference).
    pub fn find(&mut self, query: &SearchQuery, limit: i64) -> Result<Vec<StoredVersion>> {
        let query = &*self.access.clone().held(query, &self.custom)?;
        let keys = self.keys(query, Some(limit))?;
        Ok(self
            .current_versions(&keys)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    pub(crate) fn matching_keys(&mut self, query: &SearchQuery) -> Result<Vec<i64>> {
        self.keys(query, None)
    }

    fn keys(&mut self, query: &SearchQuery, limit: Option<i64>) -> Result<Vec<i64>> {
        if query.uses_full_text() {
            self.apply_pending_text()?;
        }
        let keys: Vec<Key> = self.keys_sql(query, limit)?.load(self.conn)?;
        Ok(keys.into_iter().map(|k| k.res_key).collect())
    }

    fn keys_sql(&mut self, query: &SearchQuery, limit: Option<i64>) -> Result<Sql> {
        let plan = self.plan(query)?;
        let mut s = Sql::on(self.dialect());
        s.push("SELECT r.res_key AS res_key FROM resources r WHERE ");
        sql::filter_listed(&plan.query, plan.listed, &mut s);
        sql::order(&query.sort, &mut s);
        if let Some(limit) = limit {
            s.push(" LIMIT ").int(limit);
        }
        Ok(s)
    }

    /// The statement that counts a search's matches: straight from the
    /// index for one plain condition.
    fn count_sql(&mut self, query: &SearchQuery) -> Result<Sql> {
        let dialect = self.dialect();
        if let Some(direct) = sql::direct_count(query, dialect) {
            return Ok(direct);
        }
        let plan = self.plan(query)?;
        let mut s = Sql::on(dialect);
        s.push("SELECT COUNT(*) AS n FROM resources r WHERE ");
        sql::filter_listed(&plan.query, plan.listed, &mut s);
        Ok(s)
    }

    /// The database's plan for the statement that finds a search's matches
    /// (or counts them), a line per step.
    pub(crate) fn explain(&mut self, query: &SearchQuery) -> Result<Vec<String>> {
        let dialect = self.dialect();
        let statement = if query.count_only {
            self.count_sql(query)?
        } else {
            self.keys_sql(query, None)?
        };
        let mut explain = Sql::on(dialect);
        explain.push(match dialect {
            Dialect::Sqlite => "EXPLAIN QUERY PLAN ",
            Dialect::Postgres => "EXPLAIN ",
        });
        explain.append(statement);
        Ok(match dialect {
            Dialect::Sqlite => explain
                .load::<SqlitePlan>(self.conn)?
                .into_iter()
                .map(|row| row.detail)
                .collect(),
            Dialect::Postgres => explain
                .load::<PostgresPlan>(self.conn)?
                .into_iter()
                .map(|row| row.plan)
                .collect(),
        })
    }

    /// Stores the keys of a search larger than a page, for its paging links.
    pub(crate) fn save_snapshot(&mut self, keys: &[i64]) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = hearth_model::datetime::now_ms();
        Sql::with_binds(
            "DELETE FROM search_snapshots WHERE created < ?",
            vec![Bind::Int(now - SNAPSHOT_TTL_MS)],
        )
        .execute(self.conn)?;
        Sql::with_binds(
            "INSERT INTO search_snapshots (id, created, total, res_keys, grant_key) VALUES (?, ?, ?, ?, ?)",
            vec![
                Bind::Text(id.clone()),
                Bind::Int(now),
                Bind::Int(keys.len() as i64),
                Bind::Bytes(encode(keys)),
                Bind::OptText(self.access.key().map(str::to_owned)),
            ],
        )
        .execute(self.conn)?;
        Ok(id)
    }

    /// A snapshot's keys, if it was made under this transaction's grant:
    /// a paging link followed under another grant runs the search afresh.
    fn load_snapshot(&mut self, id: &str) -> Result<Option<Vec<i64>>> {
        let found: Option<Snapshot> = Sql::with_binds(
            "SELECT res_keys, grant_key FROM search_snapshots WHERE id = ?",
            vec![Bind::Text(id.to_owned())],
        )
        .get_result(self.conn)
        .optional()?;
        Ok(found
            .filter(|s| s.grant_key.as_deref() == self.access.key())
            .map(|s| decode(&s.res_keys)))
    }

    /// The current versions of `keys`, in that order, skipping resources
    /// deleted since the keys were taken.
    pub(super) fn current_versions(&mut self, keys: &[i64]) -> Result<Vec<(i64, StoredVersion)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_key: HashMap<i64, StoredVersion> = HashMap::new();
        // SQLite allows 32,766 binds; stay well below.
        for chunk in keys.chunks(5000) {
            let mut s = Sql::on(self.dialect());
            s.push(
                "SELECT r.res_key, v.resource_type, v.id, v.version_id, v.last_updated, v.method, v.body \
                 FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
                 WHERE NOT r.deleted AND r.res_key IN ",
            )
            .ints(chunk);
            let rows: Vec<Row> = s.load(self.conn)?;
            for row in rows {
                by_key.insert(
                    row.res_key,
                    StoredVersion {
                        resource_type: row.resource_type,
                        id: row.id,
                        version_id: row.version_id,
                        last_updated: row.last_updated,
                        method: crate::versions::Method::parse(&row.method),
                        body: crate::body::decode_opt(row.body)?,
                    },
                );
            }
        }
        Ok(keys
            .iter()
            .filter_map(|k| by_key.remove(k).map(|v| (*k, v)))
            .collect())
    }

    /// `_include` and `_revinclude` for a page, following `:iterate`: at
    /// most the query's limit of them, and whether more were left out.
    /// Each statement reads at most that many rows more than the keys
    /// already seen, so the work is bounded by the limit, not by how many
    /// resources the page's references reach.
    pub(super) fn included(
        &mut self,
        query: &SearchQuery,
        page: &[i64],
    ) -> Result<(Vec<StoredVersion>, bool)> {
        if page.is_empty() || (query.includes.is_empty() && query.revincludes.is_empty()) {
            return Ok((Vec::new(), false));
        }
        let max = query.max_includes.unwrap_or(super::DEFAULT_MAX_INCLUDES);
        let mut seen: HashSet<i64> = page.iter().copied().collect();
        let mut order: Vec<i64> = Vec::new();
        let mut frontier: Vec<i64> = page.to_vec();
        let mut cut = false;
        'rounds: for round in 0..=MAX_ITERATIONS {
            let mut found = Vec::new();
            let forward = query.includes.iter().filter(|i| round == 0 || i.iterate);
            let reverse = query.revincludes.iter().filter(|i| round == 0 || i.iterate);
            let steps = forward
                .map(|i| (i, false))
                .chain(reverse.map(|i| (i, true)));
            for (include, reverse) in steps {
                // Rows beyond this many can only be keys already seen or
                // resources past the limit.
                let limit = (max - order.len() + seen.len() + 1) as i64;
                let keys = self.linked(include, &frontier, query, limit, reverse)?;
                let complete = (keys.len() as i64) < limit;
                for key in keys {
                    if seen.insert(key) {
                        found.push(key);
                        if order.len() + found.len() == max {
                            order.extend(&found);
                            cut = true;
                            break 'rounds;
                        }
                    }
                }
                // Some rows were not read: there may be more to include.
                cut |= !complete;
            }
            if found.is_empty() {
                break;
            }
            order.extend(&found);
            frontier = found;
        }
        let versions = self
            .current_versions(&order)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        Ok((versions, cut))
    }

    /// Resources that `keys` refer to through the include's parameters,
    /// or with `reverse` the resources that refer to `keys`: at most
    /// `limit` rows.
    fn linked(
        &mut self,
        include: &Include,
        keys: &[i64],
        query: &SearchQuery,
        limit: i64,
        reverse: bool,
    ) -> Result<Vec<i64>> {
        let base = query.base.as_deref();
        let mut s = Sql::on(self.dialect());
        if reverse {
            // The page's keys drive, each target's references found through
            // (param, target_id, target_type): SQLite keeps a CROSS JOIN's
            // order. Left to choose, it scanned every reference of the
            // parameter and looked each up in the key list, which for 4,800
            // Encounters and Observation:encounter took 46 s.
            s.push(
                "SELECT DISTINCT ref.res_key AS res_key FROM resources t CROSS JOIN idx_reference ref \
                 WHERE ref.target_type = t.resource_type AND ref.target_id = t.id \
                 AND ref.param IN ",
            );
        } else {
            // The page's rows are found by their key, not by the parameter.
            s.push(
                "SELECT DISTINCT t.res_key AS res_key FROM idx_reference ref JOIN resources t \
                 ON t.resource_type = ref.target_type AND t.id = ref.target_id AND NOT t.deleted \
                 WHERE ",
            )
            .unindexed("ref.param")
            .push(" IN ");
        }
        s.list(&include.params).push(" AND ");
        sql::local_reference(&mut s, "ref.url", base);
        if let Some(target) = &include.target_type {
            s.push(if reverse {
                " AND t.resource_type = "
            } else {
                " AND ref.target_type = "
            })
            .text(target.as_str());
        }
        s.push(if reverse {
            " AND t.res_key IN "
        } else {
            " AND ref.res_key IN "
        })
        .ints(keys);
        // Only what the request may read is added.
        if let Some(groups) = &query.included_grant {
            s.push(" AND ");
            let column = if reverse { "ref.res_key" } else { "t.res_key" };
            sql::granted(groups, column, base, false, &mut s);
        }
        s.push(" LIMIT ").int(limit);
        let rows: Vec<Key> = s.load(self.conn)?;
        Ok(rows.into_iter().map(|k| k.res_key).collect())
    }
}
