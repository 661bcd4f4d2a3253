//! Where log lines go: standard output, through a buffer. A server logs a
//! line per request; written one by one, each line is a system call on the
//! request's thread. Here lines gather in one buffer, written out when it
//! holds 32 KiB, every 100 ms, and at exit; a warning or an error is
//! written at once, with whatever is before it.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Written out when it holds this much.
const FULL: usize = 32 * 1024;
/// The longest a line waits.
const EVERY: Duration = Duration::from_millis(100);

/// The buffer, shared by every thread that logs.
#[derive(Clone, Default)]
pub struct Buffered {
    lines: Arc<Mutex<Vec<u8>>>,
}

impl Buffered {
    /// A buffer, and the thread that empties it every 100 ms until the
    /// [`Flush`] is dropped (which empties it a last time).
    pub fn start() -> (Buffered, Flush) {
        let buffered = Buffered::default();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hearth-logs".into())
            .spawn({
                let buffered = buffered.clone();
                move || {
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(EVERY)
                    {
                        buffered.flush();
                    }
                    buffered.flush();
                }
            })
            .ok();
        (
            buffered.clone(),
            Flush {
                stop: Some(stop),
                thread,
                buffered,
            },
        )
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked while holding it left whole lines.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush(&self) {
        let mut lines = self.lock();
        write_out(&mut lines);
    }
}

/// Writes and empties `lines`; the lock is held, so lines keep their order.
fn write_out(lines: &mut Vec<u8>) {
    if lines.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    // Nothing can be done of a standard output that refuses: dropped.
    let _ = stdout.write_all(lines).and_then(|()| stdout.flush());
    lines.clear();
}

/// Empties the buffer a last time when dropped (hold it in `main`).
pub struct Flush {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    buffered: Buffered,
}

impl Drop for Flush {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.buffered.flush();
    }
}

/// One line's writer.
pub struct Line<'a> {
    buffered: &'a Buffered,
    at_once: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.buffered.lock();
        lines.extend_from_slice(bytes);
        if lines.len() >= FULL {
            write_out(&mut lines);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.at_once {
            self.buffered.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            buffered: self,
            at_once: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            buffered: self,
            at_once: *meta.level() <= Level::WARN,
        }
    }
}
