//! `zongzhi-sim --seed S [--seeds N] [--ticks T] [--no-restore] [--upgrade] [--keep-going]`: runs
//! seeded simulations of a governance tree of real nodes and prints one
//! line per seed. The first failing seed is printed with what diverged and
//! the command that replays its operations and faults; the run stops there
//! unless `--keep-going`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<u64> { args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()) };
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: zongzhi-sim [--seed S] [--seeds N] [--ticks T] [--villages V] [--no-restore] [--upgrade] [--keep-going]");
        println!("  --upgrade: every node starts on an older release profile and is upgraded top-down while the tree works; the city finalizes format 4");
        return std::process::ExitCode::SUCCESS;
    }
    let first = value("--seed").unwrap_or(1);
    let seeds = value("--seeds").unwrap_or(1);
    let mut failed = 0;
    for seed in first..first + seeds {
        let upgrading = args.iter().any(|a| a == "--upgrade");
        let mut opts = if upgrading { zongzhi_sim::Options::upgrading(seed) } else { zongzhi_sim::Options::new(seed) };
        if let Some(t) = value("--ticks") {
            opts.ticks = t as u32;
        }
        if let Some(v) = value("--villages") {
            opts.villages_per_township = v as usize;
        }
        opts.restore = !args.iter().any(|a| a == "--no-restore");
        let t0 = std::time::Instant::now();
        match zongzhi_sim::run(&opts) {
            Ok(s) => println!(
                "seed {seed}: ok in {:.1} s — {} steps ({} refused by the rules), {} batches ({} lost), {} records moved, {} wants, {} automatic notices, {} citizen ratings, {} steps of format 4, {} cuts, {} crashes ({} mid-write), settled in {} rounds, incidents [{}], digest {}",
                t0.elapsed().as_secs_f64(),
                s.steps_ok,
                s.steps_refused,
                s.batches,
                s.batches_lost,
                s.records_moved,
                s.wants,
                s.auto_notices,
                s.citizen_ratings,
                s.format4_steps,
                s.link_cuts,
                s.crashes,
                s.crashes_mid_write,
                s.rounds_to_quiesce,
                s.incidents.join("; "),
                s.digest
            ),
            Err(e) => {
                failed += 1;
                println!("seed {seed}: FAILED: {e:#}");
                let mut replay = format!("cargo run --release -p zongzhi-sim -- --seed {seed}");
                for flag in ["--ticks", "--villages"] {
                    if let Some(v) = value(flag) {
                        replay.push_str(&format!(" {flag} {v}"));
                    }
                }
                if !opts.restore {
                    replay.push_str(" --no-restore");
                }
                if upgrading {
                    replay.push_str(" --upgrade");
                }
                println!("replay: {replay}");
                if !args.iter().any(|a| a == "--keep-going") {
                    break;
                }
            }
        }
    }
    if failed > 0 { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
}
