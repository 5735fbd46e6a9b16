//! Eight seeds on every test run (the long soak is `zongzhi-sim --seeds N`).
//! Seeds 1, 2, 4, 6, 7 and 8 fail on the parked-督办 defect (a 督办 on a
//! case dispatched to an offline village left waiting at the village after
//! the catch-up; ARCHITECTURE.md, `sim/`), so they are its regression test.
//! Before the fold put late concurrent events in their place, about one
//! seed in four ended with a node whose stored state differed from the
//! city's (a 督办 applied or not depending on arrival order).

#[test]
fn seeded_runs_converge_and_lose_nothing() {
    for seed in 1..=8 {
        // As when the parked-督办 defect was found (the restore incident
        // came later and changes the runs): they stay its regression test.
        let mut opts = zongzhi_sim::Options::new(seed);
        opts.restore = false;
        if let Err(e) = zongzhi_sim::run(&opts) {
            panic!("{e:#}\nreplay: cargo run -p zongzhi-sim -- --seed {seed} --no-restore");
        }
    }
}

/// One number replays a run: the same seed gives the same keys, records,
/// faults and end state.
#[test]
fn a_seed_replays_exactly() {
    let a = zongzhi_sim::run(&zongzhi_sim::Options::new(5)).unwrap();
    let b = zongzhi_sim::run(&zongzhi_sim::Options::new(5)).unwrap();
    assert_eq!((a.steps_ok, a.batches, a.records_moved, a.crashes, &a.digest), (b.steps_ok, b.batches, b.records_moved, b.crashes, &b.digest));
    let c = zongzhi_sim::run(&zongzhi_sim::Options::new(6)).unwrap();
    assert_ne!(a.digest, c.digest);
}

/// A township backed up, working on, losing its store and restored (in
/// every run unless `--no-restore`). Seeds 2, 3 and 5 failed before a restored node took its
/// own records back in any order (one arriving below its new head was
/// refused as `own_record_unknown`, and an acknowledged step stayed
/// lost); seeds 1 and 12 before only the parent could confirm a restore
/// (a village's link confirmed it, and the township signed again at seqs
/// its county held: equivocation).
#[test]
fn restored_townships_get_their_records_back() {
    for seed in [1, 2, 3, 5, 12] {
        let opts = zongzhi_sim::Options::new(seed);
        assert!(opts.restore);
        if let Err(e) = zongzhi_sim::run(&opts) {
            panic!("{e:#}\nreplay: cargo run -p zongzhi-sim -- --seed {seed}");
        }
    }
}

/// A tree upgraded in place while it works (`upgrades`): top-down with a
/// crash at each upgrade, a village offline across its township's
/// upgrade, the city finalizing format 4 (over a laggard village in some
/// seeds, which parks what it cannot read until its own upgrade). Seeds
/// alternate the release the tree starts on (even: 0.1.0; odd: a release
/// that parks); seeds 5 and 7 finalize over a laggard village, which holds
/// the finalizing policy and what follows aside, reports it, and takes it
/// in at its upgrade. Without the start-up pass that takes held records in
/// (`Op::Unpark` in `node::start_writer`), seed 5 fails: a case at the
/// laggard ends in another state than at the city (the steps it held
/// aside never folded in).
#[test]
fn trees_upgraded_in_place_converge() {
    let mut format4 = 0;
    for seed in [2, 3, 5, 7] {
        let opts = zongzhi_sim::Options::upgrading(seed);
        match zongzhi_sim::run(&opts) {
            Ok(stats) => format4 += stats.format4_steps,
            Err(e) => panic!("{e:#}\nreplay: cargo run -p zongzhi-sim -- --seed {seed} --upgrade"),
        }
    }
    // Once finalized, operators take the steps of format 4 (督办回复 and
    // the decisions) and the tree converges with them.
    assert!(format4 > 0, "no step of format 4 was taken after finalizing");
}
