//! The data functions: reads and versioned writes on an open transaction.

use std::sync::Arc;

use diesel::prelude::*;
use hearth_model::search_params::CustomParams;
use serde_json::Value;

use hearth_model::datetime;

use crate::body;
use crate::db::{on_backend, Abort, Db, Dialect};
use crate::document::Document;
use crate::full_text::PendingText;
use crate::index_rows;
use hearth_auth::Permission;

use crate::access::Access;
use crate::schema::{resource_versions as v, resources as r};
use crate::statement::{Bind, Sql};
use crate::{Result, StoreError};

/// The interaction that wrote a version; history reports it as the entry's
/// `request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    pub(crate) fn parse(s: &str) -> Method {
        match s {
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Put,
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    /// Milliseconds since the Unix epoch (`meta.lastUpdated`).
    pub last_updated: i64,
    pub method: Method,
    /// Compact FHIR JSON with `id` and `meta` set; `None` for a deletion.
    pub body: Option<Vec<u8>>,
}

impl StoredVersion {
    pub fn is_deletion(&self) -> bool {
        self.body.is_none()
    }
}

/// The outcome of a create or update.
#[derive(Debug, Clone)]
pub struct Written {
    pub version: StoredVersion,
    /// True when the write created the resource (201), false for a new
    /// version of an existing one (200).
    pub created: bool,
}

/// A version row, read by position (diesel's query builder) or by column
/// name (run-time SQL).
#[derive(Queryable, diesel::QueryableByName)]
pub(crate) struct VersionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    resource_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    version_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    last_updated: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    method: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    body: Option<Vec<u8>>,
}

impl VersionRow {
    pub(crate) fn version(self) -> Result<StoredVersion> {
        Ok(StoredVersion {
            resource_type: self.resource_type,
            id: self.id,
            version_id: self.version_id,
            last_updated: self.last_updated,
            method: Method::parse(&self.method),
            body: body::decode_opt(self.body)?,
        })
    }
}

pub(crate) type VersionColumns = (
    v::resource_type,
    v::id,
    v::version_id,
    v::last_updated,
    v::method,
    v::body,
);
pub(crate) const VERSION_COLUMNS: VersionColumns = (
    v::resource_type,
    v::id,
    v::version_id,
    v::last_updated,
    v::method,
    v::body,
);

/// An open database connection, inside a transaction when it came from
/// [`crate::Store::write`].
pub struct Tx<'c> {
    pub(crate) conn: &'c mut Db,
    /// Set when a SearchParameter was written: the custom search
    /// parameters are recomputed after the commit.
    pub(crate) search_parameters_written: bool,
    /// The custom search parameters the index is written with.
    pub(crate) custom: Arc<CustomParams>,
    /// Full-text changes of the transaction, written before it commits.
    pub(crate) text: &'c mut PendingText,
    /// Rows this write changed that do not stay its own: undone by a
    /// savepoint, or full text of earlier writes written on their behalf.
    pub(crate) not_its_own_changes: i64,
    /// The grant the transaction's reads and writes are held to (set from
    /// the `Store` handle that began it).
    pub(crate) access: Access,
}

struct Current {
    res_key: i64,
    /// The current version's row.
    seq: i64,
    version_id: i64,
    last_updated: i64,
    deleted: bool,
}

// Lookups by a unique key use `get_result`, not `first`: `first` binds its
// LIMIT, and SQLite re-plans a statement whose LIMIT binding was set again.
impl<'c> Tx<'c> {
    pub(crate) fn new(
        conn: &'c mut Db,
        custom: Arc<CustomParams>,
        text: &'c mut PendingText,
    ) -> Self {
        Tx {
            conn,
            search_parameters_written: false,
            custom,
            text,
            not_its_own_changes: 0,
            access: Access::everything(),
        }
    }

    /// Runs `f` in a savepoint: if it fails, everything it wrote is undone
    /// and the transaction goes on. A write of several steps that may fail
    /// after its first change (a transaction Bundle) must run in one.
    pub fn savepoint<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let before = self.conn.changes().map_err(StoreError::from)?;
        let mark = self.text.mark();
        let custom = self.custom.clone();
        let access = self.access.clone();
        let text = &mut *self.text;
        let mut inner_state = (false, 0);
        // A nested diesel transaction is a savepoint.
        let result = self.conn.transaction::<_, Abort<E>, _>(|c| {
            let mut inner = Tx::new(c, custom, text);
            inner.access = access;
            let result = f(&mut inner);
            inner_state = (inner.search_parameters_written, inner.not_its_own_changes);
            result.map_err(Abort::Refused)
        });
        match result {
            Ok(value) => {
                self.search_parameters_written |= inner_state.0;
                self.not_its_own_changes += inner_state.1;
                Ok(value)
            }
            Err(abort) => {
                self.text.restore(mark);
                let undone = self.conn.changes().map_err(StoreError::from)? - before;
                self.not_its_own_changes += undone;
                match abort {
                    Abort::Refused(e) => Err(e),
                    Abort::Database(e) => Err(StoreError::from(e).into()),
                }
            }
        }
    }

    /// Which SQL the transaction's connection speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Makes writers that name the same `key` (a resource, or a type whose
    /// conditional writes search before they write) wait for each other
    /// until this transaction ends. SQLite has one writer at a time, so
    /// only PostgreSQL, where transactions of several connections and
    /// nodes run at once, takes a lock: after it, each statement sees
    /// what the writer before committed.
    pub fn lock(&mut self, key: &str) -> Result<()> {
        if self.dialect() == Dialect::Postgres {
            let mut sql = Sql::default();
            sql.push("SELECT pg_advisory_xact_lock(")
                .int(crate::db::lock_key(key))
                .push(")");
            sql.cached::<AdvisoryLock>().execute(self.conn)?;
        }
        Ok(())
    }

    /// Writes the transaction's pending full text, so a full-text search
    /// inside it sees the writes before it.
    pub(crate) fn apply_pending_text(&mut self) -> Result<()> {
        if self.text.is_empty() {
            return Ok(());
        }
        let before = self.conn.changes()?;
        self.text.apply(self.conn)?;
        self.not_its_own_changes += self.conn.changes()? - before;
        Ok(())
    }

    /// Makes `resource` ready to write in this transaction (see
    /// [`Document`]; computing it before [`crate::Store::write`] keeps the
    /// work out of the writer).
    pub fn document(&self, resource: Value) -> Result<Document> {
        Document::new(resource, self.custom.clone())
    }

    /// The current version of a resource, if the grant lets it be read:
    /// a resource of a type not granted is refused; one outside the
    /// grant's limits is not found, as if absent.
    pub fn read(&mut self, resource_type: &str, id: &str) -> Result<StoredVersion> {
        match self.access.grant().access(resource_type, Permission::Read) {
            hearth_auth::TypeAccess::None => {
                return Err(crate::access::forbidden(resource_type, Permission::Read))
            }
            hearth_auth::TypeAccess::All => return self.read_current(resource_type, id),
            hearth_auth::TypeAccess::Limited(_) => {}
        }
        // Under limits: the current version, if the grant sees it, in one
        // statement (a read by id is the most frequent request).
        let mut sql = Sql::on(self.dialect());
        sql.push(
            "SELECT v.resource_type, v.id, v.version_id, v.last_updated, v.method, v.body \
             FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
             WHERE r.resource_type = ",
        )
        .text(resource_type)
        .push(" AND r.id = ")
        .text(id);
        self.access
            .versions_clause([resource_type], Permission::Read, &self.custom, &mut sql);
        let row: Option<VersionRow> = sql.reused().get_result(self.conn).optional()?;
        match row {
            Some(row) => live(row.version()?),
            None => Err(StoreError::NotFound {
                resource_type: resource_type.to_owned(),
                id: id.to_owned(),
            }),
        }
    }

    /// `read`, if the grant lets the request see it with `permission`;
    /// a version it may not see is answered as absent.
    fn held(
        &mut self,
        resource_type: &str,
        id: &str,
        permission: Permission,
        read: Result<StoredVersion>,
    ) -> Result<StoredVersion> {
        if matches!(
            self.access.grant().access(resource_type, permission),
            hearth_auth::TypeAccess::All
        ) {
            return read;
        }
        let version_id = match &read {
            Ok(version) => version.version_id,
            Err(StoreError::Gone { version_id, .. }) => *version_id,
            // Whether a hidden resource has such a version is not told.
            Err(StoreError::VersionNotFound { .. }) => {
                return Err(StoreError::NotFound {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                })
            }
            Err(_) => return read,
        };
        if self.version_seen(resource_type, id, version_id, permission)? {
            read
        } else {
            Err(StoreError::NotFound {
                resource_type: resource_type.to_owned(),
                id: id.to_owned(),
            })
        }
    }

    /// Whether the grant lets the request see this version with
    /// `permission` (see `Access::versions_clause`).
    fn version_seen(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
        permission: Permission,
    ) -> Result<bool> {
        let mut sql = Sql::on(self.dialect());
        sql.push("SELECT COUNT(*) AS n FROM resource_versions v WHERE v.resource_type = ")
            .text(resource_type)
            .push(" AND v.id = ")
            .text(id)
            .push(" AND v.version_id = ")
            .int(version_id);
        self.access
            .versions_clause([resource_type], permission, &self.custom, &mut sql);
        // Its text depends on the grant alone.
        Ok(sql
            .reused()
            .get_result::<crate::search::Count>(self.conn)?
            .n
            > 0)
    }

    /// The current version, whatever the grant: for the store's own use
    /// inside a write that has already been held to it.
    fn read_current(&mut self, resource_type: &str, id: &str) -> Result<StoredVersion> {
        let row: Option<VersionRow> = r::table
            .inner_join(v::table.on(v::seq.eq(r::current_seq)))
            .filter(r::resource_type.eq(resource_type).and(r::id.eq(id)))
            .select(VERSION_COLUMNS)
            .get_result(self.conn)
            .optional()?;
        match row.map(VersionRow::version).transpose()? {
            None => Err(StoreError::NotFound {
                resource_type: resource_type.to_owned(),
                id: id.to_owned(),
            }),
            Some(version) => live(version),
        }
    }

    pub fn vread(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<StoredVersion> {
        self.access.require(resource_type, Permission::Read)?;
        let read = self.vread_any(resource_type, id, version_id);
        self.held(resource_type, id, Permission::Read, read)
    }

    fn vread_any(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<StoredVersion> {
        let row: Option<VersionRow> = v::table
            .filter(
                v::resource_type
                    .eq(resource_type)
                    .and(v::id.eq(id))
                    .and(v::version_id.eq(version_id)),
            )
            .select(VERSION_COLUMNS)
            .get_result(self.conn)
            .optional()?;
        match row.map(VersionRow::version).transpose()? {
            None => {
                // Tell "no such resource" from "no such version of it".
                if self.current(resource_type, id)?.is_none() {
                    Err(StoreError::NotFound {
                        resource_type: resource_type.to_owned(),
                        id: id.to_owned(),
                    })
                } else {
                    Err(StoreError::VersionNotFound {
                        resource_type: resource_type.to_owned(),
                        id: id.to_owned(),
                        version_id,
                    })
                }
            }
            Some(version) => live(version),
        }
    }

    /// Creates a resource with a new server-assigned id.
    pub fn create(&mut self, document: Document) -> Result<Written> {
        let id = uuid::Uuid::new_v4().to_string();
        let resource_type = document.resource_type.clone();
        self.require_write(&resource_type, Permission::Create)?;
        let version = self.written_within(&resource_type, &id, Permission::Create, |tx| {
            tx.write_version(&resource_type, &id, Some(document), None, Method::Post)
        })?;
        Ok(Written {
            version,
            created: true,
        })
    }

    /// Writes a new version of the resource with id `id`, creating it when it
    /// does not exist (update as create). `if_match` makes the write fail
    /// with [`StoreError::VersionConflict`] unless that version is current.
    pub fn update(
        &mut self,
        id: &str,
        document: Document,
        if_match: Option<i64>,
        method: Method,
    ) -> Result<Written> {
        // Without `unless_same`, `put` always writes.
        self.put(id, document, if_match, method, false)?
            .ok_or_else(|| StoreError::Database("an update wrote nothing".into()))
    }

    /// [`Tx::update`], unless the current version already holds exactly
    /// this content: then nothing is written and `None` is returned. An
    /// import loading the same files again writes nothing new.
    pub fn update_unless_same(
        &mut self,
        id: &str,
        document: Document,
        method: Method,
    ) -> Result<Option<Written>> {
        self.put(id, document, None, method, true)
    }

    /// [`Tx::update`]; with `unless_same`, nothing is written (`None`) when
    /// the current version already holds this content.
    fn put(
        &mut self,
        id: &str,
        document: Document,
        if_match: Option<i64>,
        method: Method,
        unless_same: bool,
    ) -> Result<Option<Written>> {
        let resource_type = document.resource_type.clone();
        self.lock(&format!("{resource_type}/{id}"))?;
        let current = self.current(&resource_type, id)?;
        // A resource the grant hides is not found; one it may not
        // update is refused; creating needs `c`.
        let exists = current.as_ref().is_some_and(|c| !c.deleted);
        let permission = if exists {
            Permission::Update
        } else {
            Permission::Create
        };
        self.require_write(&resource_type, permission)?;
        if let Some(c) = current.as_ref().filter(|_| exists) {
            if !self.access.is_everything()
                && !self.version_seen(&resource_type, id, c.version_id, Permission::Update)?
            {
                return Err(StoreError::NotFound {
                    resource_type: resource_type.clone(),
                    id: id.to_owned(),
                });
            }
        }
        check_precondition(if_match, current.as_ref())?;
        if let Some(c) = current.as_ref().filter(|c| unless_same && !c.deleted) {
            let stored = self.read_current(&resource_type, id)?;
            let same =
                document
                    .body
                    .render(id, c.version_id, &datetime::format_instant(c.last_updated));
            if stored.body.as_deref() == Some(same.as_slice()) {
                return Ok(None);
            }
        }
        let created = current.as_ref().is_none_or(|c| c.deleted);
        let version = self.written_within(&resource_type, id, permission, |tx| {
            tx.write_version(&resource_type, id, Some(document), current.as_ref(), method)
        })?;
        Ok(Some(Written { version, created }))
    }

    /// Deletes a resource by writing a tombstone version. Answers `None` when
    /// the resource was already deleted (nothing is written).
    pub fn delete(
        &mut self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Option<StoredVersion>> {
        self.require_write(resource_type, Permission::Delete)?;
        self.lock(&format!("{resource_type}/{id}"))?;
        let hidden = |tx: &mut Self, c: &Current| -> Result<bool> {
            Ok(!tx.access.is_everything()
                && !tx.version_seen(resource_type, id, c.version_id, Permission::Delete)?)
        };
        let current = match self.current(resource_type, id)? {
            Some(c) if !hidden(self, &c)? => c,
            _ => {
                return Err(StoreError::NotFound {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                })
            }
        };
        check_precondition(if_match, Some(&current))?;
        if current.deleted {
            return Ok(None);
        }
        self.write_version(resource_type, id, None, Some(&current), Method::Delete)
            .map(Some)
    }

    /// Refuses a write the grant does not allow. A SearchParameter
    /// changes how the server searches for everyone: writing one needs
    /// system-level scopes.
    fn require_write(&self, resource_type: &str, permission: Permission) -> Result<()> {
        self.access.require(resource_type, permission)?;
        if resource_type == "SearchParameter"
            && !self
                .access
                .grant()
                .is_system_level(resource_type, permission)
        {
            return Err(StoreError::Forbidden(format!(
                "writing a SearchParameter needs system-level scopes (system/SearchParameter.{})",
                permission.letter()
            )));
        }
        Ok(())
    }

    /// Runs `write` (of version of `resource_type`/`id`); under a grant
    /// limited for `permission`, in a savepoint, refusing and undoing a
    /// version the grant would not let the request see: a write may not
    /// put a resource outside the patient's compartment or the granular
    /// scopes it was allowed by.
    fn written_within(
        &mut self,
        resource_type: &str,
        id: &str,
        permission: Permission,
        write: impl FnOnce(&mut Tx<'_>) -> Result<StoredVersion>,
    ) -> Result<StoredVersion> {
        if matches!(
            self.access.grant().access(resource_type, permission),
            hearth_auth::TypeAccess::All
        ) {
            return write(self);
        }
        self.savepoint(|tx| {
            let version = write(tx)?;
            if tx.version_seen(resource_type, id, version.version_id, permission)? {
                Ok(version)
            } else {
                Err(StoreError::Forbidden(format!(
                    "the access token does not allow {resource_type} to be written so: \
                     the result would be outside the patient's compartment or the granted searches"
                )))
            }
        })
    }

    fn current(&mut self, resource_type: &str, id: &str) -> Result<Option<Current>> {
        let query = r::table
            .filter(r::resource_type.eq(resource_type).and(r::id.eq(id)))
            .select((
                r::res_key,
                r::current_seq,
                r::version_id,
                r::last_updated,
                r::deleted,
            ));
        let row: Option<(i64, i64, i64, i64, bool)> =
            on_backend!(&mut *self.conn, |c| query.get_result(c).optional())?;
        Ok(row.map(
            |(res_key, seq, version_id, last_updated, deleted)| Current {
                res_key,
                seq,
                version_id,
                last_updated,
                deleted,
            },
        ))
    }

    /// Appends a version (a tombstone when `document` is `None`) and points
    /// `resources` at it. The caller holds the write transaction.
    fn write_version(
        &mut self,
        resource_type: &str,
        id: &str,
        document: Option<Document>,
        current: Option<&Current>,
        method: Method,
    ) -> Result<StoredVersion> {
        let version_id = current.map_or(1, |c| c.version_id + 1);
        // lastUpdated never goes backwards for a resource, even if the clock does.
        let last_updated = current.map_or(datetime::now_ms(), |c| {
            datetime::now_ms().max(c.last_updated + 1)
        });
        if resource_type == "SearchParameter" {
            self.search_parameters_written = true;
            crate::custom::changed(self.conn)?;
        }
        let document = match document {
            Some(d) => Some(d.under(&self.custom)?),
            None => None,
        };
        let (body, index, text, patients) = match document {
            Some(Document {
                body,
                index,
                text,
                mut patients,
                ..
            }) => {
                if resource_type == "Patient" {
                    patients.push(id.to_owned());
                }
                (
                    Some(body.render(id, version_id, &datetime::format_instant(last_updated))),
                    Some(index),
                    Some(text),
                    Some(patients),
                )
            }
            None => (None, None, None, None),
        };
        let deleted = body.is_none();
        let version = diesel::insert_into(v::table)
            .values((
                v::resource_type.eq(resource_type),
                v::id.eq(id),
                v::version_id.eq(version_id),
                v::last_updated.eq(last_updated),
                v::method.eq(method.as_str()),
                v::body.eq(body.as_deref().map(body::encode)),
            ))
            .returning(v::seq);
        let seq: i64 = on_backend!(&mut *self.conn, |c| version.get_result(c))?;
        match (&patients, current) {
            (Some(patients), _) => crate::patients::insert(self.conn, seq, patients)?,
            // A deletion belongs to whom the version before it did.
            (None, Some(c)) => crate::patients::copy(self.conn, seq, c.seq)?,
            (None, None) => {}
        }
        let res_key = match current {
            None => {
                let resource = diesel::insert_into(r::table)
                    .values((
                        r::resource_type.eq(resource_type),
                        r::id.eq(id),
                        r::version_id.eq(version_id),
                        r::last_updated.eq(last_updated),
                        r::deleted.eq(deleted),
                        r::current_seq.eq(seq),
                    ))
                    .returning(r::res_key);
                on_backend!(&mut *self.conn, |c| resource.get_result::<i64>(c))?
            }
            Some(c) => {
                let mut sql = Sql::default();
                sql.push("UPDATE resources SET version_id = ")
                    .int(version_id)
                    .push(", last_updated = ")
                    .int(last_updated)
                    .push(", deleted = ")
                    .bind(Bind::Bool(deleted))
                    .push(", current_seq = ")
                    .int(seq)
                    .push(" WHERE res_key = ")
                    .int(c.res_key);
                sql.cached::<UpdateCurrent>().execute_on(self.conn)?;
                c.res_key
            }
        };
        // The index describes current, live versions only.
        let indexed = current.is_some_and(|c| !c.deleted);
        if indexed {
            index_rows::clear(self.conn, res_key)?;
        }
        if let Some(index) = index {
            index.insert(self.conn, res_key)?;
        }
        if indexed || text.is_some() {
            self.text.replace(res_key, indexed, text);
        }
        Ok(StoredVersion {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version_id,
            last_updated,
            method,
            body,
        })
    }
}

struct UpdateCurrent;
struct AdvisoryLock;

/// A deletion answers `Gone`; any other version is returned.
fn live(version: StoredVersion) -> Result<StoredVersion> {
    if version.is_deletion() {
        Err(StoreError::Gone {
            resource_type: version.resource_type,
            id: version.id,
            version_id: version.version_id,
            last_updated: version.last_updated,
        })
    } else {
        Ok(version)
    }
}

fn check_precondition(if_match: Option<i64>, current: Option<&Current>) -> Result<()> {
    match (if_match, current) {
        (Some(expected), Some(c)) if c.version_id != expected => Err(StoreError::VersionConflict {
            expected,
            current: Some(c.version_id),
        }),
        (Some(expected), None) => Err(StoreError::VersionConflict {
            expected,
            current: None,
        }),
        _ => Ok(()),
    }
}
