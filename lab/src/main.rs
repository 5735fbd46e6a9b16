//! `zongzhi-lab`: the demo hierarchy and the benchmarks. They start real
//! `zongzhi-node` processes and some open a node's store directly, so this
//! binary links the node (RocksDB included); the operator's `zongzhi` does
//! not. Not part of the Debian package or the image.

// Output goes through `out!`/`outln!` (see `zongzhi_tools::out`): `print!` panics on a closed pipe.
#![deny(clippy::print_stdout)]

#[macro_use]
extern crate zongzhi_tools;

mod bench;
mod demo;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use zongzhi_tools::{client, out, table};

#[derive(Parser)]
#[command(name = "zongzhi-lab", version, about = "综治中心 case system: demo hierarchy and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a demo hierarchy of 15 real nodes on this machine and seed it.
    Demo {
        /// Where the nodes' data directories go (must not exist).
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
        /// First HTTP port; the 15 nodes take consecutive ports.
        #[arg(long, default_value_t = 7800)]
        http_port: u16,
        /// First QUIC port.
        #[arg(long, default_value_t = 7900)]
        quic_port: u16,
        /// Stop the nodes after seeding and printing the summary.
        #[arg(long)]
        exit_after_seed: bool,
    },
    /// Benchmarks that print figures (build with --release).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// A city node of 3,000 units fed through the replication path, timed on
    /// every interactive read of the console (see BENCHMARKS.md).
    City {
        #[arg(long, default_value_t = 10_000)]
        cases: usize,
        /// Build the city here (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep --dir after the run (measure it again with --reuse).
        #[arg(long, requires = "dir")]
        keep: bool,
        /// Measure a city built earlier with --dir --keep instead of loading one.
        #[arg(long, conflicts_with_all = ["dir", "cases"])]
        reuse: Option<PathBuf>,
        /// Only build the city (with --dir --keep).
        #[arg(long, requires = "keep")]
        load_only: bool,
        /// Requests per read (fewer when a read takes longer than --budget-s in all).
        #[arg(long, default_value_t = 100)]
        requests: usize,
        #[arg(long, default_value_t = 30.0)]
        budget_s: f64,
        /// An earlier result to print ratios against (a city directory or its bench-city-result.json).
        #[arg(long)]
        compare: Option<PathBuf>,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Signing threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// The zongzhi-node binary (default: next to this one).
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
    /// File cases through a fresh node's HTTP API (synced writes).
    Intake {
        #[arg(long, default_value_t = 20_000)]
        cases: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// The zongzhi-node binary (default: next to this one).
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
    /// A node's memory (VmRSS, VmHWM) before and after parallel wrong logins.
    Login {
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        /// The zongzhi-node binary (default: next to this one).
        #[arg(long)]
        node_bin: Option<PathBuf>,
        /// Lines added to the node's config (e.g. a [login] section).
        #[arg(long, default_value = "")]
        extra_config: String,
        /// Every attempt on another user name (else all on one account).
        #[arg(long)]
        many_names: bool,
    },
    /// Statistics: roll-ups over a city of 3,000 units × 24 months × 30 categories, and the per-event cost.
    Stats {
        #[arg(long, default_value_t = 3000)]
        units: usize,
        #[arg(long, default_value_t = 24)]
        months: u32,
        #[arg(long, default_value_t = 30)]
        categories: usize,
    },
    /// Replication between real nodes over QUIC (four levels).
    Sync {
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        #[arg(long, default_value_t = 1000)]
        escalations: usize,
    },
    /// Record sign and verify rates against raw ed25519 verify.
    Verify {
        #[arg(long, default_value_t = 20_000)]
        records: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).and_then(|()| Ok(out::flush()?)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if out::is_closed_pipe(&e) => std::process::ExitCode::from(out::CLOSED_PIPE_EXIT),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo { dir, http_port, quic_port, exit_after_seed } => demo::demo(&dir, http_port, quic_port, exit_after_seed),
        Command::Bench { command } => match command {
            BenchCommand::Intake { cases, clients, node_bin } => bench::intake(cases, clients, node_bin),
            BenchCommand::Verify { records } => bench::verify(records),
            BenchCommand::Login { parallel, node_bin, extra_config, many_names } => bench::login(parallel, node_bin, &extra_config, many_names),
            BenchCommand::Sync { records, escalations } => bench::sync(records, escalations),
            BenchCommand::Stats { units, months, categories } => bench::stats(units, months, categories),
            BenchCommand::City { cases, dir, keep, reuse, load_only, requests, budget_s, compare, seed, threads, node_bin } => {
                bench::city::run(bench::city::Options { cases, dir, keep, reuse, load_only, requests, budget_s, compare, seed, threads, node_bin })
            }
        },
    }
}
