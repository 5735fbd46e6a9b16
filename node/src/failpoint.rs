//! Named points where a test makes the process die on purpose, as a crash
//! or a SIGKILL would: `ZONGZHI_FAILPOINT=<name>` aborts the process the
//! first time it reaches `<name>`. Unset (always, in production) it costs
//! one comparison. The crash tests of the schema migrations use it
//! (`tests/tests/upgrade_store.rs`).

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var("ZONGZHI_FAILPOINT").ok().filter(|s| !s.is_empty())).as_deref()
}

/// Aborts the process if `name` is the armed failpoint.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        eprintln!("failpoint {name}: the process dies here on purpose (ZONGZHI_FAILPOINT)");
        std::process::abort();
    }
}
