//! A tree moving from one release to the next while it works
//! (UPGRADES.md §6.3), the node's own code acting the older release: every
//! node starts on a release profile that reads and writes record format 3
//! only, and is upgraded to this build top-down at ticks the seed picks
//! (city first, villages last), with a crash at the moment of its upgrade
//! (the binary is replaced: the node starts again through its start-up
//! passes, which take in what it held aside). One village is offline
//! across its township's upgrade. Once the fleet reports every center
//! reads format 4, the city finalizes; with the profile that can hold
//! records aside (see [`Profile`]) it sometimes finalizes over one village
//! still on the old release, naming it in an override: that village parks
//! what it receives of format 4 (the finalizing policy first) and shows it
//! in its report, until its own upgrade takes it in.
//!
//! Checked at the end ([`check`]): no link stalled (replication settled,
//! nothing waits, the usual checks), nothing is held aside anywhere, no
//! record was signed above the gate (every format-4 record after the
//! finalization, and none by a node before its upgrade), and the laggard
//! parked and reported it.

use anyhow::{Context as _, bail};
use zongzhi_node::ledger::Op;
use zongzhi_node::release::Capabilities;
use zongzhi_protocol::{Body, DivisionCode, Level, Record};

use crate::rng::Rng;
use crate::world::World;

/// The release every node starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The previous release, 0.1.0: reads and writes format 3, speaks
    /// protocol 2 only (so it never reports a release; it cannot be
    /// finalized over).
    Previous,
    /// A release that speaks protocol 3 and holds aside what it cannot
    /// read, but reads format 3 only: what this release will be to the
    /// next one (the N-1 of the release that brings format 5), acted out
    /// here so the override and the parking path run today.
    ParkingPrevious,
}

impl Profile {
    pub fn caps(self) -> Capabilities {
        match self {
            Profile::Previous => Capabilities::of_release("0.1.0").unwrap_or_default(),
            Profile::ParkingPrevious => Capabilities { release: "0.2.0 reading format 3".into(), formats: (3, 3), write_max: 3, protocols: vec![3, 2], schema: zongzhi_node::store::SCHEMA_VERSION },
        }
    }
}

/// When each node is upgraded, drawn from the seed before the run.
#[derive(Debug, Clone)]
pub struct UpgradePlan {
    pub profile: Profile,
    /// The tick each node is upgraded at (parents before children).
    pub at: Vec<u32>,
    /// The city tries to finalize from this tick on, each tick until it can.
    pub finalize_from: u32,
    /// A village kept on the old release past the finalization (named in
    /// the override), upgraded at its tick in `at`.
    pub laggard: Option<usize>,
    /// (village, from, until): offline across its township's upgrade.
    pub offline: Option<(usize, u32, u32)>,
    /// The laggard is upgraded by then whatever it showed.
    pub last_chance: u32,
}

/// What happened, for the checks.
#[derive(Debug, Clone, Default)]
pub struct Upgraded {
    /// Per node: its clock when it was upgraded.
    pub at_ms: Vec<Option<u64>>,
    /// The city's clock when it finalized, and the policy version.
    pub finalized: Option<(u64, u32)>,
    pub finalized_tick: Option<u32>,
    /// Records the laggard held aside before its upgrade, and whether its
    /// report of them reached the city.
    pub laggard_parked: u64,
    pub laggard_reported: bool,
    /// Its link was up at some tick between the finalization and its upgrade.
    pub laggard_linked: bool,
}

impl UpgradePlan {
    pub fn draw(world: &World, ticks: u32, seed: u64, profile: Profile) -> UpgradePlan {
        let mut rng = Rng::new(seed ^ 0x7570_6772_6164_6573);
        let n = world.nodes.len();
        let mut at = vec![0u32; n];
        let step = |rng: &mut Rng, from: u32, span: u32| from + 1 + rng.below(span as usize) as u32;
        // Nodes are in tree order (parents first): each after its parent.
        for i in 0..n {
            at[i] = match world.nodes[i].parent {
                None => step(&mut rng, ticks / 10, ticks / 10),
                Some(p) => step(&mut rng, at[p], ticks / 16),
            };
        }
        // Not the village the incidents revoke or keep offline to the end.
        let busy = [world.plan.revoke.map(|(_, v)| v), world.plan.offline_dispatch.map(|(_, v)| v)];
        let villages: Vec<usize> = (0..n).filter(|&i| world.nodes[i].division.level() == Level::Village && !busy.contains(&Some(i))).collect();
        // Finalizing over a laggard only where it can hold aside what it
        // cannot read.
        let laggard = (profile == Profile::ParkingPrevious && rng.chance(60)).then(|| rng.pick(&villages).copied()).flatten();
        let last = (0..n).filter(|i| Some(*i) != laggard).map(|i| at[i]).max().unwrap_or(0);
        let finalize_from = last + 2;
        if let Some(l) = laggard {
            at[l] = step(&mut rng, finalize_from + 4, ticks / 10);
        }
        let others: Vec<usize> = villages.iter().copied().filter(|v| Some(*v) != laggard).collect();
        let offline = rng.pick(&others).copied().and_then(|v| {
            let town = world.nodes[v].parent?;
            Some((v, at[town].saturating_sub(1 + rng.below(3) as u32), at[town] + 1 + rng.below(4) as u32))
        });
        // The village comes back after its township's upgrade, then is
        // upgraded itself.
        if let Some((v, _, until)) = offline {
            at[v] = at[v].max(until + 1);
        }
        UpgradePlan { profile, at, finalize_from, laggard, offline, last_chance: ticks.saturating_sub(6) }
    }
}

/// Runs what falls due at `tick`: a village going offline or coming back,
/// upgrades, the finalization.
pub fn at_tick(world: &mut World, tick: u32) -> anyhow::Result<()> {
    let Some(plan) = world.upgrade.clone() else { return Ok(()) };
    if let Some((v, from, until)) = plan.offline
        && tick == from
        && let Some(e) = world.edges.iter().position(|e| e.child == v)
    {
        world.edges[e].down_until = until;
        world.drop_conn(e);
    }
    for (i, t) in plan.at.iter().enumerate() {
        // The laggard waits past the finalization (its reports of what it
        // holds aside reach the city meanwhile).
        let due = match plan.laggard {
            // Once it parked what it received and the city heard of it (or
            // at the last chance, if its link stayed down).
            Some(l) if l == i => {
                let shown = world.upgraded.laggard_reported && !world.nodes[l].shared().store.parked()?.is_empty();
                world.upgraded.finalized_tick.is_some_and(|f| tick >= (*t).max(f + 6) && (shown || tick >= plan.last_chance))
            }
            _ => *t == tick,
        };
        if due && world.upgraded.at_ms[i].is_none() && !world.is_revoked(i) {
            upgrade(world, i, &plan)?;
        }
    }
    if tick >= plan.finalize_from && world.upgraded.finalized.is_none() {
        finalize(world, &plan)?;
    }
    if let Some(l) = plan.laggard
        && world.upgraded.finalized.is_some()
        && world.upgraded.at_ms[l].is_none()
    {
        let up = world.edges.iter().any(|e| e.child == l && e.down_until <= tick);
        world.upgraded.laggard_linked |= up;
        let city = world.city().shared();
        let key = world.nodes[l].id.0;
        world.upgraded.laggard_reported |= city.store.fleet()?.iter().any(|e| e.report.key == key && e.report.parked > 0);
    }
    Ok(())
}

/// The binary is replaced: the process stops (as a crash: nothing is
/// flushed) and starts on this build's release.
fn upgrade(world: &mut World, n: usize, plan: &UpgradePlan) -> anyhow::Result<()> {
    if plan.laggard == Some(n) {
        world.upgraded.laggard_parked = world.nodes[n].shared().store.parked()?.len() as u64;
    }
    for e in 0..world.edges.len() {
        if world.edges[e].parent == n || world.edges[e].child == n {
            world.drop_conn(e);
        }
    }
    world.nodes[n].caps = Capabilities::this_build();
    world.nodes[n].crash_and_restart()?;
    world.upgraded.at_ms[n] = Some(world.nodes[n].clock.now_ms());
    Ok(())
}

/// The city finalizes format 4 once its fleet says every center reads it
/// (the laggard named in an override); until then it waits.
fn finalize(world: &mut World, plan: &UpgradePlan) -> anyhow::Result<()> {
    if world.upgraded.at_ms[0].is_none() {
        return Ok(());
    }
    let overridden: Vec<DivisionCode> = plan.laggard.map(|l| world.nodes[l].division).into_iter().collect();
    let outcome = zongzhi_node::replication::fleet::finalizing_policy(world.city().shared(), 4, &overridden, "模拟：村站尚未升级");
    let policy = match outcome {
        Ok((policy, _)) => policy,
        // Reports still on their way up.
        Err(zongzhi_node::replication::fleet::FinalizeError::Laggards { .. }) => return Ok(()),
        Err(e) => bail!("the city could not finalize: {e}"),
    };
    let version = policy.version;
    for r in world.nodes[0].process(vec![Op::AppendOwn { body: Body::Policy(Box::new(policy)) }]) {
        r.context("the city signing the finalizing policy")?;
    }
    world.upgraded.finalized = Some((world.nodes[0].clock.now_ms(), version));
    world.upgraded.finalized_tick = Some(world.tick);
    Ok(())
}

/// What must hold at the end of an upgrade run.
pub fn check(world: &World) -> anyhow::Result<()> {
    let Some(plan) = &world.upgrade else { return Ok(()) };
    let Some((finalized_ms, version)) = world.upgraded.finalized else { bail!("the city never finalized format 4") };
    for (i, n) in world.nodes.iter().enumerate() {
        if world.is_revoked(i) {
            continue;
        }
        if world.upgraded.at_ms[i].is_none() {
            bail!("{} was never upgraded", n.division);
        }
        let parked = n.shared().store.parked()?;
        if let Some((id, e)) = parked.first() {
            bail!("{} still holds {} records aside after every upgrade; the first: {} ({})", n.division, parked.len(), id.fmt_short(), e.reason);
        }
    }
    // Nobody signed above the gate: every record of format 4 came after
    // the finalization (and a case event names that policy or a later
    // one), and none before its author's upgrade.
    let city = &world.city().shared().store;
    let skew = 20 * 60_000;
    let upgraded_at: std::collections::HashMap<zongzhi_protocol::NodeId, u64> = world.nodes.iter().enumerate().filter_map(|(i, n)| Some((n.id, world.upgraded.at_ms[i]?))).collect();
    let mut from = 1;
    let mut format_4 = 0;
    loop {
        let chunk = city.feed_records(from, 4096)?;
        let Some(&(last, _, _)) = chunk.last() else { break };
        for (_, id, bytes) in chunk {
            let r = Record::decode_unverified(&bytes)?;
            if r.format < 4 {
                continue;
            }
            format_4 += 1;
            let at = r.header.hlc.wall_ms;
            if at + skew < finalized_ms {
                bail!("record {} of format 4 was signed at {at}, before the finalization at {finalized_ms}", id.fmt_short());
            }
            if upgraded_at.get(&r.author).is_some_and(|u| at + skew < *u) {
                bail!("record {} of format 4 was signed before its author's upgrade", id.fmt_short());
            }
            if let Body::CaseEvent(e) = &r.body
                && e.policy < version
            {
                bail!("case event {} of format 4 names policy {} from before the finalizing version {version}", id.fmt_short(), e.policy);
            }
        }
        from = last + 1;
    }
    if format_4 == 0 {
        bail!("nothing was signed in format 4 after the finalization");
    }
    if plan.laggard.is_some() && world.upgraded.laggard_linked && (world.upgraded.laggard_parked == 0 || !world.upgraded.laggard_reported) {
        bail!(
            "the village finalized over held {} records aside before its upgrade (reported to the city: {}); it holds the finalizing policy at least",
            world.upgraded.laggard_parked,
            world.upgraded.laggard_reported
        );
    }
    Ok(())
}

/// The upgrade run in words, for the report line.
pub fn describe(world: &World) -> Option<String> {
    let plan = world.upgrade.as_ref()?;
    let from = match plan.profile {
        Profile::Previous => "0.1.0",
        Profile::ParkingPrevious => "a parking release reading format 3",
    };
    let mut text = format!("upgraded from {from} top-down");
    if let Some((v, _, _)) = plan.offline {
        text.push_str(&format!(", {} offline across its township's upgrade", world.nodes[v].division));
    }
    match (world.upgraded.finalized_tick, plan.laggard) {
        (Some(t), Some(l)) => text.push_str(&format!(
            ", format 4 finalized at tick {t} over {} (it held {} records aside{})",
            world.nodes[l].division,
            world.upgraded.laggard_parked,
            if world.upgraded.laggard_reported { " and reported them" } else { ", its link down" }
        )),
        (Some(t), None) => text.push_str(&format!(", format 4 finalized at tick {t}")),
        (None, _) => text.push_str(", never finalized"),
    }
    Some(text)
}
