//! Stable fuzzing driver for the zongzhi fuzz targets.
//!
//! ```text
//! zongzhi-fuzz <target> [--seconds S] [--execs N] [--seed N] [--corpus DIR] [--classes]
//! zongzhi-fuzz <target> --replay FILE...
//! zongzhi-fuzz <target|all> --write-corpus
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use zongzhi_fuzz_targets::{Config, TARGETS, call, fuzz_dir, run_with, seed_corpus, target};

fn usage() -> ExitCode {
    eprintln!(
        "usage: zongzhi-fuzz <target> [--seconds S] [--execs N] [--seed N] [--corpus DIR] [--classes]\n       zongzhi-fuzz <target> --replay FILE...\n       zongzhi-fuzz <target|all> --write-corpus\ntargets: {}",
        TARGETS.join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first().cloned() else {
        return usage();
    };
    let mut seconds: Option<f64> = None;
    let mut execs: Option<u64> = None;
    let mut seed = 1u64;
    let mut corpus: Option<PathBuf> = None;
    let mut replay: Vec<PathBuf> = Vec::new();
    let mut write_corpus = false;
    let mut print_classes = false;
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned();
        let parsed = match args[i].as_str() {
            "--seconds" => value.and_then(|v| v.parse().ok()).map(|v| seconds = Some(v)),
            "--execs" => value.and_then(|v| v.parse().ok()).map(|v| execs = Some(v)),
            "--seed" => value.and_then(|v| v.parse().ok()).map(|v| seed = v),
            "--corpus" => value.map(|v| corpus = Some(PathBuf::from(v))),
            "--replay" => {
                replay.extend(args[i + 1..].iter().map(PathBuf::from));
                i = args.len();
                continue;
            }
            "--classes" => {
                print_classes = true;
                i += 1;
                continue;
            }
            "--write-corpus" => {
                write_corpus = true;
                i += 1;
                continue;
            }
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("bad argument {:?}", args[i]);
            return usage();
        }
        i += 2;
    }

    if write_corpus {
        let names: Vec<&str> = if name == "all" { TARGETS.to_vec() } else { vec![name.as_str()] };
        for t in names {
            let dir = fuzz_dir().join("corpus").join(t);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("{}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            for (file, bytes) in seed_corpus(t) {
                let p = dir.join(file);
                if let Err(e) = std::fs::write(&p, bytes) {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", p.display());
            }
        }
        return ExitCode::SUCCESS;
    }

    let Some(t) = target(&name) else {
        eprintln!("unknown target {name:?}");
        return usage();
    };

    if !replay.is_empty() {
        let mut failed = false;
        for p in &replay {
            let input = match std::fs::read(p) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            };
            match call(t, &input) {
                Ok(class) => println!("{}: ok ({class})", p.display()),
                Err(msg) => {
                    println!("{}: PANIC: {msg}", p.display());
                    failed = true;
                }
            }
        }
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }

    if seconds.is_none() && execs.is_none() {
        seconds = Some(10.0);
    }
    let cfg = Config {
        target: name.clone(),
        seconds,
        max_execs: execs,
        seed,
        corpus_dir: corpus.unwrap_or_else(|| fuzz_dir().join("corpus").join(&name)),
        crash_dir: Some(fuzz_dir().join("crashes").join(&name)),
    };
    let stats = match run_with(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "target {} seed {}: {} execs in {:.1} s ({:.0} execs/s), corpus {} + {} new entries, {} outcome classes",
        stats.target,
        seed,
        stats.execs,
        stats.elapsed.as_secs_f64(),
        stats.execs_per_sec(),
        stats.initial_corpus,
        stats.new_entries,
        stats.classes
    );
    if print_classes {
        for c in &stats.class_names {
            println!("  {c}");
        }
    }
    match stats.crash {
        None => ExitCode::SUCCESS,
        Some(c) => {
            println!("PANIC: {}", c.message);
            match c.written {
                Some(p) => println!("crashing input written to {} (replay: zongzhi-fuzz {name} --replay {})", p.display(), p.display()),
                None => println!("crashing input ({} bytes): {:02x?}", c.input.len(), c.input),
            }
            ExitCode::FAILURE
        }
    }
}
