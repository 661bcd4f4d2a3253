//! `Patient/$everything` (patient-operation-everything): a patient, every
//! resource in their compartment, and the resources those refer to
//! (practitioners, organizations, locations, medications, …), in that
//! order, paged like a search.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::run::{SearchPage, SearchResults};
use super::sql::{self, Sql};
use super::SearchQuery;
use crate::versions::Tx;
use crate::{Result, Store};

/// What `$everything` is asked for.
#[derive(Debug, Clone, Default)]
pub struct Everything {
    /// The patients (`None`: every patient, the type-level operation).
    pub patients: Option<Vec<String>>,
    /// `_since`: only resources written at or after it (ms).
    pub since: Option<i64>,
    /// `_type`: only these types (empty: all).
    pub types: Vec<String>,
    /// `start` / `end`: compartment resources with a date outside the
    /// range are left out (ms; resources without a date stay).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Page size.
    pub count: i64,
    /// The server's base: absolute references under it are local.
    pub base: Option<String>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    res_key: i64,
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = BigInt)]
    last_updated: i64,
}

/// Binds per statement at most (SQLite allows 32,766).
const CHUNK: usize = 5000;

impl Store {
    /// One page of `$everything`; more than a page is kept as a snapshot
    /// for the paging links, as a search's is.
    pub fn everything(&self, query: &Everything, page: &SearchPage) -> Result<SearchResults> {
        let paged = SearchQuery {
            count: query.count,
            base: query.base.clone(),
            ..SearchQuery::default()
        };
        self.paged(&paged, page, |tx| tx.everything_keys(query))
    }
}

impl Tx<'_> {
    /// The keys of everything, in order: the patients, their compartments'
    /// resources, then what those refer to.
    fn everything_keys(&mut self, query: &Everything) -> Result<Vec<i64>> {
        self.access
            .require("Patient", hearth_auth::Permission::Read)?;
        let groups = self.access.groups(
            hearth_model::structure::resource_types(),
            hearth_auth::Permission::Read,
            &self.custom,
            query.base.as_deref(),
        );
        // A grant of every type, limited to the one patient asked for and
        // no more: the patient and their compartment are theirs by the
        // same rule (`patients_of`), so only what they refer to is checked.
        let own_record = groups.as_deref().is_some_and(|groups| {
            let every_type = groups.iter().map(|g| g.types.len()).sum::<usize>()
                == hearth_model::structure::resource_types().count();
            let patient_only = groups.iter().all(|g| match &g.limits {
                None => true,
                Some(limits) => matches!(
                    (limits.as_slice(), query.patients.as_deref()),
                    ([limit], Some([asked])) if limit.conditions.is_empty()
                        && limit.patient.as_deref() == Some(asked.as_str())
                ),
            });
            every_type && patient_only
        });
        let compartment_grant = if own_record { None } else { groups.as_deref() };
        let referred_grant = groups.as_deref();
        // What `_type` and `_since` leave in the answer; references are
        // followed from every resource in scope all the same.
        let shown = |(key, resource_type, updated): &(i64, String, i64)| -> Option<i64> {
            ((query.types.is_empty() || query.types.iter().any(|t| t == resource_type))
                && query.since.is_none_or(|since| *updated >= since))
            .then_some(*key)
        };
        let mut keys: Vec<i64> = Vec::new();
        let mut seen: HashSet<i64> = HashSet::new();

        // The patients.
        let mut s = self.live_resources(query, false, compartment_grant);
        s.push(" AND r.resource_type = 'Patient'");
        if let Some(ids) = &query.patients {
            s.push(" AND r.id IN ").list(ids);
        }
        s.push(" ORDER BY r.res_key");
        let patients = self.rows_of(s)?;
        keys.extend(
            patients
                .iter()
                .filter_map(&shown)
                .filter(|k| seen.insert(*k)),
        );

        // Their compartments: what refers to them through the
        // CompartmentDefinition's parameters (within start/end).
        let params: Vec<String> = hearth_model::compartments::members("Patient")
            .flat_map(|(t, codes)| codes.iter().map(move |c| format!("{t}.{c}")))
            .collect();
        let mut s = self.live_resources(query, true, compartment_grant);
        s.push(" AND r.res_key IN (SELECT ref.res_key FROM idx_reference ref WHERE ref.param IN ")
            .list(&params)
            .push(" AND ref.target_type = 'Patient'");
        if let Some(ids) = &query.patients {
            s.push(" AND ref.target_id IN ").list(ids);
        }
        s.push(" AND ");
        if own_record {
            // As `patients_of` counts them: relative references only.
            s.push("ref.url IS NULL");
        } else {
            sql::local_reference(&mut s, "ref.url", query.base.as_deref());
        }
        s.push(") ORDER BY r.res_key");
        let members = self.rows_of(s)?;
        keys.extend(
            members
                .iter()
                .filter_map(&shown)
                .filter(|k| seen.insert(*k)),
        );

        // What the patients and their resources refer to.
        let referring: Vec<i64> = patients.iter().chain(&members).map(|r| r.0).collect();
        let mut referred = Vec::new();
        for chunk in referring.chunks(CHUNK) {
            let mut s = self.live_resources(query, false, referred_grant);
            s.push(
                " AND r.res_key IN (SELECT t.res_key FROM idx_reference ref JOIN resources t \
                 ON t.resource_type = ref.target_type AND t.id = ref.target_id WHERE ref.res_key IN ",
            )
            .ints(chunk)
            .push(" AND ");
            sql::local_reference(&mut s, "ref.url", query.base.as_deref());
            s.push(")");
            referred.extend(self.rows_of(s)?);
        }
        referred.sort_unstable_by_key(|r| r.0);
        keys.extend(
            referred
                .iter()
                .filter_map(&shown)
                .filter(|k| seen.insert(*k)),
        );
        Ok(keys)
    }

    /// The live resources (key, type, lastUpdated), and with `dated` only
    /// those `start`/`end` leave in.
    /// The live resources (held to `grant`, when given) …
    fn live_resources(
        &self,
        query: &Everything,
        dated: bool,
        grant: Option<&[super::GrantGroup]>,
    ) -> Sql {
        let mut s = Sql::on(self.dialect());
        s.push(
            "SELECT r.res_key AS res_key, r.resource_type AS resource_type, \
             r.last_updated AS last_updated FROM resources r WHERE NOT r.deleted",
        );
        // Only what the request may read is in the answer, and only it
        // is followed: what a hidden resource refers to is not told.
        if let Some(groups) = grant {
            s.push(" AND ");
            sql::granted(groups, "r.res_key", query.base.as_deref(), false, &mut s);
        }
        if dated && (query.start.is_some() || query.end.is_some()) {
            // A resource with dates must have one in the range.
            let (start, end) = (
                query.start.unwrap_or(i64::MIN),
                query.end.unwrap_or(i64::MAX),
            );
            s.push(" AND (NOT EXISTS (SELECT 1 FROM idx_date d WHERE d.res_key = r.res_key)")
                .push(
                    " OR EXISTS (SELECT 1 FROM idx_date d WHERE d.res_key = r.res_key AND d.hi > ",
                )
                .int(start)
                .push(" AND d.lo < ")
                .int(end)
                .push("))");
        }
        s
    }

    fn rows_of(&mut self, s: Sql) -> Result<Vec<(i64, String, i64)>> {
        let rows: Vec<Row> = s.load(self.conn)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.res_key, r.resource_type, r.last_updated))
            .collect())
    }
}
