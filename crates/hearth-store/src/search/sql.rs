//! SQL for a [`SearchQuery`]: every condition becomes a predicate
//! `res_key [NOT] IN (SELECT res_key FROM idx_… WHERE …)` so the database
//! can drive the search from the most selective index.

use hearth_model::datetime::Range;
use hearth_model::search_params::ParamType;

use super::{Condition, GrantGroup, Modifier, Prefix, SearchQuery, SearchValue, SortKey};
use crate::db::Dialect;
pub(crate) use crate::statement::Sql;

/// `url IS NULL` (a relative reference) or `url` under this server's own
/// base, whose type and id the index also holds.
pub(crate) fn local_reference<'a>(
    sql: &'a mut Sql,
    column: &str,
    base: Option<&str>,
) -> &'a mut Sql {
    sql.push("(").push(column).push(" IS NULL");
    if let Some(base) = base {
        sql.push(" OR ");
        sql.prefix(column, &format!("{}/", base.trim_end_matches('/')));
    }
    sql.push(")")
}

/// Writes `items` joined by `op` (` OR `, ` AND `) as a tree a few levels
/// deep: SQLite parses `a OR b OR c …` as a tree as deep as the list is
/// long, and refuses one 1,000 deep, so a long list is written as groups
/// of groups, `((a OR b …) OR (…))`.
pub(crate) fn joined<T>(sql: &mut Sql, items: &[T], op: &str, each: &mut impl FnMut(&mut Sql, &T)) {
    const FAN: usize = 16;
    if items.len() <= FAN {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                sql.push(op);
            }
            each(sql, item);
        }
        return;
    }
    let group = items.len().div_ceil(FAN);
    for (i, part) in items.chunks(group).enumerate() {
        if i > 0 {
            sql.push(op);
        }
        sql.push("(");
        joined(sql, part, op, each);
        sql.push(")");
    }
}

/// The columns of `resources` that answer the parameters every resource
/// has, instead of index rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResourceColumn {
    Id,
    LastUpdated,
}

/// Whether `params` (type-qualified) are `_id` or `_lastUpdated`, with the
/// types they are qualified by.
pub(super) fn resource_column(params: &[String]) -> Option<(ResourceColumn, Vec<&str>)> {
    let mut column = None;
    let mut types = Vec::new();
    for param in params {
        let (t, code) = param.split_once('.')?;
        let c = match code {
            "_id" => ResourceColumn::Id,
            "_lastUpdated" => ResourceColumn::LastUpdated,
            _ => return None,
        };
        if column.is_some_and(|seen| seen != c) {
            return None;
        }
        column = Some(c);
        types.push(t);
    }
    column.map(|c| (c, types))
}

pub(super) fn table(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "idx_string",
        ParamType::Token => "idx_token",
        ParamType::Reference => "idx_reference",
        ParamType::Date => "idx_date",
        ParamType::Number => "idx_number",
        ParamType::Quantity => "idx_quantity",
        ParamType::Uri => "idx_uri",
        ParamType::Composite | ParamType::Special => "idx_token",
    }
}

/// `WHERE` for the resources of a query (alias `r`).
pub(crate) fn filter(query: &SearchQuery, sql: &mut Sql) {
    filter_listed(query, 1, sql);
}

/// [`filter`], where the first `listed` conditions (in the order of
/// [`selectivity_rank`], then as written) select the candidates and the
/// others check them (see [`super::plan`]): one is a key list, several the
/// intersection of theirs, so only resources that meet them all are read.
/// With none, every condition checks candidates something else selects (a
/// walk of a sort index).
pub(crate) fn filter_listed(query: &SearchQuery, listed: usize, sql: &mut Sql) {
    sql.push("NOT r.deleted");
    if query.types.len() < hearth_model::structure::resource_types().count() {
        // With conditions, the index subqueries (whose parameters are
        // qualified by type) should drive the search: the unary `+` keeps
        // SQLite from scanning every resource of the type instead.
        sql.push(" AND ");
        if query.conditions.is_empty() {
            sql.push("r.resource_type");
        } else {
            sql.unindexed("r.resource_type");
        }
        sql.push(" IN ").list(&query.types);
    }
    let base = query.base.as_deref();
    let mut conditions: Vec<&Condition> = query.conditions.iter().collect();
    conditions.sort_by_key(|c| selectivity_rank(c));
    let listed = listed.min(conditions.len());
    let (lists, checks) = conditions.split_at(listed);
    let mut intersected: Vec<Sql> = Vec::new();
    for condition in lists {
        let mut rows = Sql::on(sql.dialect);
        rows.push("SELECT res_key");
        if lists.len() > 1 && index_rows(condition, base, &mut rows).is_some() {
            intersected.push(rows);
        } else {
            sql.push(" AND ");
            predicate(condition, "r.res_key", base, true, sql);
        }
    }
    if !intersected.is_empty() {
        sql.push(" AND r.res_key IN (");
        for (i, rows) in intersected.into_iter().enumerate() {
            if i > 0 {
                sql.push(" INTERSECT ");
            }
            sql.append(rows);
        }
        sql.push(")");
    }
    check_each(checks.iter().copied(), base, sql);
}

/// ` AND …` for each condition, checked per candidate `r` (none of them
/// selects candidates: a walk of an index does).
pub(crate) fn checks(query: &SearchQuery, sql: &mut Sql) {
    check_each(query.conditions.iter(), query.base.as_deref(), sql);
}

fn check_each<'c>(
    conditions: impl Iterator<Item = &'c Condition>,
    base: Option<&str>,
    sql: &mut Sql,
) {
    for condition in conditions {
        sql.push(" AND ");
        predicate(condition, "r.res_key", base, false, sql);
    }
}

/// `SELECT COUNT(…)` straight from the index for a query with one positive
/// condition on one parameter: index rows exist only for current,
/// non-deleted resources, and their parameters are qualified by type, so
/// the distinct keys are exactly the matches. `None` for other queries.
pub(crate) fn direct_count(query: &SearchQuery, dialect: Dialect) -> Option<Sql> {
    let [condition] = query.conditions.as_slice() else {
        return None;
    };
    if let Some(sql) = coding_count(condition, dialect) {
        return Some(sql);
    }
    let mut sql = Sql::on(dialect);
    sql.push("SELECT COUNT(DISTINCT res_key) AS n");
    index_rows(condition, query.base.as_deref(), &mut sql)?;
    Some(sql)
}

/// The count of one `param=system|code` token condition. Of a resource's
/// rows with one (param, code, system, implicit) all but the first are
/// `repeated`, so the range of `idx_token_search` for (param, code,
/// system) less its rare `implicit` and `repeated` rows is the matches
/// themselves, counted without DISTINCT. SQLite compares each row of a
/// range with all the range's key columns: 16,310 rows take 0.54 ms on
/// three columns, 0.71 on five, 1.1 with DISTINCT and 3.7 sorting. The
/// rows with no system whose system is implied, or with `implicit` set,
/// count only for resources the first rows left out.
fn coding_count(condition: &Condition, dialect: Dialect) -> Option<Sql> {
    let Condition::Values {
        params,
        kind: ParamType::Token,
        modifier: Modifier::None,
        values,
        ..
    } = condition
    else {
        return None;
    };
    let (
        [param],
        [SearchValue::Token {
            system: Some(Some(system)),
            code: Some(code),
        }],
    ) = (params.as_slice(), values.as_slice())
    else {
        return None;
    };
    // `alias.param = … AND alias.code = … AND alias.system …`: the whole key
    // of `idx_token_search` but `implicit`.
    let key = |sql: &mut Sql, alias: &str, system: Option<&str>| {
        sql.push(&format!("{alias}param = "))
            .text(param.as_str())
            .push(&format!(" AND {alias}code = "))
            .text(code.as_str());
        match system {
            Some(system) => sql.push(&format!(" AND {alias}system = ")).text(system),
            None => sql.push(&format!(" AND {alias}system IS NULL")),
        };
    };
    let mut sql = Sql::on(dialect);
    sql.push("SELECT (SELECT COUNT(*) FROM idx_token WHERE ");
    key(&mut sql, "", Some(system));
    sql.push(") - (SELECT COUNT(*) FROM idx_token WHERE ");
    key(&mut sql, "", Some(system));
    sql.push(" AND implicit = TRUE) - (SELECT COUNT(*) FROM idx_token WHERE ");
    key(&mut sql, "", Some(system));
    sql.push(
        " AND implicit = FALSE AND repeated = TRUE) + (SELECT COUNT(DISTINCT b.res_key) FROM (",
    );
    sql.push("SELECT res_key FROM idx_token WHERE ");
    key(&mut sql, "", Some(system));
    sql.push(" AND implicit = TRUE UNION ALL SELECT res_key FROM idx_token WHERE ");
    key(&mut sql, "", None);
    sql.push(" AND implicit = TRUE) b WHERE NOT EXISTS (SELECT 1 FROM idx_token a WHERE a.res_key = b.res_key AND ")
        .push(dialect.no_index());
    key(&mut sql, "a.", Some(system));
    sql.push(" AND NOT a.implicit)) AS n");
    Some(sql)
}

/// `SELECT COUNT(*) AS n` of at most `limit` index rows matching a plain
/// positive condition (a cheap look at how broad it is); `None` for other
/// conditions.
pub(crate) fn probe(
    condition: &Condition,
    base: Option<&str>,
    limit: i64,
    dialect: Dialect,
) -> Option<Sql> {
    if matches!(
        condition,
        Condition::Values {
            kind: ParamType::Special,
            ..
        }
    ) {
        return None;
    }
    let mut sql = Sql::on(dialect);
    sql.push("SELECT COUNT(*) AS n FROM (SELECT 1");
    index_rows(condition, base, &mut sql)?;
    sql.push(" LIMIT ").int(limit).push(") p");
    Some(sql)
}

/// ` FROM idx_… WHERE param IN (…) AND (…)`: the index rows of a plain
/// positive condition on one parameter, whose distinct keys are exactly
/// its matches (index rows exist only for current, non-deleted resources,
/// and their parameters are qualified by type); `None` for other
/// conditions.
fn index_rows(condition: &Condition, base: Option<&str>, sql: &mut Sql) -> Option<()> {
    let Condition::Values {
        params,
        kind,
        modifier,
        values,
        only_target,
    } = condition
    else {
        return None;
    };
    if *modifier == Modifier::Not
        || *kind == ParamType::Composite
        || resource_column(params).is_some()
    {
        return None;
    }
    sql.push(" FROM ")
        .push(table(*kind))
        .push(" WHERE param IN ")
        .list(params)
        .push(" AND (");
    joined(sql, values, " OR ", &mut |sql, value| {
        value_clause(value, modifier, only_target.as_deref(), base, sql)
    });
    sql.push(")");
    Some(())
}

/// Lower is likely more selective: equality on codes and references before
/// names, ranges, and negations.
pub(crate) fn selectivity_rank(condition: &Condition) -> u8 {
    match condition {
        Condition::Values {
            modifier: Modifier::Not,
            ..
        }
        | Condition::Missing { .. } => 4,
        Condition::Values { kind, .. } => match kind {
            ParamType::Token | ParamType::Reference | ParamType::Uri | ParamType::Composite => 0,
            ParamType::String => 1,
            _ => 3,
        },
        Condition::Text(_) => 1,
        Condition::Chain { .. } | Condition::Has { .. } | Condition::All(_) | Condition::Any(_) => {
            2
        }
        // Checked last; it selects only when nothing else does.
        Condition::Granted(_) => 5,
    }
}

/// `ORDER BY` for a query: its sort keys (missing values last), then the
/// resource key so the order is total.
pub(crate) fn order(sort: &[SortKey], sql: &mut Sql) {
    sql.push(" ORDER BY ");
    for key in sort {
        if let Some((column, _)) = resource_column(&key.params) {
            sql.push(match column {
                ResourceColumn::Id => "r.id",
                ResourceColumn::LastUpdated => "r.last_updated",
            });
            sql.push(if key.descending { " DESC, " } else { " ASC, " });
            continue;
        }
        let (column, pick) = match (key.kind, key.descending) {
            (ParamType::Date, false) => ("lo", "MIN"),
            (ParamType::Date, true) => ("hi", "MAX"),
            (kind, desc) => (
                match kind {
                    ParamType::String => "norm",
                    ParamType::Token => "code",
                    ParamType::Reference => "target_id",
                    ParamType::Uri => "uri",
                    _ => "value",
                },
                if desc { "MAX" } else { "MIN" },
            ),
        };
        // `+param`: look the resource's rows up by its key (the primary
        // key), not by scanning the parameter's index.
        sql.push("(SELECT ")
            .push(pick)
            .push("(")
            .push(column)
            .push(") FROM ")
            .push(table(key.kind))
            .push(" WHERE res_key = r.res_key AND ")
            .unindexed("param")
            .push(" IN ")
            .list(&key.params)
            .push(")");
        // Missing values sort last either way.
        sql.push(if key.descending {
            " DESC NULLS LAST, "
        } else {
            " ASC NULLS LAST, "
        });
    }
    sql.push("r.res_key");
}

/// Writes `column [NOT] IN (…)` for one condition.
/// `driving`: whether this condition selects the candidates (an `IN` list
/// SQLite builds first) or checks candidates another condition selected
/// (`EXISTS` through the primary key).
pub(super) fn predicate(
    condition: &Condition,
    column: &str,
    base: Option<&str>,
    driving: bool,
    sql: &mut Sql,
) {
    match condition {
        Condition::Values {
            params,
            modifier,
            values,
            ..
        } if resource_column(params).is_some() => {
            let Some((resource_column, types)) = resource_column(params) else {
                return;
            };
            sql.push(column).push(if *modifier == Modifier::Not {
                " NOT IN "
            } else {
                " IN "
            });
            sql.push("(SELECT x.res_key FROM resources x WHERE x.resource_type IN ")
                .list(&types)
                .push(" AND (");
            joined(
                sql,
                values,
                " OR ",
                &mut |sql, value| match (resource_column, value) {
                    (ResourceColumn::Id, SearchValue::Token { code: Some(id), .. }) => {
                        sql.push("x.id = ").text(id.as_str());
                    }
                    (ResourceColumn::LastUpdated, SearchValue::Date { prefix, range }) => {
                        date_clause(
                            sql,
                            *prefix,
                            range,
                            "x.last_updated",
                            "(x.last_updated + 1)",
                        );
                    }
                    _ => {
                        sql.push("FALSE");
                    }
                },
            );
            sql.push("))");
        }
        Condition::Missing {
            params, missing, ..
        } if resource_column(params).is_some() => {
            // Every resource has an id and a lastUpdated.
            sql.push(if *missing { "FALSE" } else { "TRUE" });
        }
        Condition::Values {
            params,
            kind: ParamType::Composite,
            values,
            ..
        } => {
            let Some(SearchValue::Composite(first)) = values.first() else {
                sql.push("FALSE");
                return;
            };
            let types: Vec<ParamType> = first.iter().map(|(t, _)| *t).collect();
            sql.push(column)
                .push(" IN (SELECT c0.res_key FROM ")
                .push(table(types[0]))
                .push(" c0 WHERE c0.param IN ");
            sql.list(&component_params(params, 0)).push(" AND (");
            joined(sql, values, " OR ", &mut |sql, value| match value {
                SearchValue::Composite(parts) => composite_clause(params, parts, 0, base, sql),
                _ => {
                    sql.push("FALSE");
                }
            });
            sql.push("))");
        }
        Condition::Values {
            params,
            kind,
            modifier,
            values,
            only_target,
        } => {
            let negated = *modifier == Modifier::Not;
            if driving {
                sql.push(column)
                    .push(if negated { " NOT IN " } else { " IN " });
                sql.push("(SELECT res_key FROM ")
                    .push(table(*kind))
                    .push(" WHERE param IN ")
                    .list(params);
            } else {
                // Checked per candidate through the primary key.
                sql.push(if negated { "NOT EXISTS " } else { "EXISTS " });
                sql.push("(SELECT 1 FROM ")
                    .push(table(*kind))
                    .push(" WHERE res_key = ")
                    .push(column)
                    .push(" AND ")
                    .unindexed("param")
                    .push(" IN ")
                    .list(params);
            }
            sql.push(" AND (");
            joined(sql, values, " OR ", &mut |sql, value| {
                value_clause(value, modifier, only_target.as_deref(), base, sql)
            });
            sql.push("))");
        }
        Condition::Missing {
            params,
            kind,
            missing,
        } => {
            sql.push(column)
                .push(if *missing { " NOT IN " } else { " IN " });
            sql.push("(SELECT res_key FROM ")
                .push(table(*kind))
                .push(" WHERE param IN ")
                .list(params)
                .push(")");
        }
        Condition::Chain { params, targets } => {
            sql.push(column)
                .push(" IN (SELECT res_key FROM idx_reference WHERE param IN ")
                .list(params);
            // The targets' ids select the rows (`idx_reference_search`), not
            // the parameter's every local reference (`idx_reference_url`).
            sql.push(" AND ");
            let url = format!("{}url", sql.dialect.no_index());
            local_reference(sql, &url, base).push(" AND (");
            joined(sql, targets, " OR ", &mut |sql, (target, inner)| {
                sql.push("(target_type = ").text(target.as_str());
                sql.push(
                    " AND target_id IN (SELECT c.id FROM resources c WHERE c.resource_type = ",
                )
                .text(target.as_str());
                sql.push(" AND NOT c.deleted AND ");
                predicate(inner, "c.res_key", base, true, sql);
                sql.push("))");
            });
            sql.push("))");
        }
        Condition::Has {
            source_type: _,
            param,
            inner,
        } if !driving => {
            // Per candidate: its referrers through the reference index,
            // each checked through the primary key; the first that meets
            // the inner condition ends the look.
            sql.push("EXISTS (SELECT 1 FROM resources t JOIN idx_reference h ON h.param = ")
                .text(param.as_str())
                .push(" AND h.target_id = t.id AND h.target_type = t.resource_type WHERE t.res_key = ")
                .push(column)
                .push(" AND ");
            local_reference(sql, "h.url", base).push(" AND ");
            predicate(inner, "h.res_key", base, false, sql);
            sql.push(")");
        }
        Condition::Has {
            source_type: _,
            param,
            inner,
        } => {
            sql.push(column)
                .push(" IN (SELECT t.res_key FROM idx_reference h JOIN resources t ");
            sql.push("ON t.resource_type = h.target_type AND t.id = h.target_id ");
            // The inner condition's keys drive: each one's references are
            // found through the primary key, not by scanning every
            // reference of the parameter.
            sql.push("WHERE ")
                .unindexed("h.param")
                .push(" = ")
                .text(param.as_str())
                .push(" AND ");
            let url = format!("{}h.url", sql.dialect.no_index());
            local_reference(sql, &url, base).push(" AND ");
            predicate(inner, "h.res_key", base, true, sql);
            sql.push(")");
        }
        Condition::Text(query) => {
            let text = query.render(sql.dialect);
            match sql.dialect {
                Dialect::Sqlite => sql
                    .push(column)
                    .push(" IN (SELECT rowid FROM resource_text WHERE resource_text MATCH ")
                    .text(text),
                Dialect::Postgres => sql
                    .push(column)
                    .push(" IN (SELECT res_key FROM resource_text WHERE ")
                    .push(query.column)
                    .push(" @@ CAST(")
                    .text(text)
                    .push(" AS tsquery)"),
            }
            .push(")");
        }
        Condition::Granted(groups) => granted(groups, column, base, driving, sql),
        Condition::All(conditions) | Condition::Any(conditions) => {
            let join = match condition {
                Condition::All(_) => " AND ",
                _ => " OR ",
            };
            sql.push("(");
            joined(sql, conditions, join, &mut |sql, c| {
                predicate(c, column, base, driving, sql)
            });
            sql.push(")");
        }
    }
}

/// ` AND …` for each of `conditions`, checked on the resource whose key is
/// `column`.
fn conditions_sql(conditions: &[Condition], column: &str, base: Option<&str>, sql: &mut Sql) {
    for condition in conditions {
        sql.push(" AND ");
        predicate(condition, column, base, false, sql);
    }
}

/// The grant's condition on the resource whose key is `column`. Driving
/// (nothing else selects): when every group is limited to patients, the
/// patients' resources select; otherwise the granted types are read.
/// Checking: on the row itself when `column` is the key of a `resources`
/// row of the statement (`r`, a search's; `c`, a chain's target; `t`, an
/// include's), otherwise on the resource's row, found through its key.
pub(crate) fn granted(
    groups: &[GrantGroup],
    column: &str,
    base: Option<&str>,
    driving: bool,
    sql: &mut Sql,
) {
    let patients: Option<Vec<&str>> = groups
        .iter()
        .map(|g| g.limits.as_deref())
        .try_fold(Vec::new(), |mut all, limits| {
            for limit in limits.filter(|l| !l.is_empty())? {
                let patient = limit.patient.as_deref()?;
                if !all.contains(&patient) {
                    all.push(patient);
                }
            }
            Some(all)
        })
        .filter(|all| !all.is_empty());
    match (driving, patients, column) {
        (true, Some(patients), _) => {
            sql.push(column).push(
                " IN (SELECT a.res_key FROM version_patients vp \
                 JOIN resources a ON a.current_seq = vp.seq WHERE vp.patient_id IN ",
            );
            sql.list(&patients).push(" AND ");
            groups_clause(groups, Checked::Resource("a"), base, sql);
            sql.push(")");
        }
        (true, None, _) => {
            sql.push(column)
                .push(" IN (SELECT a.res_key FROM resources a WHERE ");
            groups_clause(groups, Checked::Resource("a"), base, sql);
            sql.push(")");
        }
        (false, _, "r.res_key" | "c.res_key" | "t.res_key") => {
            groups_clause(groups, Checked::Resource(&column[..1]), base, sql);
        }
        (false, _, _) => {
            sql.push("EXISTS (SELECT 1 FROM resources a WHERE a.res_key = ")
                .push(column)
                .push(" AND ");
            groups_clause(groups, Checked::Resource("a"), base, sql);
            sql.push(")");
        }
    }
}

/// What a grant's clause checks: a `resources` row under its alias (its
/// current version), or the version row `v` of `resource_versions`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Checked<'a> {
    Resource(&'a str),
    Version,
}

/// `(…)`: the checked row is of a group's types and, for a limited group,
/// within one of its limits: the version belongs to the patient, and the
/// granular search's conditions hold (on a version: only the current one,
/// which the index describes).
pub(crate) fn groups_clause(
    groups: &[GrantGroup],
    checked: Checked<'_>,
    base: Option<&str>,
    sql: &mut Sql,
) {
    let (type_column, seq_column) = match checked {
        Checked::Resource(row) => (format!("{row}.resource_type"), format!("{row}.current_seq")),
        Checked::Version => ("v.resource_type".to_owned(), "v.seq".to_owned()),
    };
    sql.push("(");
    if groups.is_empty() {
        sql.push("FALSE");
    }
    joined(sql, groups, " OR ", &mut |sql, group| {
        sql.push("(")
            .push(&type_column)
            .push(" IN ")
            .list(&group.types);
        if let Some(limits) = &group.limits {
            sql.push(" AND (");
            if limits.is_empty() {
                sql.push("FALSE");
            }
            joined(sql, limits, " OR ", &mut |sql, limit| {
                sql.push("(TRUE");
                if let Some(patient) = &limit.patient {
                    sql.push(" AND EXISTS (SELECT 1 FROM version_patients p WHERE p.seq = ")
                        .push(&seq_column)
                        .push(" AND p.patient_id = ")
                        .text(patient.as_str())
                        .push(")");
                }
                match checked {
                    Checked::Resource(row) => {
                        conditions_sql(&limit.conditions, &format!("{row}.res_key"), base, sql)
                    }
                    Checked::Version if !limit.conditions.is_empty() => {
                        sql.push(
                            " AND EXISTS (SELECT 1 FROM resources a WHERE a.resource_type = v.resource_type \
                             AND a.id = v.id AND a.current_seq = v.seq",
                        );
                        conditions_sql(&limit.conditions, "a.res_key", base, sql);
                        sql.push(")");
                    }
                    Checked::Version => {}
                }
                sql.push(")");
            });
            sql.push(")");
        }
        sql.push(")");
    });
    sql.push(")");
}

fn component_params(params: &[String], i: usize) -> Vec<String> {
    params.iter().map(|p| format!("{p}${i}")).collect()
}

/// Component `i` matches on the row `c{i}`, and the rest on rows of the
/// same resource and group, nested so each clause's unqualified columns
/// resolve to its own table.
fn composite_clause(
    params: &[String],
    parts: &[(ParamType, SearchValue)],
    i: usize,
    base: Option<&str>,
    sql: &mut Sql,
) {
    sql.push("(");
    value_clause(&parts[i].1, &Modifier::None, None, base, sql);
    if let Some((next_type, _)) = parts.get(i + 1) {
        let next = i + 1;
        sql.push(" AND EXISTS (SELECT 1 FROM ").push(table(*next_type)).push(&format!(" c{next} WHERE c{next}.res_key = c{i}.res_key AND c{next}.grp = c{i}.grp AND c{next}.param IN "));
        sql.list(&component_params(params, next)).push(" AND ");
        composite_clause(params, parts, next, base, sql);
        sql.push(")");
    }
    sql.push(")");
}

fn value_clause(
    value: &SearchValue,
    modifier: &Modifier,
    only_target: Option<&str>,
    base: Option<&str>,
    sql: &mut Sql,
) {
    match value {
        SearchValue::String { normalised, exact } => match modifier {
            Modifier::Exact => {
                sql.push("exact = ").text(exact.as_str());
            }
            Modifier::Contains => {
                let pattern = format!(
                    "%{}%",
                    normalised
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                sql.push("norm LIKE ").text(pattern).push(" ESCAPE '\\'");
            }
            Modifier::Text => {
                sql.prefix("text", normalised);
            }
            _ => {
                sql.prefix("norm", normalised);
            }
        },
        SearchValue::Token { system, code } => match (system, code) {
            (None, Some(code)) => {
                sql.push("code = ").text(code.as_str());
            }
            (Some(None), Some(code)) => {
                sql.push("(system IS NULL AND code = ")
                    .text(code.as_str())
                    .push(")");
            }
            (Some(Some(system)), Some(code)) => {
                // A `code` element has no system of its own: its system is
                // implied by its value set, so a stated system cannot rule
                // it out (search.html, token).
                sql.push("(code = ")
                    .text(code.as_str())
                    .push(" AND (system = ")
                    .text(system.as_str())
                    .push(" OR (system IS NULL AND implicit)))");
            }
            (Some(Some(system)), None) => {
                sql.push("system = ").text(system.as_str());
            }
            _ => {
                sql.push("FALSE");
            }
        },
        SearchValue::OfType {
            system,
            code,
            value,
        } => {
            sql.push("(type_system = ")
                .text(system.as_str())
                .push(" AND type_code = ")
                .text(code.as_str());
            sql.push(" AND code = ").text(value.as_str()).push(")");
        }
        SearchValue::Identifier { system, value } => {
            sql.push("(TRUE");
            if let Some(s) = system {
                sql.push(" AND ident_system = ").text(s.as_str());
            }
            if let Some(v) = value {
                sql.push(" AND ident_value = ").text(v.as_str());
            }
            sql.push(")");
        }
        SearchValue::Reference {
            resource_type,
            id,
            version,
            url,
        } => {
            if let Some(url) = url {
                sql.push("url = ").text(url.as_str());
                return;
            }
            sql.push("(target_id = ")
                .text(id.clone().unwrap_or_default());
            if let Some(t) = resource_type.as_deref().or(only_target) {
                sql.push(" AND target_type = ").text(t);
            }
            if let Some(v) = version {
                sql.push(" AND target_version = ").text(v.as_str());
            }
            // A relative reference, or an absolute one under this server's base.
            sql.push(" AND ");
            local_reference(sql, "url", base).push(")");
        }
        SearchValue::Date { prefix, range } => date_clause(sql, *prefix, range, "lo", "hi"),
        SearchValue::Number {
            prefix,
            value,
            lo,
            hi,
        } => number_clause("value", *prefix, *value, *lo, *hi, sql),
        SearchValue::Quantity {
            prefix,
            value,
            lo,
            hi,
            system,
            code,
        } => {
            let Some(code) = code else {
                number_clause("value", *prefix, *value, *lo, *hi, sql);
                return;
            };
            match system {
                Some(system) => {
                    sql.push("((code = ")
                        .text(code.as_str())
                        .push(" AND system = ")
                        .text(system.as_str());
                }
                // Without a system, the code or the human-readable unit.
                None => {
                    sql.push("(((code = ")
                        .text(code.as_str())
                        .push(" OR unit = ")
                        .text(code.as_str())
                        .push(")");
                }
            }
            sql.push(" AND ");
            number_clause("value", *prefix, *value, *lo, *hi, sql);
            sql.push(")");
            if let Some((factor, canonical)) =
                crate::ucum::canonical(1.0, system.as_deref(), Some(code))
            {
                sql.push(" OR (canonical_code = ")
                    .text(canonical)
                    .push(" AND ");
                number_clause(
                    "canonical_value",
                    *prefix,
                    value * factor,
                    lo * factor,
                    hi * factor,
                    sql,
                );
                sql.push(")");
            }
            sql.push(")");
        }
        SearchValue::Composite(_) => {
            sql.push("FALSE");
        }
        SearchValue::Uri(uri) => match modifier {
            Modifier::Below => {
                sql.prefix("uri", uri);
            }
            Modifier::Above => {
                sql.push("substr(")
                    .text(uri.as_str())
                    .push(", 1, length(uri)) = uri");
            }
            _ => {
                sql.push("uri = ").text(uri.as_str());
            }
        },
    }
}

/// A stored date range `[lo, hi)` (the columns, or expressions, given)
/// against a date search value with its prefix.
fn date_clause(sql: &mut Sql, prefix: Prefix, range: &Range, lo: &str, hi: &str) {
    let (a, b) = (range.start, range.end);
    // The stored range lies within the search range (`eq`).
    let within = |sql: &mut Sql| {
        sql.push("(")
            .push(lo)
            .push(" >= ")
            .int(a)
            .push(" AND ")
            .push(hi)
            .push(" <= ")
            .int(b)
            .push(")");
    };
    match prefix {
        Prefix::Eq => within(sql),
        Prefix::Ne => {
            sql.push("NOT ");
            within(sql);
        }
        Prefix::Gt => {
            sql.push(hi).push(" > ").int(b);
        }
        Prefix::Lt => {
            sql.push(lo).push(" < ").int(a);
        }
        // ge is gt or eq; le is lt or eq.
        Prefix::Ge => {
            sql.push("(").push(hi).push(" > ").int(b).push(" OR ");
            within(sql);
            sql.push(")");
        }
        Prefix::Le => {
            sql.push("(").push(lo).push(" < ").int(a).push(" OR ");
            within(sql);
            sql.push(")");
        }
        Prefix::Sa => {
            sql.push(lo).push(" >= ").int(b);
        }
        Prefix::Eb => {
            sql.push(hi).push(" <= ").int(a);
        }
        Prefix::Ap => {
            // Approximately: within 10% of the distance to now, and at
            // least a day, either side.
            let now = hearth_model::datetime::now_ms();
            let slack = ((now - a).abs() / 10).max(86_400_000);
            sql.push("(")
                .push(lo)
                .push(" < ")
                .int(b.saturating_add(slack))
                .push(" AND ")
                .push(hi)
                .push(" > ")
                .int(a.saturating_sub(slack))
                .push(")");
        }
    }
}

/// Number comparison with the search value's precision: `eq 100` is
/// [99.5, 100.5).
fn number_clause(column: &str, prefix: Prefix, value: f64, lo: f64, hi: f64, sql: &mut Sql) {
    let c = column;
    match prefix {
        Prefix::Eq => {
            sql.push("(")
                .push(c)
                .push(" >= ")
                .real(lo)
                .push(" AND ")
                .push(c)
                .push(" < ")
                .real(hi)
                .push(")");
        }
        Prefix::Ne => {
            sql.push("NOT (")
                .push(c)
                .push(" >= ")
                .real(lo)
                .push(" AND ")
                .push(c)
                .push(" < ")
                .real(hi)
                .push(")");
        }
        Prefix::Gt | Prefix::Sa => {
            sql.push(c).push(" > ").real(value);
        }
        Prefix::Lt | Prefix::Eb => {
            sql.push(c).push(" < ").real(value);
        }
        // With a prefix other than eq, ne and ap the value's implicit
        // precision is ignored (search.html, number).
        Prefix::Ge => {
            sql.push(c).push(" >= ").real(value);
        }
        Prefix::Le => {
            sql.push(c).push(" <= ").real(value);
        }
        Prefix::Ap => {
            let (a, b) = (value * 0.9, value * 1.1);
            sql.push("(")
                .push(c)
                .push(" >= ")
                .real(a.min(b))
                .push(" AND ")
                .push(c)
                .push(" <= ")
                .real(a.max(b))
                .push(")");
        }
    }
}
