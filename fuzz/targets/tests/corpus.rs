//! Every corpus file of every target runs without a panic, the checked-in
//! seeds match what the code generates, and a short fuzz run per target
//! (fixed seed) finds nothing.

#![allow(clippy::unwrap_used)]

use zongzhi_fuzz_targets::{Config, TARGETS, call, corpus_files, fuzz_dir, run_with, seed_corpus, target};
use zongzhi_protocol::Record;
use zongzhi_protocol::codec::CodecError;
use zongzhi_protocol::record::RecordError;

#[test]
fn every_corpus_file_passes() {
    for name in TARGETS {
        let t = target(name).unwrap();
        let files = corpus_files(&fuzz_dir().join("corpus").join(name));
        assert!(!files.is_empty(), "no corpus for {name}");
        for f in files {
            let input = std::fs::read(&f).unwrap();
            if let Err(msg) = call(t, &input) {
                panic!("{}: {msg}", f.display());
            }
        }
        // The built-in seeds too (the same as the files unless someone
        // edited one).
        for (file, input) in seed_corpus(name) {
            if let Err(msg) = call(t, &input) {
                panic!("seed {name}/{file}: {msg}");
            }
        }
    }
}

#[test]
fn regression_inputs_are_refused() {
    let dir = fuzz_dir().join("corpus");
    let bytes = std::fs::read(dir.join("record/regression-noncanonical-payload-length")).unwrap();
    assert_eq!(Record::decode(&bytes).err(), Some(RecordError::Codec(CodecError::NotCanonical)));
    assert_eq!(Record::decode_unverified(&bytes).err(), Some(RecordError::Codec(CodecError::NotCanonical)));
    let policy = zongzhi_protocol::Policy::default_policy();
    for f in ["regression-negative-year.json", "regression-noncanonical-year-key.json"] {
        let patch: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("policy_json").join(f)).unwrap()).unwrap();
        assert!(zongzhi_protocol::policy::document::apply_patch(&policy, &patch).is_err(), "{f} is accepted");
    }
}

#[test]
fn short_fuzz_runs_find_nothing() {
    for name in TARGETS {
        let execs = if *name == "fold_orders" { 400 } else { 2_000 };
        let stats = run_with(&Config { target: name.to_string(), seconds: None, max_execs: Some(execs), seed: 7, corpus_dir: fuzz_dir().join("corpus").join(name), crash_dir: None }).unwrap();
        assert_eq!(stats.execs, execs);
        if let Some(c) = stats.crash {
            panic!("{name}: {} on input {:02x?}", c.message, c.input);
        }
    }
}
