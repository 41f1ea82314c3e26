//! What the demo shows while it runs: events on standard output, and the
//! workload's progress on standard error, as a bar on a terminal or as a
//! plain line every few seconds otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often a plain progress line is printed when there is no terminal.
const PLAIN_INTERVAL: Duration = Duration::from_secs(3);

/// The demo's output while it runs.
pub struct Progress {
    started: Instant,
    /// Shown while the workload runs, on a terminal only.
    bar: Mutex<Option<ProgressBar>>,
    last_plain: Mutex<Instant>,
}

impl Progress {
    /// Output for a run that starts now; the bar appears with [`Progress::start_workload`].
    pub fn new() -> Progress {
        let started = Instant::now();
        Progress {
            started,
            bar: Mutex::new(None),
            last_plain: Mutex::new(started),
        }
    }

    /// Shows the workload's progress from now for `duration`.
    pub fn start_workload(&self, duration: Duration) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        )
        .expect("the template is valid");
        let bar = ProgressBar::new(duration.as_millis() as u64).with_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        *lock(&self.bar) = Some(bar);
    }

    /// Prints an event line, stamped with the time since the start.
    pub fn event(&self, text: &str) {
        let line = format!("[{:>5.1}s] {text}", self.started.elapsed().as_secs_f64());
        match &*lock(&self.bar) {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Updates the progress: `done` of the workload's duration, with a
    /// status message.
    pub fn update(&self, done: Duration, message: String) {
        if let Some(bar) = &*lock(&self.bar) {
            bar.set_position(done.as_millis() as u64);
            bar.set_message(message);
            return;
        }
        let mut last = lock(&self.last_plain);
        if last.elapsed() >= PLAIN_INTERVAL {
            *last = Instant::now();
            eprintln!("[{:>5.1}s] {message}", self.started.elapsed().as_secs_f64());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_and_clear();
        }
    }
}

/// Locks a mutex that a panic elsewhere may have poisoned: the display
/// state inside stays usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
