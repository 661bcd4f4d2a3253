//! An unsorted chain over few targets (`Observation?subject:Patient.family=X`),
//! read a page at a time by walking each target's referrers in key order.
//!
//! The chain's targets are found first (a handful of patients); each one's
//! references through the chained parameter are in `idx_reference_search`
//! by key, so the first page is the smallest keys of a few short index
//! walks, merged, instead of every match counted, sorted and kept. Index
//! rows exist only for current resources and their parameters are
//! qualified by type, so the rows alone are the matches. The pages come in
//! key order, as the counted search gives them.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::run::{Count, Key};
use super::sql::{self, Sql};
use super::{Condition, SearchQuery};
use crate::versions::Tx;
use crate::Result;

/// A chain whose condition selects more targets than this is paged by a
/// snapshot: the walks would be too many.
const MAX_TARGETS: i64 = 32;

/// A search's one condition, a chain: its reference parameters, and each
/// target type with the condition on it.
pub(super) struct Chain<'q> {
    params: &'q [String],
    targets: &'q [(String, Condition)],
}

/// The one chain a walk of referrers can page, if `query` is such a search
/// (the caller has checked it is unsorted, of one type and uncounted).
pub(super) fn chain(query: &SearchQuery) -> Option<Chain<'_>> {
    match query.conditions.as_slice() {
        [Condition::Chain { params, targets }] => Some(Chain { params, targets }),
        _ => None,
    }
}

#[derive(QueryableByName)]
struct Target {
    #[diesel(sql_type = Text)]
    id: String,
}

impl Tx<'_> {
    /// The chain's targets as (type, id), at most `limit` of them.
    pub(super) fn chain_targets(
        &mut self,
        query: &SearchQuery,
        limit: Option<i64>,
    ) -> Result<Vec<(String, String)>> {
        let Some(chain) = chain(query) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for (target_type, inner) in chain.targets {
            let mut s = Sql::on(self.dialect());
            s.push("SELECT c.id AS id FROM resources c WHERE c.resource_type = ")
                .text(target_type.as_str())
                .push(" AND NOT c.deleted AND ");
            sql::predicate(inner, "c.res_key", query.base.as_deref(), true, &mut s);
            if let Some(limit) = limit {
                s.push(" LIMIT ").int(limit - found.len() as i64 + 1);
            }
            let rows: Vec<Target> = s.load(self.conn)?;
            found.extend(rows.into_iter().map(|t| (target_type.clone(), t.id)));
            if limit.is_some_and(|l| found.len() as i64 > l) {
                break;
            }
        }
        Ok(found)
    }

    /// The targets of a chain a first page can walk the referrers of: few,
    /// and referred to by at least `broad` rows (a smaller result is cheap
    /// to count, and then gets its exact `total`).
    pub(super) fn walkable_targets(
        &mut self,
        query: &SearchQuery,
        broad: i64,
    ) -> Result<Option<Vec<(String, String)>>> {
        let targets = self.chain_targets(query, Some(MAX_TARGETS))?;
        if targets.is_empty() || targets.len() as i64 > MAX_TARGETS {
            return Ok(None);
        }
        let mut s = Sql::on(self.dialect());
        s.push("SELECT COUNT(*) AS n FROM (SELECT 1");
        self.references(query, &targets, &mut s);
        s.push(" LIMIT ").int(broad).push(") p");
        let count: Count = s.get_result(self.conn)?;
        Ok((count.n >= broad).then_some(targets))
    }

    /// Up to `limit` keys of the resources referring to `targets` through
    /// the chained parameter, in key order, after `after`: the smallest
    /// `limit` of each target's own walk, merged without repeats.
    pub(super) fn referrers(
        &mut self,
        query: &SearchQuery,
        targets: &[(String, String)],
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<i64>> {
        let Some(chain) = chain(query) else {
            return Ok(Vec::new());
        };
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut s = Sql::on(self.dialect());
        let mut branch = 0;
        for param in chain.params {
            for (target_type, id) in targets {
                if branch > 0 {
                    s.push(" UNION ");
                }
                s.push("SELECT res_key FROM (SELECT res_key FROM idx_reference WHERE param = ")
                    .text(param.as_str())
                    .push(" AND ");
                target(&mut s, target_type, id);
                s.push(" AND ");
                let url = format!("{}url", s.dialect.no_index());
                sql::local_reference(&mut s, &url, query.base.as_deref());
                if let Some(key) = after {
                    s.push(" AND res_key > ").int(key);
                }
                s.push(" ORDER BY res_key LIMIT ")
                    .int(limit)
                    .push(&format!(") b{branch}"));
                branch += 1;
            }
        }
        s.push(" ORDER BY res_key LIMIT ").int(limit);
        let keys: Vec<Key> = s.load(self.conn)?;
        Ok(keys.into_iter().map(|k| k.res_key).collect())
    }

    /// ` FROM idx_reference WHERE …`: the chained parameter's rows that
    /// point at `targets`.
    fn references(&self, query: &SearchQuery, targets: &[(String, String)], s: &mut Sql) {
        let Some(chain) = chain(query) else {
            return;
        };
        s.push(" FROM idx_reference WHERE param IN ")
            .list(chain.params)
            .push(" AND (");
        for (i, (target_type, id)) in targets.iter().enumerate() {
            if i > 0 {
                s.push(" OR ");
            }
            s.push("(");
            target(s, target_type, id);
            s.push(")");
        }
        s.push(") AND ");
        let url = format!("{}url", s.dialect.no_index());
        sql::local_reference(s, &url, query.base.as_deref());
    }
}

/// `target_id = … AND target_type = …`: an index row's reference to one
/// resource (the id first: it is the selective one).
fn target(s: &mut Sql, target_type: &str, id: &str) {
    s.push("target_id = ")
        .text(id)
        .push(" AND target_type = ")
        .text(target_type);
}
