//! The rare events of a run, each at a tick the seed picks: the city signs
//! a new policy version (new deadlines and supervision thresholds, pushed
//! down the tree by replication), a township revokes the key of one of its
//! villages (records that key signed above the cut-off become void
//! everywhere, and the village is cut off for good, as the QUIC handshake
//! refuses a revoked peer), and one village's key signs a second record at
//! a seq it already used (an equivocation, which its parent must refuse
//! and raise as the run's only alarm). Late in the run a village goes
//! offline until the end, and its township files a case, dispatches it to
//! that village and supervises it there (督办): the catch-up at the end must
//! bring the village the case with the 督办, nothing left waiting (the
//! situation a new operator found a 督办 stuck in, see ARCHITECTURE.md).

use anyhow::{Context as _, bail};
use zongzhi_node::ledger::{Op, Outcome};
use zongzhi_protocol::case::SuperviseGrade;
use zongzhi_protocol::cert::Revocation;
use zongzhi_protocol::{Action, Body, Header, Level, NodeId, Record};

use crate::rng::Rng;
use crate::world::World;

/// When each incident happens, drawn from the seed before the run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub policy_at: u32,
    /// (tick, village node index)
    pub revoke: Option<(u32, usize)>,
    /// (first tick it is tried, village node index); tried each tick until
    /// the village has a record at its parent to fork.
    pub equivocate: Option<(u32, usize)>,
    /// (tick, village node index): the village goes offline until the end
    /// and its township dispatches a case to it and supervises it.
    pub offline_dispatch: Option<(u32, usize)>,
    /// (backup tick, restore tick, township node index): a township is
    /// backed up, works on, loses its store and is restored from the
    /// backup; it must get its own records back before it signs again.
    pub restore: Option<(u32, u32, usize)>,
}

/// What happened, for the checks.
#[derive(Debug, Clone, Default)]
pub struct Happened {
    pub policy_version: Option<u32>,
    /// (village node index, its key, cut-off seq)
    pub revoked: Option<(usize, NodeId, u64)>,
    /// (node that received the fork, the equivocating key, the seq)
    pub equivocation: Option<(usize, NodeId, u64)>,
    /// (the offline village, the case dispatched and supervised to it)
    pub offline_dispatch: Option<(usize, zongzhi_protocol::RecordId)>,
    /// (township, its own chain head at the backup, at the loss)
    pub restored: Option<(usize, u64, u64)>,
    /// The backup's own chain head, between the backup and the restore.
    pub backed_up: Option<u64>,
    /// Steps the restored township acknowledged that no other center held
    /// when its disk was lost (signed after its last sync and not in the
    /// backup): gone, as the runbook says.
    pub lost_with_disk: usize,
    /// How many of its acknowledged steps the backup holds (the first ones).
    pub acked_at_backup: usize,
    /// The equivocation had been caught when the backup was taken.
    pub equivocation_before_backup: bool,
    /// The township that caught the equivocation was restored from a
    /// backup older than the catch: its alarm went with its disk.
    pub alarm_lost_with_disk: bool,
}

impl Happened {
    pub fn describe(&self, world: &World) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v) = self.policy_version {
            out.push(format!("policy v{v}"));
        }
        if let Some((n, _, cutoff)) = self.revoked {
            out.push(format!("{} revoked above seq {cutoff}", world.nodes[n].division));
        }
        if let Some((v, _)) = self.offline_dispatch {
            out.push(format!("{} offline to the end while a case was dispatched to it and supervised", world.nodes[v].division));
        }
        if let Some((n, at_backup, at_loss)) = self.restored {
            out.push(format!("{} restored from a backup at seq {at_backup} (others held up to {at_loss}; {} steps only it held lost)", world.nodes[n].division, self.lost_with_disk));
        }
        if let Some((at, key, seq)) = self.equivocation {
            let who = world.nodes.iter().find(|n| n.id == key).map_or_else(|| key.fmt_short(), |n| n.division.to_string());
            out.push(format!("{who} equivocated at seq {seq}, caught by {}", world.nodes[at].division));
        }
        out
    }
}

impl Plan {
    /// Two different villages, when the tree has two.
    pub fn draw(world: &World, ticks: u32, seed: u64) -> Plan {
        let mut rng = Rng::new(seed ^ 0x696e_6369_6465_6e74);
        let villages: Vec<usize> = (0..world.nodes.len()).filter(|&i| world.nodes[i].division.level() == Level::Village).collect();
        let at = |rng: &mut Rng, from: u32, to: u32| from + rng.below((to - from).max(1) as usize) as u32;
        let policy_at = at(&mut rng, ticks / 5, ticks / 2);
        let revoke_village = rng.pick(&villages).copied();
        let others: Vec<usize> = villages.iter().copied().filter(|v| Some(*v) != revoke_village).collect();
        let equivocate_village = rng.pick(&others).copied();
        let revoke = revoke_village.map(|v| (at(&mut rng, ticks / 3, ticks * 2 / 3), v));
        let equivocate = equivocate_village.map(|v| (at(&mut rng, ticks / 4, ticks * 3 / 4), v));
        // Drawn last, so the draws above stay what they were.
        let offline_dispatch = rng.pick(&others).copied().map(|v| (at(&mut rng, ticks * 4 / 5, ticks.saturating_sub(2)), v));
        // The township whose village goes offline dispatches to it while
        // it is offline: the other one is restored, between the revocation
        // and that dispatch.
        let busy = offline_dispatch.and_then(|(_, v)| world.nodes[v].parent);
        let townships: Vec<usize> = (0..world.nodes.len()).filter(|&i| world.nodes[i].division.level() == Level::Township && Some(i) != busy).collect();
        let restore = rng.pick(&townships).copied().map(|t| {
            let backup = at(&mut rng, ticks / 2, ticks * 2 / 3);
            (backup, at(&mut rng, ticks * 2 / 3 + 1, ticks * 3 / 4), t)
        });
        Plan { policy_at, revoke, equivocate, offline_dispatch, restore }
    }
}

/// Runs whatever incident falls due at `tick`.
pub fn at_tick(world: &mut World, rng: &mut Rng, tick: u32) -> anyhow::Result<()> {
    let plan = world.plan.clone();
    if tick == plan.policy_at && world.happened.policy_version.is_none() {
        push_policy(world, rng)?;
    }
    if let Some((t, v)) = plan.revoke
        && tick == t
    {
        revoke(world, v, rng)?;
    }
    if let Some((t, v)) = plan.equivocate
        && tick >= t
        && world.happened.equivocation.is_none()
    {
        equivocate(world, v)?;
    }
    if let Some((t, v)) = plan.offline_dispatch
        && tick == t
    {
        offline_dispatch(world, v, rng)?;
    }
    if let Some((backup, restore, t)) = plan.restore {
        if tick == backup {
            world.happened.backed_up = Some(world.nodes[t].backup(&world.backup_dir())?);
            world.happened.acked_at_backup = world.nodes[t].acked.len();
            world.happened.equivocation_before_backup = world.happened.equivocation.is_some();
        }
        if tick == restore
            && let Some(at_backup) = world.happened.backed_up
        {
            restore_township(world, t, at_backup, rng)?;
        }
    }
    Ok(())
}

/// Township `t` loses its store and is restored from the backup: its
/// connections go with the process; it comes back marked restored, with a
/// new feed epoch.
fn restore_township(world: &mut World, t: usize, at_backup: u64, rng: &mut Rng) -> anyhow::Result<()> {
    for e in 0..world.edges.len() {
        if world.edges[e].parent == t || world.edges[e].child == t {
            world.drop_conn(e);
        }
    }
    // The head it must get back: the highest of its seqs another center holds.
    let key = world.nodes[t].id;
    let mut at_loss = 0;
    for o in (0..world.nodes.len()).filter(|&o| o != t) {
        at_loss = at_loss.max(world.nodes[o].shared().store.chain_last(&key)?.map_or(0, |(s, _)| s));
    }
    // What it acknowledged and no other center holds is gone with its disk
    // (a backup cannot hold what came after it); everything else must come
    // back.
    let mut kept = Vec::new();
    let in_backup = world.happened.acked_at_backup;
    for (i, id) in std::mem::take(&mut world.nodes[t].acked).into_iter().enumerate() {
        let elsewhere = (0..world.nodes.len()).filter(|&o| o != t).try_fold(false, |found, o| world.nodes[o].shared().store.has_record(&id).map(|h| found || h))?;
        if elsewhere || i < in_backup {
            kept.push(id);
        } else {
            world.happened.lost_with_disk += 1;
        }
    }
    world.nodes[t].acked = kept;
    let mut epoch = [0u8; 16];
    epoch[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    let dir = world.backup_dir();
    world.nodes[t].restore_from(&dir, epoch)?;
    world.happened.restored = Some((t, at_backup, at_loss));
    world.happened.alarm_lost_with_disk = world.happened.equivocation.is_some_and(|(at, _, _)| at == t) && !world.happened.equivocation_before_backup;
    Ok(())
}

/// Village `v`'s link goes down until the end of the run; its township
/// files a case, signs for it, dispatches it to `v` and supervises it
/// there, all while `v` is offline.
fn offline_dispatch(world: &mut World, v: usize, rng: &mut Rng) -> anyhow::Result<()> {
    let Some(town) = world.nodes[v].parent else { return Ok(()) };
    if let Some(e) = world.edges.iter().position(|e| e.child == v) {
        world.edges[e].down_until = u32::MAX;
        world.drop_conn(e);
    }
    let now = world.nodes[town].clock.now_ms();
    let filed = world.nodes[town].process(vec![crate::workload::filing(rng, now)]);
    let Some(Ok(Outcome::Step(ack))) = filed.into_iter().next() else { bail!("the township could not file") };
    world.nodes[town].acked.push(ack.event);
    let to = world.nodes[v].division;
    let step = |action| Op::Act { case: ack.case, action, operator: "模拟办理员".into() };
    crate::workload::run(world, town, vec![step(Action::SignFor)])?;
    crate::workload::run(world, town, vec![step(Action::Dispatch { to, requirements: "属地处置".into(), due_ms: None })])?;
    crate::workload::run(world, town, vec![step(Action::Supervise { grade: SuperviseGrade::Yellow, note: "请抓紧办理".into() })])?;
    world.happened.offline_dispatch = Some((v, ack.case));
    Ok(())
}

/// The city's administrator changes the deadline table and the supervision
/// thresholds: a policy record of the next version, as `POST /api/policy`
/// signs it.
fn push_policy(world: &mut World, rng: &mut Rng) -> anyhow::Result<()> {
    let mut next = (*world.city().shared().policy()).clone();
    next.version += 1;
    next.deadlines.resolution_working_days = 10 + rng.below(10) as u32;
    next.deadlines.sign_for_minutes = next.deadlines.sign_for_minutes.max(60) - 30;
    next.supervision.normal_after_minutes += 60;
    next.supervision.yellow_after_minutes += 120;
    let version = next.version;
    for r in world.nodes[0].process(vec![Op::AppendOwn { body: Body::Policy(Box::new(next)) }]) {
        r.context("the city signing a new policy version")?;
    }
    world.happened.policy_version = Some(version);
    Ok(())
}

/// The village's township revokes its key with a cut-off a little below
/// what the township holds of its chain, so that records already spread up
/// the tree become void too. The village is off the tree from then on.
fn revoke(world: &mut World, v: usize, rng: &mut Rng) -> anyhow::Result<()> {
    let parent = world.nodes[v].parent.context("a village has a parent")?;
    let key = world.nodes[v].id;
    let held = world.nodes[parent].shared().store.chain_last(&key)?.map_or(0, |(seq, _)| seq);
    let cutoff = held.saturating_sub(rng.below(3) as u64);
    let rev = Revocation { key, division: world.nodes[v].division, cutoff_seq: cutoff, reason: "模拟：设备丢失".into() };
    for r in world.nodes[parent].process(vec![Op::AppendOwn { body: Body::Revocation(rev) }]) {
        r.context("the township revoking a village's key")?;
    }
    world.happened.revoked = Some((v, key, cutoff));
    Ok(())
}

/// The village's key signs a second record at the seq of the newest record
/// its parent holds from it (same seq and previous record, another time),
/// and the parent receives it: it must refuse it and raise an alarm.
fn equivocate(world: &mut World, v: usize) -> anyhow::Result<()> {
    if world.happened.revoked.is_some_and(|(r, _, _)| r == v) {
        return Ok(());
    }
    let parent = world.nodes[v].parent.context("a village has a parent")?;
    let key = world.nodes[v].id;
    let Some((seq, id)) = world.nodes[parent].shared().store.chain_last(&key)? else { return Ok(()) };
    let bytes = world.nodes[parent].shared().store.record_bytes(&id)?.context("a held chain head")?;
    let honest = Record::decode_unverified(&bytes)?;
    let mut hlc = honest.header.hlc;
    hlc.wall_ms += 1;
    let fork = Record::sign(world.nodes[v].signing_key(), Header { seq, prev: honest.header.prev, hlc }, honest.body.clone());
    let fork_id = fork.id;
    for r in world.nodes[parent].process(vec![Op::Ingest { records: vec![fork], blobs: vec![], cursor: None }]) {
        match r {
            Ok(Outcome::Ingested(report)) if report.rejected.iter().any(|(id, _)| *id == fork_id) => {}
            other => bail!("{} took a second record of {} at seq {seq}: {other:?}", world.nodes[parent].division, world.nodes[v].division),
        }
    }
    world.happened.equivocation = Some((parent, key, seq));
    Ok(())
}
