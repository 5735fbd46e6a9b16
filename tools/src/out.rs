//! Standard output. Everything `zongzhi` prints goes through [`out!`] and
//! [`outln!`] (the crate denies `print!`/`println!`, which panic when the
//! reader of a pipe has gone, as after `zongzhi queue | head -1`). A failed
//! write is a [`StdoutError`] passed up with `?` like any other error, so
//! destructors run (the demo's and benchmarks' node processes are stopped);
//! `main` then ends the program quietly when the pipe was closed.

use std::io::Write;

/// The exit status after the reader of standard output has gone: what a
/// shell reports for a program that SIGPIPE ended (128 + 13).
pub const CLOSED_PIPE_EXIT: u8 = 141;

/// Standard output could not be written.
#[derive(Debug)]
pub struct StdoutError(std::io::Error);

impl StdoutError {
    /// The reader of the pipe has gone (EPIPE): nothing to report.
    pub fn closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Writes formatted text to standard output.
pub fn write_fmt(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    std::io::stdout().lock().write_fmt(args).map_err(StdoutError)
}

/// Writes bytes (e.g. a CSV file the node sent) to standard output.
pub fn write_bytes(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(StdoutError)
}

/// `-` names standard output (for a file written) or standard input (for a
/// file read), wherever a command names a file, as `stats --csv -` does.
pub fn is_dash(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// The bytes of `path`, or of standard input for `-`.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    if is_dash(path) {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf).context("reading standard input")?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The text of `path`, or of standard input for `-`.
pub fn read_input_string(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes = read_input(path)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", if is_dash(path) { "standard input".into() } else { path.display().to_string() }))
}

/// Writes `bytes` to `path`, or to standard output for `-`; then says
/// what was written on standard error when the data went to standard
/// output (so a pipe gets the data alone), else on standard output.
pub fn write_output(path: &std::path::Path, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    if is_dash(path) {
        write_bytes(bytes)?;
        return Ok(());
    }
    use anyhow::Context;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    write_fmt(format_args!("wrote {what} ({} bytes) to {}\n", bytes.len(), path.display()))?;
    Ok(())
}

/// Flushes what is left of a line without its newline.
pub fn flush() -> Result<(), StdoutError> {
    std::io::stdout().lock().flush().map_err(StdoutError)
}

/// Whether `e` is (or was caused by) the reader of standard output having gone.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<StdoutError>().is_some_and(StdoutError::closed_pipe))
}

/// `print!` that returns `Result<(), StdoutError>` instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write_fmt(format_args!($($arg)*))
    };
}

/// `println!` that returns `Result<(), StdoutError>` instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::out::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_told_from_other_errors() {
        let closed: anyhow::Error = StdoutError(std::io::ErrorKind::BrokenPipe.into()).into();
        assert!(is_closed_pipe(&closed.context("printing the queue")));
        let full: anyhow::Error = StdoutError(std::io::Error::other("no space left on device")).into();
        assert!(!is_closed_pipe(&full));
        // A broken connection to the node is not standard output.
        let socket: anyhow::Error = std::io::Error::from(std::io::ErrorKind::BrokenPipe).into();
        assert!(!is_closed_pipe(&socket));
    }
}
