//! Progress bars for the long commands of `zongzhi-node` (`reindex`,
//! `verify`, `export parquet`, `backup`): minutes at a city's volume.
//! Drawn on standard error only when it is a terminal (a unit's journal, a
//! pipe or a test sees nothing). The work reports through [`phase`] and
//! [`set`]/[`inc`], which do nothing unless the command runs it inside
//! [`shown`]: the store and the ledger never know whether anyone watches.

use std::cell::RefCell;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

thread_local! {
    static BAR: RefCell<Option<ProgressBar>> = const { RefCell::new(None) };
}

/// Runs `work` with a progress bar on this thread (hidden when standard
/// error is not a terminal), cleared when it returns.
pub fn shown<T>(work: impl FnOnce() -> T) -> T {
    let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    BAR.with(|b| *b.borrow_mut() = Some(bar.clone()));
    let out = work();
    BAR.with(|b| *b.borrow_mut() = None);
    bar.finish_and_clear();
    out
}

fn with(f: impl FnOnce(&ProgressBar)) {
    BAR.with(|b| {
        if let Some(bar) = b.borrow().as_ref() {
            f(bar)
        }
    });
}

/// A new stretch of work: `total` items of `what` (e.g. "records").
pub fn phase(what: &str, total: u64) {
    with(|b| {
        b.set_message(what.to_string());
        b.set_length(total);
        b.set_position(0);
    });
}

/// A wait of unknown length (the running node taking a checkpoint).
pub fn waiting(what: &str) {
    with(|b| {
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            b.set_style(style);
        }
        b.set_message(what.to_string());
    });
}

/// `done` items of the current phase are done.
pub fn set(done: u64) {
    with(|b| b.set_position(done));
}

/// `n` more items of the current phase are done.
pub fn inc(n: u64) {
    with(|b| b.inc(n));
}

/// Whether a bar is being drawn on this thread (tests).
pub fn active() -> bool {
    BAR.with(|b| b.borrow().as_ref().is_some_and(|bar| !bar.is_hidden()))
}
