//! Which release this build is, and what every release reads, writes and
//! speaks: `releases.toml` at the repository's root, compiled in. The last
//! entry is this build's; a test keeps it equal to what the code does
//! (record formats, store schema, sync protocols).

use std::sync::LazyLock;

use serde::Deserialize;

/// One release as `releases.toml` states it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    /// The commit the release was built from (empty for this build's own,
    /// until it is tagged).
    pub commit: String,
    /// Record formats read: oldest, newest.
    pub formats: (u8, u8),
    /// The newest format it signs once the city's gate allows it.
    pub write: u8,
    /// Store schemas: the oldest it opens (migrating it), its own.
    pub schemas: (u32, u32),
    /// Sync protocol versions, newest first.
    pub protocols: Vec<u32>,
    /// The oldest release it syncs with.
    pub oldest_peer: String,
    pub notes: String,
}

#[derive(Deserialize)]
struct File {
    release: Vec<Release>,
}

static RELEASES: LazyLock<Vec<Release>> = LazyLock::new(|| match toml::from_str::<File>(include_str!("../../releases.toml")) {
    Ok(f) if !f.release.is_empty() => f.release,
    Ok(_) => panic!("releases.toml lists no release"),
    Err(e) => panic!("releases.toml: {e}"),
});

/// Every release, oldest first.
pub fn all() -> &'static [Release] {
    &RELEASES
}

/// This build's release (the last entry).
pub fn current() -> &'static Release {
    let all = all();
    &all[all.len() - 1]
}

/// This build's version, e.g. `0.2.0`.
pub fn version() -> &'static str {
    &current().version
}

/// The oldest release whose binary opens a directory of `schema`, if any
/// listed release does.
pub fn for_schema(schema: u32) -> Option<&'static Release> {
    all().iter().find(|r| r.schemas.0 <= schema && schema <= r.schemas.1)
}

/// The oldest release that reads record `format`.
pub fn for_format(format: u8) -> Option<&'static Release> {
    all().iter().find(|r| r.formats.0 <= format && format <= r.formats.1)
}

/// The oldest release that speaks protocol `version`.
pub fn for_protocol(version: u32) -> Option<&'static Release> {
    all().iter().find(|r| r.protocols.contains(&version))
}

/// What a release to install is called in a message: the release that
/// reads `format`, or "a release newer than this one".
pub fn reading_format(format: u8) -> String {
    match for_format(format) {
        Some(r) => format!("{} or later", r.version),
        None => format!("a release newer than {}", version()),
    }
}

/// `zongzhi-node --version`: the release and what it reads, writes and
/// speaks.
pub fn long_version() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(version_text);
    &TEXT
}

fn version_text() -> String {
    let r = current();
    let alpns: Vec<String> = r.protocols.iter().map(|v| zongzhi_protocol::sync::alpn_of(*v).map_or_else(|| format!("{v}"), |a| format!("{v} ({})", String::from_utf8_lossy(a)))).collect();
    format!(
        "{}\nrecord formats: reads {}–{}, signs up to {} once the city's gate allows it\nstore schemas: opens {}–{} (older ones are migrated in place)\nsync protocols: {}\nsyncs with releases {} and later",
        r.version,
        r.formats.0,
        r.formats.1,
        r.write,
        r.schemas.0,
        r.schemas.1,
        alpns.join(", "),
        r.oldest_peer
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The release list's last entry is what this build does.
    #[test]
    fn the_current_entry_is_this_build() {
        let r = current();
        assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(r.formats, (zongzhi_protocol::format::OLDEST, zongzhi_protocol::format::LATEST));
        assert_eq!(r.write, zongzhi_protocol::format::LATEST);
        assert_eq!(r.schemas.1, crate::store::SCHEMA_VERSION);
        assert_eq!(r.schemas.0, crate::store::OLDEST_SCHEMA);
        let spoken: Vec<u32> = zongzhi_protocol::sync::PROTOCOLS.iter().map(|(v, _)| *v).collect();
        assert_eq!(r.protocols, spoken);
        // Shipped entries carry their commit; versions only grow.
        for w in all().windows(2) {
            assert!(!w[0].commit.is_empty(), "release {} has no commit", w[0].version);
            assert!(w[0].schemas.1 <= w[1].schemas.1 && w[0].formats.1 <= w[1].formats.1);
        }
        assert_eq!(for_schema(9).map(|r| r.version.as_str()), Some("0.1.0"));
        assert_eq!(reading_format(99), format!("a release newer than {}", version()));
    }
}

/// What this node reads, writes and speaks: this build's release, or (in
/// the simulator and in mixed-version tests) an older release's profile
/// that the same code acts out — it parks what that release could not read
/// and signs and speaks no more than it could.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The release acted out.
    pub release: String,
    /// Record formats read: oldest, newest. A record of a newer format is
    /// parked.
    pub formats: (u8, u8),
    /// The newest format signed (once the city's gate allows it).
    pub write_max: u8,
    /// Sync protocols spoken, newest first.
    pub protocols: Vec<u32>,
    pub schema: u32,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::this_build()
    }
}

impl Capabilities {
    /// This build's own.
    pub fn this_build() -> Capabilities {
        let r = current();
        Capabilities { release: r.version.clone(), formats: r.formats, write_max: r.write, protocols: r.protocols.clone(), schema: r.schemas.1 }
    }

    /// A listed release's profile (acted out by this build).
    pub fn of_release(version: &str) -> Option<Capabilities> {
        let r = all().iter().find(|r| r.version == version)?;
        Some(Capabilities { release: r.version.clone(), formats: r.formats, write_max: r.write, protocols: r.protocols.clone(), schema: r.schemas.1 })
    }

    /// Whether records of `format` are read (not parked).
    pub fn reads(&self, format: u8) -> bool {
        self.formats.0 <= format && format <= self.formats.1
    }

    /// The format to sign in under a gate of `gate`: `min(own, gate)`.
    pub fn write_format(&self, gate: u8) -> u8 {
        gate.min(self.write_max).max(zongzhi_protocol::format::OLDEST)
    }
}
