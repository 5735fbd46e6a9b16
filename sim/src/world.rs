//! The simulated tree: real nodes (store + writer) in temporary
//! directories, and the links between parents and children.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use zongzhi_node::config::Config;
use zongzhi_node::context::Clock;
use zongzhi_node::context::Context;
use zongzhi_node::ledger::{Cursor, Op, Outcome, Writer};
use zongzhi_node::store::meta;
use zongzhi_node::{node, replication};
use zongzhi_protocol::cert::{EnrollmentRequest, NodeCert};
use zongzhi_protocol::sync::Direction;
use zongzhi_protocol::{BlobHash, Body, DivisionCode, Level, NodeId, NodeKey, RecordId};

use crate::rng::Rng;
use crate::{Options, Stats};

/// `ZONGZHI_SIM_DEBUG` is set: print every batch and every refusal.
fn debug() -> bool {
    std::env::var_os("ZONGZHI_SIM_DEBUG").is_some()
}

/// Where a run's clock starts: a Monday 09:00 (+08:00) in 2026 plus a
/// number of days the seed picks, so seeds cover weekends, holidays and
/// the policy's calendar.
pub fn start_ms(seed: u64) -> u64 {
    const MONDAY_2026_01_05_0900_CST: u64 = 1_767_574_800_000;
    MONDAY_2026_01_05_0900_CST + (Rng::new(seed).next_u64() % 330) * 86_400_000
}

/// Simulated time per step.
pub const TICK_MS: u64 = 15 * 60_000;

/// One simulated center: a real node's store and writer.
pub struct SimNode {
    pub division: DivisionCode,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub id: NodeId,
    cfg: Config,
    key: Arc<NodeKey>,
    /// `None` while crashed (between dropping and reopening).
    inner: Option<(Context, Writer)>,
    /// Records this node acknowledged (its own steps): they must survive
    /// every crash.
    pub acked: Vec<RecordId>,
}

impl SimNode {
    fn open(cfg: &Config, key: &Arc<NodeKey>, clock: &Clock) -> anyhow::Result<(Context, Writer)> {
        let store = node::open_store(cfg, key)?;
        let mut shared = node::shared_state(cfg, store, key.clone())?;
        shared.clock = clock.clone();
        let writer = node::start_writer(shared.clone())?;
        Ok((shared, writer))
    }

    /// The node's key, to sign what an equivocating author signs.
    pub fn signing_key(&self) -> &NodeKey {
        &self.key
    }

    pub fn shared(&self) -> &Context {
        &self.inner.as_ref().expect("a node is reopened right after its crash").0
    }

    /// Runs operations as one write group (as the node's writer thread
    /// groups what is queued).
    pub fn process(&mut self, ops: Vec<Op>) -> Vec<zongzhi_node::ledger::Result<Outcome>> {
        // `ZONGZHI_SIM_TRACE_REINDEX=1`: rebuild the derived state after
        // every write group, so a divergence stops the run at the group
        // that caused it (slow; for finding, not for the soak).
        let trace = std::env::var_os("ZONGZHI_SIM_TRACE_REINDEX").map(|_| describe_ops(&ops));
        let results = self.inner.as_mut().expect("a node is reopened right after its crash").1.process(ops);
        if let Some(ops) = trace {
            let shared = self.shared();
            match crate::checks::reindex_diff(shared) {
                Ok(None) => {}
                Ok(Some(diff)) => panic!("{}: the write group below left derived state a reindex changes:\n{diff}\nthe group:\n{ops}\nresults: {results:?}", self.division),
                Err(e) => panic!("{}: reindex failed: {e}", self.division),
            }
        }
        results
    }

    /// A crash: the writer and the store are dropped with whatever was not
    /// synced, then the node starts again through its start-up passes.
    pub fn crash_and_restart(&mut self, clock: &Clock) -> anyhow::Result<()> {
        self.inner = None;
        self.inner = Some(Self::open(&self.cfg, &self.key, clock)?);
        Ok(())
    }

    fn epoch(&self) -> anyhow::Result<[u8; 16]> {
        let v = self.shared().store.meta_get(meta::FEED_EPOCH)?.context("no feed epoch")?;
        <[u8; 16]>::try_from(v.as_slice()).context("feed epoch")
    }
}

/// One line per operation (records as id, author, seq, action, parents).
fn describe_ops(ops: &[Op]) -> String {
    let record = |r: &zongzhi_protocol::Record| match &r.body {
        Body::CaseEvent(ev) => format!("{} by {} seq {}: {} of case {:?}, parents {:?}", r.id, r.author, r.header.seq, ev.action.as_str(), ev.case, ev.parents),
        other => format!("{} by {} seq {}: {:?}", r.id, r.author, r.header.seq, std::mem::discriminant(other)),
    };
    ops.iter()
        .map(|op| match op {
            Op::Ingest { records, blobs, .. } => format!("ingest, {} blobs:\n  {}", blobs.len(), records.iter().map(record).collect::<Vec<_>>().join("\n  ")),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A parent–child link and when it comes back after a cut.
#[derive(Debug, Clone)]
pub struct Link {
    pub parent: usize,
    pub child: usize,
    pub down_until: u32,
}

pub struct World {
    _dir: tempfile::TempDir,
    /// The one simulated clock every node's writer reads.
    pub clock: Clock,
    pub nodes: Vec<SimNode>,
    pub links: Vec<Link>,
    pub stats: Stats,
    pub tick: u32,
    /// When the run's incidents happen, and what they did.
    pub plan: crate::incidents::Plan,
    pub happened: crate::incidents::Happened,
}

/// The tree: a city, one county, two townships, villages under each.
fn divisions(villages: usize) -> Vec<(DivisionCode, Option<usize>)> {
    let code = |s: String| -> DivisionCode { s.parse().unwrap_or_else(|_| unreachable!("fixed codes")) };
    let mut out = vec![(code("330100000000".into()), None), (code("330106000000".into()), Some(0))];
    for t in 1..=2 {
        let town = out.len();
        out.push((code(format!("330106{t:03}000")), Some(1)));
        for v in 1..=villages {
            out.push((code(format!("330106{t:03}{v:03}")), Some(town)));
        }
    }
    out
}

impl World {
    /// Initializes and enrolls every node the way an operator does
    /// (`init`, the parent signs the enrollment request, `import-cert`).
    pub fn build(opts: &Options) -> anyhow::Result<World> {
        let dir = tempfile::tempdir()?;
        let clock = Clock::manual(start_ms(opts.seed));
        // Keys and feed epochs from their own stream of the seed, so that
        // the workload's draws do not shift when a node is added.
        let mut keys = Rng::new(opts.seed.rotate_left(32) ^ 0x6b65_7973);
        let mut nodes: Vec<SimNode> = Vec::new();
        let mut root: Option<NodeId> = None;
        for (i, (division, parent)) in divisions(opts.villages_per_township).into_iter().enumerate() {
            let ndir = dir.path().join(division.to_string());
            std::fs::create_dir_all(&ndir)?;
            let mut toml = format!("data_dir = \"data\"\ndivision = \"{division}\"\nname = \"模拟{}中心{i}\"\n", division.level().zh());
            if let Some(r) = root {
                toml.push_str(&format!("root_key = \"{r}\"\n"));
            }
            std::fs::write(ndir.join("node.toml"), toml)?;
            let cfg = Config::load(&ndir.join("node.toml"))?;
            let init = node::init_with(&cfg, &mut keys, &clock)?;
            if let Some(p) = parent {
                let path = init.enrollment_request.context("a child writes an enrollment request")?;
                let req = EnrollmentRequest::from_armored(&std::fs::read_to_string(path)?)?;
                let chain = enroll(&mut nodes[p], &req, clock.now_ms())?;
                node::import_chain(&cfg, &chain)?;
            } else {
                root = Some(init.key);
            }
            let key = Arc::new(node::load_key(&cfg)?);
            let inner = SimNode::open(&cfg, &key, &clock)?;
            nodes.push(SimNode { division, parent, children: Vec::new(), id: key.id(), cfg, key, inner: Some(inner), acked: Vec::new() });
            if let Some(p) = parent {
                nodes[p].children.push(i);
            }
        }
        let links = nodes.iter().enumerate().filter_map(|(i, n)| n.parent.map(|p| Link { parent: p, child: i, down_until: 0 })).collect();
        let mut world = World { _dir: dir, clock, nodes, links, stats: Stats::default(), tick: 0, plan: Default::default(), happened: Default::default() };
        world.plan = crate::incidents::Plan::draw(&world, opts.ticks, opts.seed);
        Ok(world)
    }

    /// Every node's own chain head and feed position, hashed (see
    /// [`Stats::digest`]).
    pub fn digest(&self) -> anyhow::Result<String> {
        let mut h = blake3::Hasher::new();
        for n in &self.nodes {
            let store = &n.shared().store;
            for key in [meta::OWN_HEAD, meta::FEED_SEQ] {
                h.update(&store.meta_get(key)?.unwrap_or_default());
            }
        }
        Ok(h.finalize().to_hex()[..16].to_string())
    }

    pub fn city(&self) -> &SimNode {
        &self.nodes[0]
    }

    /// The node whose key was revoked: off the tree (no link carries
    /// anything to or from it, its operators stop).
    pub fn is_revoked(&self, n: usize) -> bool {
        self.happened.revoked.is_some_and(|(r, _, _)| r == n)
    }

    fn link_carries(&self, l: usize) -> bool {
        !self.is_revoked(self.links[l].child) && !self.is_revoked(self.links[l].parent)
    }

    /// One step (a quarter of an hour of simulated time): some work, the
    /// supervision workers every hour, some faults, some replication.
    pub fn tick(&mut self, rng: &mut Rng, tick: u32) -> anyhow::Result<()> {
        self.tick = tick;
        self.clock.advance(TICK_MS);
        crate::incidents::at_tick(self, rng, tick)?;
        for _ in 0..2 {
            crate::workload::step(self, rng)?;
        }
        if tick.is_multiple_of(4) {
            for n in 0..self.nodes.len() {
                if !self.is_revoked(n) {
                    crate::workload::auto_supervise(self, n)?;
                }
            }
        }
        self.faults(rng)?;
        for l in 0..self.links.len() {
            if self.links[l].down_until <= tick && self.link_carries(l) {
                self.sync_link(l, rng, true)?;
            }
        }
        Ok(())
    }

    fn faults(&mut self, rng: &mut Rng) -> anyhow::Result<()> {
        if rng.chance(6) {
            // A cut: mostly short; a village is sometimes offline for a long
            // stretch (simulated days) while both sides keep working.
            let l = rng.below(self.links.len());
            let long = self.nodes[self.links[l].child].division.level() == Level::Village && rng.chance(30);
            self.links[l].down_until = self.tick + if long { 40 + rng.below(40) as u32 } else { 1 + rng.below(6) as u32 };
            self.stats.link_cuts += 1;
        }
        if rng.chance(3) {
            let n = rng.below(self.nodes.len());
            let clock = self.clock.clone();
            self.nodes[n].crash_and_restart(&clock)?;
            self.stats.crashes += 1;
        }
        Ok(())
    }

    /// Replicates a link both ways: a few batches each way, some lost on
    /// the wire, some handed to the writer together as one group. Returns
    /// how much moved (records and cursor steps); 0 when nothing did.
    pub fn sync_link(&mut self, l: usize, rng: &mut Rng, faulty: bool) -> anyhow::Result<u64> {
        let Link { parent, child, .. } = self.links[l];
        let mut moved = 0;
        for (from, to, dir) in [(child, parent, Direction::Up), (parent, child, Direction::Down)] {
            moved += self.sync_direction(from, to, dir, rng, faulty)?;
        }
        Ok(moved)
    }

    fn sync_direction(&mut self, from: usize, to: usize, dir: Direction, rng: &mut Rng, faulty: bool) -> anyhow::Result<u64> {
        let direction = dir as u8;
        let (sender_id, epoch) = (self.nodes[from].id, self.nodes[from].epoch()?);
        let stored = self.nodes[to].shared().store.cursor(&sender_id, direction)?;
        // As `FeedSender::on_subscribe`: another epoch starts from the beginning.
        let mut after = match stored {
            Some((e, upto)) if e == epoch => upto,
            _ => 0,
        };
        let peer_division = self.nodes[to].division;
        let mut ops = Vec::new();
        let (mut moved, mut progress) = (0u64, 0u64);
        // The urgent-first batch leaves the cursor where it is.
        if rng.chance(15)
            && let Some(out) = replication::build_urgent(self.nodes[from].shared(), peer_division, dir, after)?
        {
            self.check_no_echo(from, to, dir, &out.records)?;
            moved += out.records.len() as u64;
            ops.push(ingest(out, Cursor { peer: sender_id, direction, epoch, upto: after, in_order: false }, rng, faulty)?);
        }
        if debug() && !ops.is_empty() {
            eprintln!("urgent {}→{} after {after}", self.nodes[from].division, self.nodes[to].division);
        }
        let batches = 1 + rng.below(3);
        for _ in 0..batches {
            let out = replication::build_batch(self.nodes[from].shared(), peer_division, dir, after)?;
            self.check_no_echo(from, to, dir, &out.records)?;
            if out.upto == after {
                break;
            }
            after = out.upto;
            self.stats.batches += 1;
            // The cursor moves even when scope filters every record out.
            progress += 1;
            if faulty && rng.chance(4) {
                // Lost on the wire (the link dropped before it was read):
                // nothing after it is received either.
                self.stats.batches_lost += 1;
                break;
            }
            moved += out.records.len() as u64;
            if debug() {
                let ids: Vec<String> = out.records.iter().filter_map(|b| zongzhi_protocol::Record::decode_unverified(b).ok()).map(|r| r.id.fmt_short()[..4].to_string()).collect();
                eprintln!("batch {}→{} upto {after}: {}", self.nodes[from].division, self.nodes[to].division, ids.join(" "));
            }
            ops.push(ingest(out, Cursor { peer: sender_id, direction, epoch, upto: after, in_order: true }, rng, faulty)?);
        }
        if ops.is_empty() {
            return Ok(progress);
        }
        // Several batches in one write group, or one group each.
        let groups: Vec<Vec<Op>> = if rng.chance(50) { vec![ops] } else { ops.into_iter().map(|o| vec![o]).collect() };
        for group in groups {
            let results = self.nodes[to].process(group);
            for r in results {
                let report = match r {
                    Ok(Outcome::Ingested(report)) => report,
                    other => bail!("{} ingesting from {}: {other:?}", self.nodes[to].division, self.nodes[from].division),
                };
                if debug() && !report.rejected.is_empty() {
                    eprintln!("{} refused from {}: {:?}", self.nodes[to].division, self.nodes[from].division, report.rejected.iter().map(|(id, why)| format!("{} {why}", id.fmt_short())).collect::<Vec<_>>());
                }
                let want = replication::wants(&report);
                if !want.is_empty() {
                    self.stats.wants += 1;
                    self.answer_want(from, to, dir, &want)?;
                }
            }
        }
        self.stats.records_moved += moved;
        Ok(moved + progress)
    }

    /// Each record once: a case event authored in a node's own subtree (by a
    /// key not revoked) never comes back down to it. Checked on what the
    /// sender built, against the receiver's trust store, not against the
    /// scope rule that built it.
    fn check_no_echo(&self, from: usize, to: usize, dir: Direction, records: &[Vec<u8>]) -> anyhow::Result<()> {
        if dir != Direction::Down {
            return Ok(());
        }
        let receiver = self.nodes[to].division;
        let trust = self.nodes[to].shared().trust();
        for bytes in records {
            let r = zongzhi_protocol::Record::decode_unverified(bytes)?;
            let Some(m) = trust.member(&r.author) else { continue };
            if matches!(r.body, zongzhi_protocol::Body::CaseEvent(_)) && receiver.contains(m.cert.division) && trust.revocation(&r.author).is_none() {
                bail!("{} sent {receiver} its own subtree's record {} back down", self.nodes[from].division, r.id.fmt_short());
            }
        }
        Ok(())
    }

    /// The sender answers a `Want` with the records its scope allows.
    fn answer_want(&mut self, from: usize, to: usize, dir: Direction, want: &[[u8; 32]]) -> anyhow::Result<()> {
        let records = replication::wanted(self.nodes[from].shared(), self.nodes[to].division, dir, want)?;
        self.check_no_echo(from, to, dir, &records)?;
        if records.is_empty() {
            return Ok(());
        }
        let records = replication::decode_verified(records)?;
        for r in self.nodes[to].process(vec![Op::Ingest { records, blobs: vec![], cursor: None }]) {
            if !matches!(r, Ok(Outcome::Ingested(_))) {
                bail!("{} ingesting wanted records: {r:?}", self.nodes[to].division);
            }
        }
        Ok(())
    }

    /// Heals every link and replicates until a whole round moves nothing.
    pub fn quiesce(&mut self) -> anyhow::Result<()> {
        for l in &mut self.links {
            l.down_until = 0;
        }
        // Faults off: a fixed generator for the grouping choices only.
        let mut rng = Rng::new(0);
        for round in 1..=200 {
            let mut moved = 0;
            for l in 0..self.links.len() {
                if self.link_carries(l) {
                    moved += self.sync_link(l, &mut rng, false)?;
                }
            }
            if moved == 0 {
                self.stats.rounds_to_quiesce = round;
                return Ok(());
            }
        }
        bail!("replication did not settle after 200 rounds")
    }
}

/// The parent signs a child's certificate; returns the chain text the
/// child imports (as `POST /api/certs/issue` and `import-cert` do).
fn enroll(parent: &mut SimNode, req: &EnrollmentRequest, now: u64) -> anyhow::Result<String> {
    let cert = NodeCert {
        key: req.key,
        division: req.division,
        level: req.division.level(),
        name: req.name.clone(),
        issuer: parent.id,
        not_before_ms: now.saturating_sub(3_600_000),
        not_after_ms: now + 365 * 86_400_000,
        serial: parent.children.len() as u64 + 2,
    };
    for r in parent.process(vec![Op::AppendOwn { body: Body::NodeCert(cert) }]) {
        r.with_context(|| format!("{} certifying {}", parent.division, req.division))?;
    }
    let shared = parent.shared();
    let ids = shared.trust().chain(&req.key).context("chain to the new certificate")?;
    let mut text = String::new();
    for id in ids {
        let bytes = shared.store.record_bytes(&id)?.context("certificate record")?;
        text.push_str(&zongzhi_protocol::cert::armor(zongzhi_protocol::cert::RECORDS_ARMOR, &bytes));
    }
    Ok(text)
}

/// What the receiving side of a link does with a batch: decode and
/// batch-verify the records, then one ingest with the cursor.
/// The receiver's `Op::Ingest` for a batch. On a faulty link the records
/// may arrive reordered (a step before its parents, a 督办 before the
/// dispatch it follows) and some twice: the receiver must park what lacks
/// a parent, release it when the parent lands (in the same write group
/// too) and store each record once.
fn ingest(out: replication::Outgoing, mut cursor: Cursor, rng: &mut Rng, faulty: bool) -> anyhow::Result<Op> {
    let mut records = replication::decode_verified(out.records)?;
    if faulty && records.len() > 1 && rng.chance(30) {
        // Case events arrive in any order (parking puts them right);
        // certificates, revocations and policies keep their feed order and
        // go first, as the ordered feed guarantees (a sender holds an
        // author's certificate before anything it signed). Shuffling those
        // too refused records of a not-yet-known author for good (seed 119
        // left 17 records waiting at the city). A QUIC stream delivers a
        // batch in order, so a shuffled batch stands for what does arrive
        // out of feed order (the urgent cases, answers to `Want`): it is
        // not a continuing batch, and the sender's chain is not checked
        // on it (checked on every other, a shuffle would raise false gaps).
        let (mut trust, mut events): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| !matches!(r.body, zongzhi_protocol::Body::CaseEvent(_)));
        for i in (1..events.len()).rev() {
            events.swap(i, rng.below(i + 1));
        }
        trust.append(&mut events);
        records = trust;
        cursor.in_order = false;
    }
    if faulty && !records.is_empty() && rng.chance(10) {
        // A record again, after its first copy (a resend after a cut).
        let i = rng.below(records.len());
        let again = records[i].clone();
        records.insert(i + 1 + rng.below(records.len() - i), again);
    }
    let blobs = out.blobs.into_iter().map(|(h, b)| (BlobHash(h), b)).collect();
    Ok(Op::Ingest { records, blobs, cursor: Some(cursor) })
}
