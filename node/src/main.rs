//! `zongzhi-node`: initialise and run one center's node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zongzhi_node::accounts::{self, Role};
use zongzhi_node::config::Config;
use zongzhi_node::{integrity, ledger, node};

// The receive path allocates and frees many small buffers across threads
// (frames, records, summaries): mimalloc does that with less contention
// than glibc's allocator (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "zongzhi-node", version = zongzhi_node::release::long_version(), about = "A comprehensive-governance center's node (综治中心节点)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on standard error: `text` (for people) or `json` (one
    /// object a line, for a log collector).
    #[arg(long, global = true, value_enum, env = "ZONGZHI_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the node key and store. The city also signs its root
    /// certificate and the default policy; other levels write an enrollment
    /// request for their parent.
    Init {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Also make a self-signed HTTPS certificate for these host names
        /// or addresses (see `https-cert`).
        #[arg(long = "https-host")]
        https_hosts: Vec<String>,
    },
    /// Run the node (HTTP API) until Ctrl-C or SIGTERM.
    Run {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage operator accounts (while the node is stopped; use the API when it runs).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Store the certificate chain the parent center issued for this node.
    ImportCert {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The chain file from `zongzhi cert issue` (root first).
        #[arg(long)]
        file: PathBuf,
    },
    /// Rebuild all derived data (case states, queues) from the records.
    Reindex {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Systems that file cases here through /api/intake and Open311.
    Integration {
        #[command(subcommand)]
        command: IntegrationCommand,
    },
    /// Export for analytics (while the node runs, from a checkpoint it takes; or stopped).
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Measure this disk: synced WriteBatch(256) and single synced writes (benchmark helper).
    #[command(hide = true)]
    BenchStore {
        /// A scratch directory for the store.
        #[arg(long)]
        dir: PathBuf,
        /// Records to write.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
    },
    /// Statistics benchmark on a scratch store (prints JSON).
    #[command(hide = true)]
    BenchStats {
        /// A scratch directory for the store.
        #[arg(long)]
        dir: PathBuf,
        /// Units in the simulated city.
        #[arg(long, default_value_t = 3000)]
        units: usize,
        /// Months of statistics.
        #[arg(long, default_value_t = 24)]
        months: u32,
        /// Categories.
        #[arg(long, default_value_t = 30)]
        categories: usize,
        /// Queries to time.
        #[arg(long, default_value_t = 200)]
        queries: usize,
    },
    /// Check every stored record's hash and signature and this node's chain.
    Verify {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Back up the store (while the node runs, or stopped): a consistent
    /// RocksDB checkpoint and a manifest. The node key is not copied
    /// unless --with-key.
    Backup {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// A new directory for the backup (default: backup_dir/zongzhi-<division>-<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Copy the node key into the backup too (keep it as safe as the center's seal).
        #[arg(long)]
        with_key: bool,
    },
    /// Restore a backup (node stopped). The restored node signs nothing
    /// until its parent has given its own records back.
    Restore {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The backup directory (holds manifest.json).
        #[arg(long)]
        from: PathBuf,
        /// Move an existing store aside (kept as db.replaced-<time>).
        #[arg(long)]
        force: bool,
    },
    /// Make a self-signed HTTPS certificate for the console on the center's
    /// LAN, print its SHA-256 fingerprint and the config lines to add.
    HttpsCert {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// A host name or IP address operators type into the browser (repeat for several).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Replace an existing certificate.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum IntegrationCommand {
    /// Make an API key (and a callback secret) for another system; prints
    /// the key once and the `[[integration]]` lines to add to the config.
    Add {
        /// The system's name, e.g. hotline12345 (letters, digits, '_', '-').
        #[arg(long)]
        name: String,
        /// What operators see, e.g. 市12345热线平台.
        #[arg(long, default_value = "")]
        display_name: String,
        /// Where its status callbacks go (http://host[:port]/path).
        #[arg(long)]
        callback_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write Parquet tables (cases, events, places, stats, units,
    /// categories, windows; no personal data) under a prefix many cities
    /// share, in hive partitions city=<division>/month=<YYYY-MM>. A second
    /// run adds only the new events and places and replaces the snapshots.
    Parquet {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (created if missing; holds manifest.json).
        #[arg(long)]
        dir: PathBuf,
        /// Only events and cases (by filing time) on or after this day, YYYY-MM-DD (China time).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. Without a password option a random one is printed.
    Add {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The account's user name.
        #[arg(long)]
        username: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "operator")]
        role: String,
        /// The name shown in the console and in timelines (default: the user name).
        #[arg(long, default_value = "")]
        display_name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The password (visible in process lists; prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
    },
    /// Set an account's password (ends its sessions). Without a password
    /// option a random one is printed.
    Passwd {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The account's user name.
        #[arg(long)]
        username: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The password (visible in process lists; prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
    },
    /// Disable an account: it cannot log in and its sessions end.
    Disable {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The account's user name.
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The account's user name.
        #[arg(long)]
        username: String,
    },
    /// Clear an account's failed logins and locks (every address; kept
    /// across restarts otherwise).
    Unlock {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The account's user name.
        #[arg(long)]
        username: String,
    },
    /// Make the account's recovery code (replacing an earlier one) and print
    /// it once: with it the account's user logs in while guessing from
    /// several addresses locks the account for unknown clients. Keep it
    /// on paper, in the safe.
    RecoveryCode {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The account's user name.
        #[arg(long)]
        username: String,
    },
}

/// Log timestamps in China Standard Time (+08:00), to the millisecond.
struct ChinaTime;

impl tracing_subscriber::fmt::time::FormatTime for ChinaTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)));
        write!(w, "{}", now.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z"))
    }
}

/// Logs to standard error in China Standard Time, as the console and the
/// CLI show times: text, coloured only on a terminal (a log file gets plain
/// text), or JSON lines (`timestamp` in RFC 3339 with +08:00, `level`,
/// `target`, `fields` with the message, the spans it is in: an event field
/// named `level` does not overwrite the level).
fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).with_timer(ChinaTime);
    // On a full log disk an event that cannot be written is dropped:
    // reporting it (the default) panics on the same full stderr, in the
    // middle of a request.
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).log_internal_errors(false).init(),
        LogFormat::Json => builder.json().log_internal_errors(false).init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn random_password() -> String {
    let mut raw = [0u8; 9];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    hex::encode(raw)
}

fn real_main(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Init { config, https_hosts } => {
            init(&config)?;
            if !https_hosts.is_empty() {
                https_cert(&config, &https_hosts, false)?;
            }
        }
        Command::Run { config } => run(&config)?,
        Command::User { command } => user(command)?,
        Command::ImportCert { config, file } => import_cert(&config, &file)?,
        Command::Reindex { config } => reindex(&config)?,
        Command::Export { command } => export(command)?,
        Command::Integration { command: IntegrationCommand::Add { name, display_name, callback_url } } => integration_add(&name, &display_name, callback_url.as_deref())?,
        Command::BenchStats { dir, units, months, categories, queries } => {
            let v = zongzhi_node::stats::bench(&dir, units, months, categories, queries)?;
            println!("{v}");
        }
        Command::BenchStore { dir, records } => bench_store(&dir, records)?,
        Command::Verify { config } => return verify(&config),
        Command::HttpsCert { config, hosts, force } => https_cert(&config, &hosts, force)?,
        Command::Backup { config, out, with_key } => backup(&config, out.as_deref(), with_key)?,
        Command::Restore { config, from, force } => restore(&config, &from, force)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `init`: generates the node key and store, and says what to do next.
fn init(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let out = node::init(&cfg)?;
    println!("node key: {}", out.key);
    println!("division: {} ({})", cfg.division, cfg.division.level().zh());
    match out.enrollment_request {
        None => println!("root certificate and default policy signed; this node is the city trust root"),
        Some(p) => println!("enrollment request written to {} — give it to the parent center's operator", p.display()),
    }
    Ok(())
}

fn backup(config: &Path, out: Option<&Path>, with_key: bool) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let (dir, m) = zongzhi_node::progress::shown(|| {
        zongzhi_node::progress::waiting("taking a checkpoint of the store");
        zongzhi_node::recovery::backup_command(&cfg, out, with_key)
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    println!("backup of {} ({}) written to {}", m.name, m.division, dir.display());
    println!("own chain head: seq {}; feed: {} records; taken {}", m.own_seq, m.feed_seq, m.taken_at);
    if let Some(fp) = &m.https_cert {
        println!("HTTPS certificate (SHA-256 {fp}) {}", if m.https_key_included { "and its key included" } else { "included; its key is not" });
    }
    println!("{}", m.note);
    Ok(())
}

fn restore(config: &Path, from: &Path, force: bool) -> anyhow::Result<()> {
    if from.as_os_str() == "-" {
        anyhow::bail!("--from - (standard input) cannot hold a backup: it is a directory; name the backup's directory");
    }
    let cfg = Config::load(config)?;
    let m = zongzhi_node::recovery::restore_command(&cfg, from, force).map_err(|e| anyhow::anyhow!(e))?;
    println!("restored the backup of {} taken {} (own chain head: seq {})", m.name, m.taken_at, m.own_seq);
    if let Some(fp) = &m.https_cert {
        println!("the node serves the same HTTPS certificate as before (SHA-256 {fp}): browsers that accepted it do not warn again");
    }
    println!("start the node: it signs nothing (new steps are refused with 503 restoring) until its parent has given back the records it signed after the backup;");
    println!("/api/health shows recovery.restoring until then. If the parent cannot be reached, an admin may override: POST /api/admin/recovery {{\"reason\": \"...\"}}");
    Ok(())
}

/// `https-cert`: a self-signed pair in the data directory, and how to use it.
fn https_cert(config: &Path, hosts: &[String], force: bool) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let (cert_path, key_path) = cfg.default_tls_paths();
    if !force && (cert_path.exists() || key_path.exists()) {
        anyhow::bail!("{} already exists: pass --force to replace it (browsers that accepted the old one will warn again)", cert_path.display());
    }
    let (cert, key, fingerprint) = zongzhi_node::net::http::self_signed(hosts).map_err(|e| anyhow::anyhow!("making the certificate: {e}"))?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    std::fs::write(&cert_path, cert)?;
    if key_path.exists() {
        // --force: the new key replaces the old one.
        std::fs::remove_file(&key_path)?;
    }
    node::write_secret(&key_path, &key)?;
    println!("HTTPS certificate for {}: {}", hosts.join(", "), cert_path.display());
    println!("private key (mode 0600): {}", key_path.display());
    println!("SHA-256 fingerprint: {fingerprint}");
    println!("add to {}:", config.display());
    println!("  https_listen = \"0.0.0.0:7843\"");
    println!("  tls_cert = \"{}\"", cert_path.display());
    println!("  tls_key = \"{}\"", key_path.display());
    println!("Browsers warn about a self-signed certificate: before accepting it, compare the fingerprint they show with the one above.");
    Ok(())
}

/// `run`: serves until Ctrl-C or SIGTERM.
fn run(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(node::run(cfg, shutdown_signal()));
    // Drop every task (and its handle on the store) before exiting.
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    result?;
    Ok(())
}

/// `user …`: operator accounts in the stopped node's store.
fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { config, username, role, display_name, password_stdin, password } => {
            let cfg = Config::load(&config)?;
            let role = Role::parse(&role).context("role must be admin, operator or viewer")?;
            let key = node::load_key(&cfg)?;
            let store = node::open_store(&cfg, &key)?;
            let (password, generated) = new_password(password, password_stdin)?;
            let account = accounts::create(&store, &username, &password, role, &display_name, zongzhi_node::context::now_ms())?;
            println!("created {} ({})", account.username, account.role.as_str());
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::Passwd { config, username, password_stdin, password } => {
            let store = stopped_store(&config)?;
            let (password, generated) = new_password(password, password_stdin)?;
            accounts::set_password(&store, &username, &password, None, zongzhi_node::context::now_ms())?;
            unlock(&config, &store, &username)?;
            println!("password of {username} set; its sessions ended and its locks cleared");
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::Disable { config, username } => {
            let store = stopped_store(&config)?;
            accounts::set_disabled(&store, &username, true, None)?;
            println!("{username} disabled; its sessions ended");
        }
        UserCommand::Enable { config, username } => {
            let store = stopped_store(&config)?;
            accounts::set_disabled(&store, &username, false, None)?;
            println!("{username} enabled");
        }
        UserCommand::Unlock { config, username } => {
            let store = stopped_store(&config)?;
            if store.account::<accounts::Account>(&username)?.is_none() {
                anyhow::bail!("no user {username}");
            }
            unlock(&config, &store, &username)?;
            println!("{username}: failed logins and locks cleared");
        }
        UserCommand::RecoveryCode { config, username } => {
            let store = stopped_store(&config)?;
            let code = accounts::new_recovery_code(&store, &username)?;
            println!("recovery code of {username} (shown once; it replaces any earlier one): {code}");
            println!("log in with it when the account is locked for unknown clients: `zongzhi login --user {username} --recovery-code …`, or the console's 恢复码 field");
        }
    }
    Ok(())
}

/// Clears an account's kept login locks on the stopped node.
fn unlock(config: &Path, store: &Arc<zongzhi_node::store::Store>, username: &str) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let login = zongzhi_node::login::Login::new(&cfg.login, store.clone(), zongzhi_node::context::now_ms())?;
    login.throttle.unlock(username);
    login.save_locks()?;
    Ok(())
}

/// The store of a stopped node (RocksDB allows one process: a running
/// node's is refused with a message saying so).
fn stopped_store(config: &Path) -> anyhow::Result<Arc<zongzhi_node::store::Store>> {
    let cfg = Config::load(config)?;
    let key = node::load_key(&cfg)?;
    Ok(node::open_store(&cfg, &key)?)
}

/// A new account's password: the one given, a line of standard input, or a random one (then `true`).
fn new_password(given: Option<String>, from_stdin: bool) -> std::io::Result<(String, bool)> {
    Ok(match (given, from_stdin) {
        (Some(p), _) => (p, false),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            (line.trim_end_matches(['\r', '\n']).to_string(), false)
        }
        (None, false) => (random_password(), true),
    })
}

/// `import-cert`: stores the chain the parent center issued.
fn import_cert(config: &Path, file: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    // `-`: the chain on standard input, as everywhere a file is named.
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the chain from standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let cert = node::import_chain(&cfg, &text)?;
    println!("imported certificate #{} for {} {}", cert.serial, cert.division, cert.name);
    Ok(())
}

/// `reindex`: rebuilds the derived data from the records.
fn reindex(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let key = node::load_key(&cfg)?;
    let store = node::open_store(&cfg, &key)?;
    // Marked first: a crash during the rebuild leaves the mark, and the
    // next start rebuilds again.
    store.request_reindex()?;
    let (trust, policy) = zongzhi_node::context::Context::load_trust_and_policy_from_feed(&store, node::root_key(&cfg, &key))?;
    store.set_repeat_window(policy.current().repeat_window_days)?;
    let n = zongzhi_node::progress::shown(|| ledger::reindex(&store, &policy, &trust))?;
    store.reindexed()?;
    println!("rebuilt derived data for {n} cases from {} records", store.feed_len()?);
    Ok(())
}

/// `integration add`: a new key, and the config lines.
fn integration_add(name: &str, display_name: &str, callback_url: Option<&str>) -> anyhow::Result<()> {
    let (key, hash) = zongzhi_node::integration::new_key();
    let mut table = format!("[[integration]]\nname = {}\ndisplay_name = {}\nkey_blake3 = \"{hash}\"\n", toml_str(name), toml_str(display_name));
    if let Some(url) = callback_url {
        table.push_str(&format!("callback_url = {}\ncallback_secret = \"{}\"\n", toml_str(url), zongzhi_node::integration::new_secret()));
    }
    // Checked as the node will check it.
    let parsed: zongzhi_node::integration::IntegrationConfig = toml::from_str(table.trim_start_matches("[[integration]]\n"))?;
    zongzhi_node::integration::Integrations::from_config(&[parsed]).map_err(|e| anyhow::anyhow!(e))?;
    println!("API key for {name} (give it to the system's operators; it is shown only now):\n  {key}\n");
    println!("add to the node's config and restart the node:\n\n{table}");
    Ok(())
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `export …`: analytics exports from the stopped node's store.
fn export(command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Parquet { config, dir, since } => {
            if dir.as_os_str() == "-" {
                anyhow::bail!("--dir - (standard output) cannot take the export: it is a directory of Parquet files and a manifest; name a directory");
            }
            let cfg = Config::load(&config)?;
            let key = node::load_key(&cfg)?;
            // The node running: it takes a checkpoint (hard links, a
            // consistent view) where it may write, and the export reads that.
            let checkpoint = match zongzhi_node::store::Store::open(&cfg.db_path()) {
                Ok(store) => {
                    drop(store);
                    None
                }
                Err(zongzhi_node::store::StoreError::InUse(_)) => {
                    let at = cfg.backup_dir().join(format!("export-checkpoint-{}", zongzhi_node::recovery::stamp(zongzhi_node::context::now_ms())));
                    let (at, _) = zongzhi_node::progress::shown(|| {
                        zongzhi_node::progress::waiting("the running node takes a checkpoint");
                        zongzhi_node::recovery::backup_command(&cfg, Some(&at), false)
                    })
                    .map_err(|e| anyhow::anyhow!(e))?;
                    Some(Checkpoint(at))
                }
                Err(e) => return Err(e.into()),
            };
            let store = match &checkpoint {
                Some(c) => Arc::new(zongzhi_node::store::Store::open(&c.0.join("db"))?),
                None => node::open_store(&cfg, &key)?,
            };
            let (trust, policy) = zongzhi_node::context::Context::load_trust_and_policy(&store, node::root_key(&cfg, &key))?;
            let dims = zongzhi_node::export::Dimensions::of(&trust, policy.current());
            let outcome = zongzhi_node::progress::shown(|| zongzhi_node::export::parquet(&store, &key.id(), cfg.division, &dims, &trust, &policy, &dir, since.as_deref()))?;
            drop(store);
            let from = if checkpoint.is_some() { "a checkpoint of the running node" } else { "the stopped node's store" };
            println!("{outcome} (in {}, from {from})", dir.display());
        }
    }
    Ok(())
}

/// A checkpoint taken for an export, removed when the export is done.
struct Checkpoint(PathBuf);

impl Drop for Checkpoint {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove the checkpoint {}: {e}", self.0.display());
        }
    }
}

/// `bench-store`: prints the records per second of batched and of single synced writes.
fn bench_store(dir: &Path, records: u64) -> anyhow::Result<()> {
    let store = zongzhi_node::store::Store::open(dir)?;
    let author = zongzhi_protocol::NodeId([7; 32]);
    let payload = vec![0xA5u8; 500];
    let t = std::time::Instant::now();
    let mut seq = 0u64;
    while seq < records {
        let mut b = store.batch();
        for _ in 0..256 {
            seq += 1;
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&seq.to_be_bytes());
            b.put_record(&zongzhi_protocol::RecordId(id), &payload, seq, &author, seq);
        }
        store.commit(b)?;
    }
    let batched = seq as f64 / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    for i in 0..1000u64 {
        let mut b = store.batch();
        let mut id = [1u8; 32];
        id[..8].copy_from_slice(&(seq + i + 1).to_be_bytes());
        b.put_record(&zongzhi_protocol::RecordId(id), &payload, seq + i + 1, &author, seq + i + 1);
        store.commit(b)?;
    }
    let single = 1000.0 / t.elapsed().as_secs_f64();
    println!("{{\"batched_records_per_s\": {batched:.0}, \"single_synced_writes_per_s\": {single:.0}}}");
    Ok(())
}

/// `verify`: checks every record and this node's chain; exit code 1 when a problem is found.
fn verify(config: &Path) -> anyhow::Result<std::process::ExitCode> {
    let cfg = Config::load(config)?;
    let key = node::load_key(&cfg)?;
    let store: Arc<_> = node::open_store(&cfg, &key)?;
    let report = zongzhi_node::progress::shown(|| integrity::check(&store, &key.id()))?;
    println!("records checked: {}, own chain length: {}", report.records_checked, report.own_chain_length);
    // The trust setup: this node's certificate must chain to the root key
    // the config names (a wrong root_key, or a node never given its
    // certificate, starts but can never link).
    let root = node::root_key(&cfg, &key);
    let (trust, _) = zongzhi_node::context::Context::load_trust_and_policy(&store, root)?;
    let standalone = cfg.root_key.is_none() && cfg.division.level() != zongzhi_protocol::Level::City;
    let trusted = standalone || trust.chain(&key.id()).is_some();
    if standalone {
        println!("certificate: none (no root_key in the config: this node runs on its own, outside the hierarchy)");
    } else if trusted {
        println!("certificate: this node's chain leads to the root key {root}");
    } else {
        println!(
            "PROBLEM certificate: this node ({}) has no certificate chain to the root key {root} in the config: check root_key (the city's key, as `zongzhi-node init` printed it at the city and `GET /api/health` shows it there as node_id), or import this node's certificate with `zongzhi-node import-cert`",
            key.id()
        );
    }
    if report.ok() && trusted {
        println!("ok");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        for p in &report.problems {
            println!("PROBLEM {}: {}", p.record.map(|r| r.to_string()).unwrap_or_default(), p.detail);
        }
        Ok(std::process::ExitCode::from(1))
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
