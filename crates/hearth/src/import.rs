//! `hearth import PATH…`: loads Bundles (`.json`, `.json.gz`, `.json.bz2`),
//! NDJSON files (`.ndjson`, compressed alike) and whole folders of them into
//! the configured database, or, with `--url`, uploads them to any FHIR
//! server as transaction and batch Bundles.
//!
//! Synthea's output loads as it is: its hospital and practitioner files are
//! loaded first (its patients' Bundles refer to them by conditional
//! references), then the rest on several threads, each reading,
//! decompressing, parsing and preparing its files while the store writes
//! what the others prepared. Files prepared while the store is busy share
//! its next transaction, up to a few thousand resources. Each file is
//! loaded whole or not at all; a failed file is reported and the others go
//! on.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hearth_api::load::{Loaded, Loader, PendingLoad, PreparedFile};
use hearth_store::Store;

use crate::config::{Config, ServeArgs};
use crate::progress::Bar;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Database and other settings, as for `hearth serve`.
    #[command(flatten)]
    pub settings: ServeArgs,
    /// Upload to the FHIR server at this base URL (with transaction and
    /// batch Bundles) instead of writing the database.
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the bearer access token to send (a server with
    /// auth = "smart" needs one with write scopes, e.g. from `hearth
    /// token --scope "system/*.cu"`).
    #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Threads that read and prepare files at once [default: cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Files and folders to load.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot open the database: {0}")]
    Store(#[from] hearth_store::StoreError),
    #[error("{path}: {message}")]
    Path { path: PathBuf, message: String },
    #[error("no files to import in the paths given")]
    NothingToImport,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub loaded: Loaded,
    /// Entries sent (with `--url`, where the server's own counts are not known).
    pub uploaded: usize,
    pub failed: Vec<(PathBuf, String)>,
    /// How long building the indexes a first load deferred took (part of
    /// `elapsed`).
    pub indexes_built: Option<Duration>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn resources(&self) -> usize {
        self.loaded.resources() + self.uploaded
    }

    pub fn rate(&self) -> f64 {
        self.resources() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} of {} files in {:.1} s: {} resources, {:.0} resources/s",
            self.files - self.failed.len(),
            self.files,
            self.elapsed.as_secs_f64(),
            self.resources(),
            self.rate()
        )?;
        if self.uploaded == 0 {
            let l = &self.loaded;
            writeln!(
                f,
                "  {} created, {} updated, {} unchanged, {} found by ifNoneExist, {} deleted",
                l.created, l.updated, l.unchanged, l.existing, l.deleted
            )?;
        }
        if let Some(built) = self.indexes_built {
            writeln!(
                f,
                "  search indexes built at the end in {:.1} s (the database was empty)",
                built.as_secs_f64()
            )?;
        }
        for (path, message) in &self.failed {
            writeln!(f, "  FAILED {}: {message}", path.display())?;
        }
        Ok(())
    }
}

/// A file to load and its size (for the progress bar).
struct Job {
    path: PathBuf,
    bytes: u64,
}

/// Where files go: the database, or another server.
enum Target {
    Store {
        store: Store,
        base: String,
    },
    Server {
        base: String,
        client: reqwest::blocking::Client,
    },
}

/// `Authorization: Bearer <token>` for every upload, marked sensitive so
/// that no log or debug output shows it.
fn bearer(token: Option<&str>) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

pub fn run(args: &ImportArgs, config: &Config) -> Result<Summary, ImportError> {
    let jobs = files(&args.paths)?;
    if jobs.is_empty() {
        return Err(ImportError::NothingToImport);
    }
    let target = match &args.url {
        Some(url) => Target::Server {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(600))
                .default_headers(bearer(args.token.as_deref()).map_err(|message| {
                    ImportError::Path {
                        path: PathBuf::from(url),
                        message,
                    }
                })?)
                .build()
                .map_err(|e| ImportError::Path {
                    path: PathBuf::from(url),
                    message: e.to_string(),
                })?,
        },
        None => Target::Store {
            store: Store::open(&config.database(), &config.store)?,
            base: config
                .base_url
                .clone()
                .unwrap_or_else(|| match (config.listen, &config.tls) {
                    (Some(addr), _) => format!("http://{addr}"),
                    (None, Some(tls)) => format!("https://{}", tls.listen),
                    (None, None) => "http://localhost".to_owned(),
                }),
        },
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    // A first load into an empty store builds its secondary indexes at the
    // end, which costs a fraction of keeping them up to date row by row.
    let deferred = match &target {
        Target::Store { store, .. } => store.begin_bulk_load()?,
        Target::Server { .. } => false,
    };
    let target = Arc::new(target);
    let mut summary = load(target.clone(), jobs, threads);
    if let (true, Target::Store { store, .. }) = (deferred, &*target) {
        eprintln!("building the search indexes …");
        let started = Instant::now();
        store.finish_bulk_load()?;
        let built = started.elapsed();
        summary.indexes_built = Some(built);
        summary.elapsed += built;
    }
    Ok(summary)
}

/// Every loadable file under `paths`: Synthea's hospital and practitioner
/// files first, then the others by name.
fn files(paths: &[PathBuf]) -> Result<Vec<Job>, ImportError> {
    let mut found = Vec::new();
    for path in paths {
        collect(path, &mut found)?;
    }
    found.sort_by_key(|job| (!is_first(&job.path), job.path.clone()));
    Ok(found)
}

fn collect(path: &Path, found: &mut Vec<Job>) -> Result<(), ImportError> {
    let error = |e: std::io::Error| ImportError::Path {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(error)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(error)? {
            let entry = entry.map_err(error)?;
            let child = entry.path();
            if child.is_dir() || Kind::of(&child).is_some() {
                collect(&child, found)?;
            }
        }
    } else if Kind::of(path).is_some() {
        found.push(Job {
            path: path.to_owned(),
            bytes: meta.len(),
        });
    } else {
        return Err(ImportError::Path {
            path: path.to_owned(),
            message: "not a .json, .ndjson (optionally .gz or .bz2) file or a folder".into(),
        });
    }
    Ok(())
}

/// Synthea writes the organizations and practitioners its patients refer
/// to in files of their own, which must be loaded first.
fn is_first(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.contains("hospitalInformation") || name.contains("practitionerInformation")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bundle,
    Ndjson,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        let name = path.file_name()?.to_str()?;
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".bz2"))
            .unwrap_or(name);
        if name.ends_with(".ndjson") {
            Some(Kind::Ndjson)
        } else if name.ends_with(".json") {
            Some(Kind::Bundle)
        } else {
            None
        }
    }
}

/// The file's bytes, decompressed.
fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let name = path.to_string_lossy();
    // Compressed files grow about fourfold; a plain file is read as it is.
    let compressed = name.ends_with(".bz2") || name.ends_with(".gz");
    let mut out = Vec::with_capacity(if compressed { size * 4 } else { size });
    if name.ends_with(".bz2") {
        bzip2::read::BzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut out)?;
    } else if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut out)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut out)?;
    }
    Ok(out)
}

/// The outcome of one file.
struct Done {
    path: PathBuf,
    bytes: u64,
    result: Result<Counted, String>,
}

enum Counted {
    Loaded(Loaded),
    Uploaded(usize),
}

fn load(target: Arc<Target>, jobs: Vec<Job>, threads: usize) -> Summary {
    let started = Instant::now();
    let total_bytes: u64 = jobs.iter().map(|j| j.bytes).sum();
    let files = jobs.len();
    let (first, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| is_first(&j.path));
    let (sender, receiver) = mpsc::channel::<Done>();
    let mut progress = Progress::new(total_bytes, files);
    let mut summary = Summary {
        files,
        ..Summary::default()
    };
    let record = |done: Done, progress: &mut Progress, summary: &mut Summary| {
        progress.bytes += done.bytes;
        progress.files_done += 1;
        match done.result {
            Ok(Counted::Loaded(loaded)) => {
                progress.resources += loaded.resources();
                summary.loaded.add(loaded);
            }
            Ok(Counted::Uploaded(n)) => {
                progress.resources += n;
                summary.uploaded += n;
            }
            Err(message) => {
                progress.failed += 1;
                summary.failed.push((done.path, message));
            }
        }
        progress.show(false);
    };
    // The files others refer to, one by one, before anything else.
    let mut loader = LoaderFor::new(&target);
    for job in first {
        let done = loader.load(job);
        record(done, &mut progress, &mut summary);
    }
    let queue = Arc::new(Mutex::new(VecDeque::from(rest)));
    let budget = Arc::new(Budget::new(IN_FLIGHT_BYTES));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, sender, target) = (queue.clone(), sender.clone(), target.clone());
            let budget = budget.clone();
            std::thread::spawn(move || {
                let mut worker = Worker {
                    loader: LoaderFor::new(&target),
                    queued: VecDeque::new(),
                    budget: &budget,
                    sender,
                };
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(job) = job else { break };
                    if worker.take(job).is_err() {
                        break;
                    }
                }
                let _ = worker.drain();
            })
        })
        .collect();
    drop(sender);
    loop {
        match receiver.recv_timeout(Duration::from_millis(250)) {
            Ok(done) => record(done, &mut progress, &mut summary),
            Err(mpsc::RecvTimeoutError::Timeout) => progress.show(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
    progress.show(true);
    summary.elapsed = started.elapsed();
    summary
}

/// Files a thread may have queued for the store's writer at once: enough
/// for its next transaction to take in several.
const QUEUED_PER_THREAD: usize = 2;

/// The bytes of files read but not yet committed, across the threads. A
/// parsed file takes several times its size in memory until it is
/// written; without a bound, two large files at once (Synthea's largest
/// are 9 and 11 MB) pushed the import over 300 MB.
const IN_FLIGHT_BYTES: u64 = 16 << 20;

/// The files in flight, counted in bytes. A file is let in when it fits in
/// what is left, or when nothing else is in flight (so any file loads).
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
    limit: u64,
}

impl Budget {
    fn new(limit: u64) -> Budget {
        Budget {
            used: Mutex::new(0),
            freed: Condvar::new(),
            limit,
        }
    }

    fn fits(&self, used: u64, bytes: u64) -> bool {
        used == 0 || used + bytes <= self.limit
    }

    /// Takes `bytes` if they fit now.
    fn try_take(&self, bytes: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let fits = self.fits(*used, bytes);
        if fits {
            *used += bytes;
        }
        fits
    }

    /// Takes `bytes`, waiting until they fit.
    fn take(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while !self.fits(*used, bytes) {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
    }

    fn give_back(&self, bytes: u64) {
        *self.used.lock().unwrap_or_else(|e| e.into_inner()) -= bytes;
        self.freed.notify_all();
    }
}

/// A loading thread: it reads and prepares files and queues them for the
/// store's writer, and reports each when it is written.
struct Worker<'a> {
    loader: LoaderFor<'a>,
    /// Files queued for the writer, oldest first, with the bytes they hold
    /// of the budget.
    queued: VecDeque<(Job, PendingLoad, u64)>,
    budget: &'a Budget,
    sender: mpsc::Sender<Done>,
}

/// The main thread stopped listening.
struct Stopped;

impl Worker<'_> {
    /// Loads or queues `job`. A thread that must wait for the budget
    /// first waits for its own queued files: they are what it holds of the
    /// budget, and holding them while waiting could leave every thread
    /// waiting for the others.
    fn take(&mut self, job: Job) -> Result<(), Stopped> {
        let LoaderFor::Store(_) = self.loader else {
            let done = self.loader.load(job);
            return self.report(done);
        };
        let bytes = match read(&job.path) {
            Ok(bytes) => bytes,
            Err(e) => return self.report(job.failed(format!("cannot read it: {e}"))),
        };
        let size = bytes.len() as u64;
        if !self.budget.try_take(size) {
            self.drain()?;
            self.budget.take(size);
        }
        match self.loader.queue(&job, bytes) {
            Ok(pending) => self.queued.push_back((job, pending, size)),
            Err(message) => {
                self.budget.give_back(size);
                return self.report(job.failed(message));
            }
        }
        if self.queued.len() > QUEUED_PER_THREAD {
            self.finish_oldest()?;
        }
        Ok(())
    }

    /// Waits for every file this thread queued.
    fn drain(&mut self) -> Result<(), Stopped> {
        while !self.queued.is_empty() {
            self.finish_oldest()?;
        }
        Ok(())
    }

    fn finish_oldest(&mut self) -> Result<(), Stopped> {
        let Some((job, pending, size)) = self.queued.pop_front() else {
            return Ok(());
        };
        let done = self.loader.finish(job, pending);
        self.budget.give_back(size);
        self.report(done)
    }

    fn report(&self, done: Done) -> Result<(), Stopped> {
        self.sender.send(done).map_err(|_| Stopped)
    }
}

impl Job {
    fn failed(self, message: String) -> Done {
        Done {
            path: self.path,
            bytes: self.bytes,
            result: Err(message),
        }
    }
}

/// A thread's way to its target.
enum LoaderFor<'t> {
    Store(Loader),
    Server(&'t str, &'t reqwest::blocking::Client),
}

impl<'t> LoaderFor<'t> {
    fn new(target: &'t Target) -> LoaderFor<'t> {
        match target {
            Target::Store { store, base } => LoaderFor::Store(Loader::new(store.clone(), base)),
            Target::Server { base, client } => LoaderFor::Server(base, client),
        }
    }

    /// Prepares a file's bytes and queues them for the store's writer.
    fn queue(&mut self, job: &Job, bytes: Vec<u8>) -> Result<PendingLoad, String> {
        let LoaderFor::Store(loader) = self else {
            return Err("not loading into a store".into());
        };
        let prepared = prepare(loader, Kind::of(&job.path).unwrap_or(Kind::Bundle), bytes)?;
        Ok(loader.submit(prepared))
    }

    /// Waits for a queued file. One that failed in a transaction it shared
    /// is loaded again alone: another file may have been the cause, and
    /// alone it fails only for its own.
    fn finish(&mut self, job: Job, pending: PendingLoad) -> Done {
        match pending.wait() {
            Ok(loaded) => Done {
                path: job.path,
                bytes: job.bytes,
                result: Ok(Counted::Loaded(loaded)),
            },
            Err(_) => self.load(job),
        }
    }

    fn load(&mut self, job: Job) -> Done {
        let result = read(&job.path)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|bytes| {
                let kind = Kind::of(&job.path).unwrap_or(Kind::Bundle);
                match self {
                    LoaderFor::Store(loader) => {
                        load_into_store(loader, kind, bytes).map(Counted::Loaded)
                    }
                    LoaderFor::Server(base, client) => {
                        upload(client, base, kind, &bytes).map(Counted::Uploaded)
                    }
                }
            });
        Done {
            path: job.path,
            bytes: job.bytes,
            result,
        }
    }
}

fn load_into_store(loader: &mut Loader, kind: Kind, bytes: Vec<u8>) -> Result<Loaded, String> {
    let prepared = prepare(loader, kind, bytes)?;
    loader.write_alone(prepared).map_err(|e| e.to_string())
}

fn prepare(loader: &mut Loader, kind: Kind, bytes: Vec<u8>) -> Result<PreparedFile, String> {
    let result = match kind {
        Kind::Bundle => loader.prepare_json(bytes),
        Kind::Ndjson => loader.prepare_ndjson(&lines(&bytes)),
    };
    result.map_err(|e| e.to_string())
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// Sends a file to a FHIR server: a Bundle as it is, NDJSON lines as a
/// transaction of updates (or creates, for resources without an id).
fn upload(
    client: &reqwest::blocking::Client,
    base: &str,
    kind: Kind,
    bytes: &[u8],
) -> Result<usize, String> {
    let parse = |json: &[u8]| -> Result<serde_json::Value, String> {
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))
    };
    // Parsed once: a Bundle is sent as it is, resources in a transaction.
    let resources: Vec<serde_json::Value> = match kind {
        Kind::Bundle => match parse(bytes)? {
            bundle if bundle["resourceType"] == "Bundle" => {
                let entries = bundle["entry"].as_array().map_or(0, Vec::len);
                return post(client, base, bytes.to_vec(), entries);
            }
            resource => vec![resource],
        },
        Kind::Ndjson => lines(bytes)
            .into_iter()
            .map(parse)
            .collect::<Result<_, _>>()?,
    };
    let entries: Vec<serde_json::Value> = resources
        .into_iter()
        .map(|resource| {
            let resource_type = resource["resourceType"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let request = match resource["id"].as_str() {
                Some(id) => {
                    serde_json::json!({"method": "PUT", "url": format!("{resource_type}/{id}")})
                }
                None => serde_json::json!({"method": "POST", "url": resource_type}),
            };
            serde_json::json!({"resource": resource, "request": request})
        })
        .collect();
    let n = entries.len();
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    post(client, base, bundle.to_string().into_bytes(), n)
}

/// POSTs a Bundle of `entries` entries to the server's base; a batch
/// answers 200 with each entry's own status, all of which must succeed.
fn post(
    client: &reqwest::blocking::Client,
    base: &str,
    body: Vec<u8>,
    entries: usize,
) -> Result<usize, String> {
    let response = client
        .post(format!("{base}/"))
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "application/fhir+json")
        .header("Prefer", "return=minimal")
        .body(body)
        .send()
        .map_err(|e| format!("the server did not answer: {e}"))?;
    let status = response.status();
    let text = response.text().unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "the server answered {status}: {}",
            first_issue(&text)
        ));
    }
    // A batch answers 200 with each entry's own status.
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let failed: Vec<String> = answer["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["response"]["status"].as_str())
                .filter(|s| !s.starts_with('2'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !failed.is_empty() {
        return Err(format!(
            "{} entries failed ({})",
            failed.len(),
            failed.join(", ")
        ));
    }
    Ok(entries)
}

fn first_issue(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["issue"][0]["diagnostics"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

/// The progress line on standard error: a bar by bytes read, resources and
/// their rate, files.
struct Progress {
    bar: Bar,
    total_bytes: u64,
    bytes: u64,
    files: usize,
    files_done: usize,
    failed: usize,
    resources: usize,
}

impl Progress {
    fn new(total_bytes: u64, files: usize) -> Progress {
        Progress {
            bar: Bar::new(),
            total_bytes,
            bytes: 0,
            files,
            files_done: 0,
            failed: 0,
            resources: 0,
        }
    }

    fn show(&mut self, last: bool) {
        let share = if self.total_bytes == 0 {
            1.0
        } else {
            self.bytes as f64 / self.total_bytes as f64
        };
        let rate = self.resources as f64 / self.bar.elapsed().as_secs_f64().max(1e-9);
        let detail = format!(
            "{} resources  {:.0}/s  {}/{} files{}",
            self.resources,
            rate,
            self.files_done,
            self.files,
            if self.failed > 0 {
                format!("  {} failed", self.failed)
            } else {
                String::new()
            }
        );
        self.bar.show(share, &detail, last);
    }
}
