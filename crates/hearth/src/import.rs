//! `hearth import PATH…`: loads Bundles (`.json`, `.json.gz`, `.json.bz2`),
//! NDJSON files (`.ndjson`, compressed alike) and whole folders of them into
//! the configured database, or, with `--url`, uploads them to any FHIR
//! server as transaction and batch Bundles.
//!
//! Synthea's output loads as it is: its hospital and practitioner files are
//! loaded first (its patients' Bundles refer to them by conditional
//! references), then the rest on several threads, each reading,
//! decompressing, parsing and preparing its files while the store writes
//! what the others prepared. Each file is loaded whole or not at all; a
//! failed file is reported and the others go on.

use std::collections::VecDeque;
use std::io::{IsTerminal, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hearth_http::bundle::{Loaded, Loader};
use hearth_store::Store;

use crate::config::{Config, ServeArgs};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Database and other settings, as for `hearth serve`.
    #[command(flatten)]
    pub settings: ServeArgs,
    /// Upload to the FHIR server at this base URL (with transaction and
    /// batch Bundles) instead of writing the database.
    #[arg(long)]
    pub url: Option<String>,
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
                .unwrap_or_else(|| format!("http://{}", config.listen)),
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
    let mut out = Vec::with_capacity(size * 4);
    let name = path.to_string_lossy();
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
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (queue, sender, target) = (queue.clone(), sender.clone(), target.clone());
            std::thread::spawn(move || {
                let mut loader = LoaderFor::new(&target);
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some(job) = job else { break };
                    if sender.send(loader.load(job)).is_err() {
                        break;
                    }
                }
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
    let result = match kind {
        Kind::Bundle => loader.load_json(bytes),
        Kind::Ndjson => loader.load_ndjson(&lines(&bytes)),
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
    started: Instant,
    shown: Instant,
    total_bytes: u64,
    bytes: u64,
    files: usize,
    files_done: usize,
    failed: usize,
    resources: usize,
    terminal: bool,
}

impl Progress {
    fn new(total_bytes: u64, files: usize) -> Progress {
        Progress {
            started: Instant::now(),
            shown: Instant::now(),
            total_bytes,
            bytes: 0,
            files,
            files_done: 0,
            failed: 0,
            resources: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, last: bool) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if !last && self.shown.elapsed() < every {
            return;
        }
        self.shown = Instant::now();
        let share = if self.total_bytes == 0 {
            1.0
        } else {
            self.bytes as f64 / self.total_bytes as f64
        };
        let width = 30;
        let filled = (share * width as f64).round() as usize;
        let rate = self.resources as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "[{}{}] {:>3.0}%  {} resources  {:.0}/s  {}/{} files{}",
            "#".repeat(filled.min(width)),
            ".".repeat(width - filled.min(width)),
            share * 100.0,
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
        let mut err = std::io::stderr();
        let _ = if self.terminal {
            write!(err, "\r{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}
