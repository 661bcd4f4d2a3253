//! Loading Bundles and resources straight into the store (`hearth import`),
//! with a transaction's meaning but an importer's habits:
//!
//! - a POSTed entry whose `fullUrl` is `urn:uuid:X` is stored with the id
//!   `X` (or its own `id`), so that loading the same files again finds the
//!   same resources instead of creating copies, and a resource whose
//!   content is unchanged gets no new version;
//! - everything that does not need the write lock happens in the caller's
//!   thread, before the write: parsing, placeholders, conditional
//!   references and `ifNoneExist` (looked up in what is committed), index
//!   rows and full text. The write then checks the conditions again and
//!   inserts;
//! - a Bundle is loaded whole, in one transaction, or not at all. The
//!   write checks every condition before its first change, so it can share
//!   a transaction with other files ([`Loader::submit`]) and still fail
//!   alone.

use std::collections::HashMap;

use hearth_model::{resource, Format, Value};
use hearth_store::search::{ParseOptions, SearchQuery};
use hearth_store::{Document, Method, PendingWrite, Store};

use crate::interaction::{Entry, Interaction, Target};
use crate::references::{self, Placeholders};
use crate::{conditional, ApiError};

/// What loading did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Resources written for the first time.
    pub created: usize,
    /// Resources that got a new version.
    pub updated: usize,
    /// Resources already stored with the same content.
    pub unchanged: usize,
    /// `ifNoneExist` entries that found their resource.
    pub existing: usize,
    pub deleted: usize,
}

impl Loaded {
    pub fn resources(&self) -> usize {
        self.created + self.updated + self.unchanged + self.existing + self.deleted
    }

    pub fn add(&mut self, other: Loaded) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.existing += other.existing;
        self.deleted += other.deleted;
    }
}

/// Loads into one store; keep one per thread (it remembers conditional
/// references it resolved).
pub struct Loader {
    store: Store,
    base: String,
    resolved: HashMap<String, String>,
}

/// A file parsed and resolved, ready to be written.
pub struct PreparedFile {
    writes: Vec<Write>,
    /// What preparing it found (`ifNoneExist` entries already stored).
    loaded: Loaded,
}

/// A file queued by [`Loader::submit`].
pub struct PendingLoad {
    write: PendingWrite<Loaded, ApiError>,
    loaded: Loaded,
}

impl PendingLoad {
    /// Blocks until the file is committed or has failed.
    pub fn wait(self) -> Result<Loaded, ApiError> {
        let mut loaded = self.loaded;
        loaded.add(self.write.wait()?);
        Ok(loaded)
    }
}

enum Write {
    Put {
        index: usize,
        id: String,
        document: Box<Document>,
        /// `ifNoneExist`, checked again inside the transaction.
        condition: Option<Box<SearchQuery>>,
        method: Method,
    },
    Delete {
        index: usize,
        resource_type: String,
        id: String,
    },
}

impl Loader {
    /// `base` is the server's base URL (absolute references under it are
    /// local).
    pub fn new(store: Store, base: &str) -> Loader {
        Loader {
            store,
            base: base.trim_end_matches('/').to_owned(),
            resolved: HashMap::new(),
        }
    }

    fn options(&self) -> ParseOptions {
        conditional::options(&self.base, &self.store)
    }

    /// Reads a JSON file: a Bundle of type transaction or batch whose
    /// entries POST, PUT or DELETE, or a single resource. It is parsed
    /// once, and its bytes dropped then (a file can be large).
    pub fn prepare_json(&mut self, json: Vec<u8>) -> Result<PreparedFile, ApiError> {
        let resource = hearth_model::parse(&json, Format::Json)?;
        drop(json);
        if resource::resource_type(&resource) == Some("Bundle") {
            self.prepare_bundle(resource)
        } else {
            let id = stable_id(None, &resource);
            let write = self.put(0, id, resource, None, Method::Put)?;
            Ok(PreparedFile {
                writes: vec![write],
                loaded: Loaded::default(),
            })
        }
    }

    fn prepare_bundle(&mut self, mut bundle: Value) -> Result<PreparedFile, ApiError> {
        if !matches!(bundle["type"].as_str(), Some("transaction" | "batch")) {
            return Err(ApiError::bad_request(
                "only transaction and batch Bundles can be loaded",
            ));
        }
        let options = self.options();
        let mut placeholders = Placeholders::default();
        let mut pending: Vec<(usize, String, Value, Option<SearchQuery>, Method)> = Vec::new();
        let mut writes: Vec<Write> = Vec::new();
        let mut loaded = Loaded::default();
        let entries = match bundle.get_mut("entry").map(Value::take) {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        };
        for (index, value) in entries.into_iter().enumerate() {
            let entry = Entry::read(index, value, &self.base, &options)?;
            let full_url = entry.full_url.clone();
            let (resource_type, id, resource, condition, method) = match entry.interaction {
                Interaction::Create {
                    resource,
                    if_none_exist,
                } => {
                    let resource_type = resource::resource_type(&resource)
                        .unwrap_or_default()
                        .to_owned();
                    let condition = if_none_exist.map(|query| *query);
                    if let Some(query) = &condition {
                        let found = self
                            .store
                            .read_with(|tx| tx.find(query, 2))
                            .map_err(|e| ApiError::from(e).in_entry(index))?;
                        if found.len() > 1 {
                            return Err(ApiError::PreconditionFailed(
                                "the ifNoneExist condition matches more than one resource".into(),
                            )
                            .in_entry(index));
                        }
                        if let Some(found) = found.into_iter().next() {
                            if let Some(url) = &full_url {
                                placeholders.insert(url, &found.resource_type, &found.id);
                            }
                            loaded.existing += 1;
                            continue;
                        }
                    }
                    let id = stable_id(full_url.as_deref(), &resource);
                    (resource_type, id, resource, condition, Method::Post)
                }
                Interaction::Update {
                    target: Target::Id(resource_type, id),
                    resource,
                    if_match: None,
                    only_create: false,
                } => (resource_type, id, resource, None, Method::Put),
                Interaction::Delete {
                    target: Target::Id(resource_type, id),
                    if_match: None,
                } => {
                    writes.push(Write::Delete {
                        index,
                        resource_type,
                        id,
                    });
                    continue;
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "an import loads POST, PUT and DELETE entries by id; \
                         send Bundles with other entries to a server (hearth import --url)",
                    )
                    .in_entry(index))
                }
            };
            if let Some(url) = &full_url {
                placeholders.insert(url, &resource_type, &id);
            }
            pending.push((index, id, resource, condition, method));
        }
        for (index, id, mut resource, condition, method) in pending {
            self.rewrite(&mut resource, &placeholders, &options)
                .map_err(|e| e.in_entry(index))?;
            writes.push(self.put(index, id, resource, condition, method)?);
        }
        Ok(PreparedFile { writes, loaded })
    }

    /// Reads resources (an NDJSON file's lines) with their own ids; one
    /// without an id gets a new one. References are taken as they are.
    pub fn prepare_ndjson(&mut self, lines: &[&[u8]]) -> Result<PreparedFile, ApiError> {
        let mut writes = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let resource = hearth_model::parse(line, Format::Json)
                .map_err(|e| ApiError::from(e).in_entry(index))?;
            let id = stable_id(None, &resource);
            writes.push(self.put(index, id, resource, None, Method::Put)?);
        }
        Ok(PreparedFile {
            writes,
            loaded: Loaded::default(),
        })
    }

    /// Writes `prepared` in a transaction of its own; any failure writes
    /// nothing.
    pub fn write_alone(&self, prepared: PreparedFile) -> Result<Loaded, ApiError> {
        let PreparedFile { writes, mut loaded } = prepared;
        loaded.add(self.store.write_alone(move |tx| apply(tx, writes))?);
        Ok(loaded)
    }

    /// Queues `prepared` to be written, maybe in a transaction shared with
    /// other files, and returns at once. If the transaction fails for
    /// another file's sake, the file fails with an `Unavailable` error and
    /// can be loaded again alone.
    pub fn submit(&self, prepared: PreparedFile) -> PendingLoad {
        let PreparedFile { writes, loaded } = prepared;
        let resources = writes.len();
        PendingLoad {
            write: self
                .store
                .write_later(resources, move |tx| apply(tx, writes)),
            loaded,
        }
    }

    /// The write of `resource` as entry `index`, with the id `id`.
    fn put(
        &self,
        index: usize,
        id: String,
        mut resource: Value,
        condition: Option<SearchQuery>,
        method: Method,
    ) -> Result<Write, ApiError> {
        if let Some(object) = resource.as_object_mut() {
            object.insert("id".into(), Value::String(id.clone()));
        }
        let document = self
            .store
            .document(resource)
            .map_err(|e| ApiError::from(e).in_entry(index))?;
        Ok(Write::Put {
            index,
            id,
            document: Box::new(document),
            condition: condition.map(Box::new),
            method,
        })
    }

    fn rewrite(
        &mut self,
        resource: &mut Value,
        placeholders: &Placeholders,
        options: &ParseOptions,
    ) -> Result<(), ApiError> {
        let store = &self.store;
        let resolved = &mut self.resolved;
        references::rewrite(resource, placeholders, &mut |reference: &str| {
            if let Some(target) = resolved.get(reference) {
                return Ok(target.clone());
            }
            // Looked up in what is committed, before the write.
            let target = conditional::resolve_reference(options, reference, |query| {
                Ok(store.read_with(|tx| tx.find(query, 2))?)
            })?;
            resolved.insert(reference.to_owned(), target.clone());
            Ok(target)
        })
        .map(|_| ())
        .map_err(ApiError::from)
    }
}

/// Writes a file's resources. Every `ifNoneExist` is checked again first,
/// before anything changes: written by someone else since it was looked
/// up, it fails the file while the transaction is still untouched. A
/// failure after that (the database's, or a write the store refuses) rolls
/// back the whole transaction, and the import loads each of its files
/// again alone.
fn apply(tx: &mut hearth_store::Tx<'_>, writes: Vec<Write>) -> Result<Loaded, ApiError> {
    for write in &writes {
        if let Write::Put {
            index,
            condition: Some(query),
            ..
        } = write
        {
            if !tx.matching(query, 1)?.is_empty() {
                return Err(ApiError::Conflict(
                    "a resource matching ifNoneExist was written meanwhile; load the file again"
                        .into(),
                )
                .in_entry(*index));
            }
        }
    }
    let mut loaded = Loaded::default();
    for write in writes {
        match write {
            Write::Put {
                index,
                id,
                document,
                method,
                ..
            } => match tx
                .update_unless_same(&id, *document, method)
                .map_err(|e| ApiError::from(e).in_entry(index))?
            {
                None => loaded.unchanged += 1,
                Some(written) if written.created => loaded.created += 1,
                Some(_) => loaded.updated += 1,
            },
            Write::Delete {
                index,
                resource_type,
                id,
            } => match tx.delete(&resource_type, &id, None) {
                Ok(_) | Err(hearth_store::StoreError::NotFound { .. }) => loaded.deleted += 1,
                Err(e) => return Err(ApiError::from(e).in_entry(index)),
            },
        }
    }
    Ok(loaded)
}

/// The id an imported resource is stored with: the uuid of a `urn:uuid:`
/// fullUrl, else its own id, else a new one.
fn stable_id(full_url: Option<&str>, resource: &Value) -> String {
    let valid = |id: &str| crate::checks::check_id(id).is_ok();
    if let Some(uuid) = full_url.and_then(|u| u.strip_prefix("urn:uuid:")) {
        if valid(uuid) {
            return uuid.to_owned();
        }
    }
    match resource::id(resource) {
        Some(id) if valid(id) => id.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}
