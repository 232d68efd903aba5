//! What a command is waiting for, and for how long, on stderr: a spinner line on a terminal;
//! with `--progress` where stderr is not a terminal, one plain line per step and another
//! every few seconds while a step lasts (for logs and CI); nothing otherwise, nor with
//! `--json` (unless `--progress` asks for it). stdout is never touched.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line repeats a step that lasts.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// Not at all.
    Off,
    /// A spinner line redrawn in place (stderr is a terminal).
    Spinner,
    /// Plain lines (`--progress` where stderr is not a terminal).
    Lines,
}

impl Show {
    /// What `--json` and `--progress` make of this stderr.
    pub(crate) fn choose(json: bool, forced: bool) -> Self {
        Self::pick(json, forced, std::io::stderr().is_terminal())
    }

    fn pick(json: bool, forced: bool, terminal: bool) -> Self {
        match (forced, terminal, json) {
            (true, true, _) => Self::Spinner,
            (true, false, _) => Self::Lines,
            (false, true, false) => Self::Spinner,
            (false, _, _) => Self::Off,
        }
    }
}

/// One wait in progress; cleared (spinner) or closed (lines) when dropped.
pub(crate) struct Progress {
    inner: Inner,
}

enum Inner {
    Off,
    Bar(ProgressBar),
    Lines(Arc<Lines>, Option<JoinHandle<()>>),
}

struct Lines {
    started: Instant,
    /// The step, when it began, and whether the wait is over.
    state: Mutex<(String, Instant, bool)>,
    wake: Condvar,
}

impl Lines {
    fn print(&self, msg: &str, since: Option<Instant>) {
        let now = self.started.elapsed();
        let line = match since {
            Some(s) => format!(
                "[{}] still {msg} ({} so far)",
                elapsed(now),
                elapsed(s.elapsed())
            ),
            None => format!("[{}] {msg}", elapsed(now)),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn heartbeat(self: Arc<Self>) {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if guard.2 {
                return;
            }
            let (g, timeout) = self
                .wake
                .wait_timeout(guard, HEARTBEAT)
                .unwrap_or_else(PoisonError::into_inner);
            guard = g;
            if timeout.timed_out() && !guard.2 {
                self.print(&guard.0, Some(guard.1));
            }
        }
    }
}

/// `1.2s`, `42s`, `3m05s`.
pub(crate) fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl Progress {
    /// Starts showing `msg` (what is awaited) as `show` says.
    pub(crate) fn start(show: Show, msg: impl Into<String>) -> Self {
        let msg = msg.into();
        let inner = match show {
            Show::Off => Inner::Off,
            Show::Spinner => {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_message(msg);
                b.enable_steady_tick(Duration::from_millis(120));
                Inner::Bar(b)
            }
            Show::Lines => {
                let lines = Arc::new(Lines {
                    started: Instant::now(),
                    state: Mutex::new((msg.clone(), Instant::now(), false)),
                    wake: Condvar::new(),
                });
                lines.print(&msg, None);
                let beat = Arc::clone(&lines);
                let handle = std::thread::Builder::new()
                    .name("progress".into())
                    .spawn(move || beat.heartbeat())
                    .ok();
                Inner::Lines(lines, handle)
            }
        };
        Self { inner }
    }

    /// The next step of the wait (a plain line only when it changed).
    pub(crate) fn set(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.inner {
            Inner::Off => {}
            Inner::Bar(b) => b.set_message(msg),
            Inner::Lines(l, _) => {
                let mut s = l.state.lock().unwrap_or_else(PoisonError::into_inner);
                if s.0 != msg {
                    l.print(&msg, None);
                    *s = (msg, Instant::now(), false);
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Off => {}
            Inner::Bar(b) => b.finish_and_clear(),
            Inner::Lines(l, handle) => {
                l.state.lock().unwrap_or_else(PoisonError::into_inner).2 = true;
                l.wake.notify_all();
                if let Some(h) = handle.take() {
                    let _ = h.join();
                }
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "[{}] done",
                    elapsed(l.started.elapsed())
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_only_on_a_terminal_or_when_asked() {
        assert_eq!(Show::pick(false, false, true), Show::Spinner);
        assert_eq!(Show::pick(true, false, true), Show::Off);
        assert_eq!(Show::pick(false, false, false), Show::Off);
        assert_eq!(Show::pick(true, false, false), Show::Off);
        assert_eq!(Show::pick(false, true, false), Show::Lines);
        assert_eq!(Show::pick(true, true, false), Show::Lines);
        assert_eq!(Show::pick(true, true, true), Show::Spinner);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(elapsed(Duration::from_millis(1234)), "1.2s");
        assert_eq!(elapsed(Duration::from_secs(42)), "42s");
        assert_eq!(elapsed(Duration::from_secs(185)), "3m05s");
    }
}
