//! The progress bar of long commands (`hearth import`, `hearth backup`) on
//! standard error: redrawn in place on a terminal, a line every few seconds
//! otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub(crate) struct Bar {
    started: Instant,
    shown: Instant,
    terminal: bool,
}

impl Bar {
    pub(crate) fn new() -> Bar {
        Bar {
            started: Instant::now(),
            shown: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Time since the bar was made.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Draws `share` (0 to 1) of the work done and `detail`, unless it was
    /// drawn moments ago; always when `last`.
    pub(crate) fn show(&mut self, share: f64, detail: &str, last: bool) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if !last && self.shown.elapsed() < every {
            return;
        }
        self.shown = Instant::now();
        let width = 30;
        let filled = ((share.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
        let line = format!(
            "[{}{}] {:>3.0}%  {detail}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            share.clamp(0.0, 1.0) * 100.0,
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
