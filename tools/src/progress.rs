//! Progress bars for commands that can run for more than a few seconds
//! (a large export, the benchmarks' loads). Drawn on standard error, and
//! only when it is a terminal: a script, a pipe or a log file sees nothing
//! of them.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars are drawn: standard error is a terminal.
pub fn visible() -> bool {
    std::io::stderr().is_terminal()
}

fn target() -> ProgressDrawTarget {
    if visible() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() }
}

/// A bar counting `len` items of `what` (e.g. "cases").
pub fn items(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), target());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A byte counter for a download of unknown or known length.
pub fn bytes(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, target());
    let template = if len.is_some() { "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})" } else { "{spinner} {msg} {bytes} ({bytes_per_sec})" };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A spinner with a message, for a wait whose length is unknown.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
