//! Deterministic simulation of replication over a tree of in-memory
//! replicas, driven by the same [`FeedSender`]/[`FeedReceiver`] state
//! machines and scope rules as `node::net`. Seeded and replayable: links are
//! cut and healed, nodes crash and restart (keeping only what they stored),
//! and replicas stay offline for simulated days while everyone keeps
//! writing. At the end every replica must hold exactly the records its scope
//! gives it, each once.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::scope::{self, Facts, Kind};
use super::{Direction, FeedReceiver, FeedSender, SenderPoll};
use crate::division::DivisionCode;

/// A record as far as replication cares.
#[derive(Debug, Clone)]
struct Rec {
    id: u64,
    author: DivisionCode,
    case: u64,
    parents: Vec<u64>,
    /// A unit this event brings into the case (escalation or dispatch target).
    adds: Option<DivisionCode>,
}

#[derive(Debug, Clone)]
struct Replica {
    unit: DivisionCode,
    epoch: [u8; 16],
    /// Local feed: record ids in the order stored.
    feed: Vec<u64>,
    held: HashMap<u64, Rec>,
    pending: Vec<Rec>,
    /// Units each case has involved, as this replica knows.
    case_units: BTreeMap<u64, BTreeSet<DivisionCode>>,
    /// Stored cursors per (peer index, direction received).
    cursors: HashMap<(usize, Direction), ([u8; 16], u64)>,
    up: bool,
}

impl Replica {
    fn apply(&mut self, r: Rec) -> bool {
        if self.held.contains_key(&r.id) {
            return false;
        }
        if !r.parents.iter().all(|p| self.held.contains_key(p)) {
            if !self.pending.iter().any(|x| x.id == r.id) {
                self.pending.push(r);
            }
            return false;
        }
        let units = self.case_units.entry(r.case).or_default();
        units.insert(r.author);
        if let Some(u) = r.adds {
            units.insert(u);
        }
        self.feed.push(r.id);
        self.held.insert(r.id, r);
        true
    }

    /// Stores a batch and its cursor together, like one synced write.
    fn ingest(&mut self, recs: Vec<Rec>) {
        let mut any = false;
        for r in recs {
            any |= self.apply(r);
        }
        while any {
            any = false;
            let waiting = std::mem::take(&mut self.pending);
            for r in waiting {
                any |= self.apply(r);
            }
        }
    }

    fn units_of(&self, case: u64) -> Vec<DivisionCode> {
        self.case_units.get(&case).map(|u| u.iter().copied().collect()).unwrap_or_default()
    }
}

/// Builds the batch after `after` for `peer` (the same scope rules as the node).
fn build_batch(s: &Replica, peer: DivisionCode, dir: Direction, after: u64, max: usize) -> (Vec<Rec>, u64) {
    let mut out: Vec<Rec> = Vec::new();
    let mut upto = after;
    for (i, id) in s.feed.iter().enumerate().skip(after as usize) {
        if out.len() >= max {
            break;
        }
        upto = i as u64 + 1;
        let r = &s.held[id];
        let units = s.units_of(r.case);
        let facts = Facts { author: Some(r.author), author_revoked: false, kind: Kind::CaseEvent { units: &units } };
        let send = scope::sends(dir, s.unit, peer, &facts);
        match dir {
            Direction::Up => {}
            Direction::Down => {
                if scope::case_in_subtree(&units, peer) && r.adds.is_some_and(|u| peer.contains(u)) {
                    // The case enters the peer's subtree: its history first.
                    for hid in &s.feed {
                        let h = &s.held[hid];
                        if h.case == r.case && h.id != r.id && !out.iter().any(|x| x.id == h.id) {
                            out.push(h.clone());
                        }
                    }
                }
            }
        }
        if send && !out.iter().any(|x| x.id == r.id) {
            out.push(r.clone());
        }
    }
    (out, upto)
}

enum Msg {
    Batch { epoch: [u8; 16], upto: u64, recs: Vec<Rec> },
    Ack { upto: u64 },
}

/// One live connection between a child and its parent.
struct Session {
    /// Per direction of records: (sender at the source, receiver at the sink,
    /// frames in flight towards the sink, acks in flight towards the source).
    flows: Vec<Flow>,
}

struct Flow {
    from: usize,
    to: usize,
    dir: Direction,
    sender: FeedSender,
    receiver: FeedReceiver,
    data: VecDeque<(u64, Msg)>,
    acks: VecDeque<(u64, Msg)>,
}

struct Sim {
    rng: u64,
    now: u64,
    replicas: Vec<Replica>,
    /// (parent index, child index) per link.
    links: Vec<(usize, usize)>,
    sessions: Vec<Option<Session>>,
    /// Links cut (partitioned) until this tick.
    cut_until: Vec<u64>,
    next_id: u64,
    all: Vec<Rec>,
}

impl Sim {
    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.rand() % 1000 < per_mille
    }

    fn new(seed: u64) -> Sim {
        let codes = ["330100000000", "330102000000", "330102001000", "330102001001", "330102001002", "330102002000", "330102002001"];
        let replicas: Vec<Replica> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| Replica {
                unit: c.parse().unwrap(),
                epoch: [i as u8 + 1; 16],
                feed: Vec::new(),
                held: HashMap::new(),
                pending: Vec::new(),
                case_units: BTreeMap::new(),
                cursors: HashMap::new(),
                up: true,
            })
            .collect();
        let mut links = Vec::new();
        for (c, r) in replicas.iter().enumerate() {
            if let Some(p) = r.unit.parent().and_then(|p| replicas.iter().position(|x| x.unit == p)) {
                links.push((p, c));
            }
        }
        let n = links.len();
        Sim { rng: seed.max(1), now: 0, replicas, links, sessions: (0..n).map(|_| None).collect(), cut_until: vec![0; n], next_id: 1, all: Vec::new() }
    }

    fn open(&mut self, l: usize) {
        let (p, c) = self.links[l];
        let mut flows = Vec::new();
        for (from, to, dir) in [(c, p, Direction::Up), (p, c, Direction::Down)] {
            let stored = self.replicas[to].cursors.get(&(from, dir)).copied();
            let receiver = FeedReceiver::new(stored);
            let mut sender = FeedSender::new(self.replicas[from].epoch, 8);
            let (epoch, cursor) = receiver.cursor();
            sender.on_subscribe(epoch, cursor, self.replicas[from].feed.len() as u64);
            flows.push(Flow { from, to, dir, sender, receiver, data: VecDeque::new(), acks: VecDeque::new() });
        }
        self.sessions[l] = Some(Session { flows });
    }

    /// A replica writes: a new case, or an event on a case it holds.
    fn write(&mut self, at: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let unit = self.replicas[at].unit;
        let cases: Vec<u64> = self.replicas[at].case_units.keys().copied().collect();
        let r = if cases.is_empty() || self.chance(300) {
            Rec { id, author: unit, case: id, parents: vec![], adds: None }
        } else {
            let case = cases[(self.rand() % cases.len() as u64) as usize];
            let head = self.replicas[at].feed.iter().rev().find(|x| self.replicas[at].held[x].case == case).copied();
            let (kind, pick) = (self.rand() % 4, (self.rand() % 3) as usize);
            let adds = match kind {
                0 => unit.parent(),
                1 => self.replicas.iter().map(|r| r.unit).filter(|u| unit.is_ancestor_of(*u)).nth(pick),
                _ => None,
            };
            Rec { id, author: unit, case, parents: head.into_iter().collect(), adds }
        };
        self.all.push(r.clone());
        self.replicas[at].apply(r);
    }

    fn step(&mut self) {
        self.now += 1;
        // Faults.
        for l in 0..self.links.len() {
            if self.sessions[l].is_some() && self.chance(8) {
                self.sessions[l] = None; // connection lost: in-flight frames are gone
                let days = if self.chance(100) { 2_000 } else { self.rand() % 50 };
                self.cut_until[l] = self.now + days;
            }
        }
        for i in 0..self.replicas.len() {
            if self.replicas[i].up && self.chance(2) {
                self.replicas[i].up = false; // crash: only what was stored survives
                for l in 0..self.links.len() {
                    if self.links[l].0 == i || self.links[l].1 == i {
                        self.sessions[l] = None;
                    }
                }
            } else if !self.replicas[i].up && self.chance(50) {
                self.replicas[i].up = true;
            }
        }
        // Writes, also while offline.
        if self.chance(300) {
            let at = (self.rand() % self.replicas.len() as u64) as usize;
            if self.replicas[at].up {
                self.write(at);
            }
        }
        // Links.
        for l in 0..self.links.len() {
            let (p, c) = self.links[l];
            let both_up = self.replicas[p].up && self.replicas[c].up;
            if self.sessions[l].is_none() && both_up && self.now >= self.cut_until[l] {
                self.open(l);
            }
            let Some(mut session) = self.sessions[l].take() else { continue };
            let mut broken = false;
            for f in session.flows.iter_mut() {
                // Send.
                let head = self.replicas[f.from].feed.len() as u64;
                if let SenderPoll::SendAfter(after) = f.sender.poll(head) {
                    let (recs, upto) = build_batch(&self.replicas[f.from], self.replicas[f.to].unit, f.dir, after, 4);
                    f.sender.sent(upto);
                    let delay = self.now + 1 + self.rng % 4;
                    f.data.push_back((delay, Msg::Batch { epoch: self.replicas[f.from].epoch, upto, recs }));
                }
                // Deliver in order (a QUIC stream); the receiver stores records and cursor together.
                while f.data.front().is_some_and(|(t, _)| *t <= self.now) {
                    let Some((_, Msg::Batch { epoch, upto, recs })) = f.data.pop_front() else { break };
                    match f.receiver.on_batch(epoch, upto) {
                        Ok(cursor) => {
                            let r = &mut self.replicas[f.to];
                            r.ingest(recs);
                            r.cursors.insert((f.from, f.dir), (epoch, cursor));
                            f.receiver.stored(epoch, cursor);
                            f.acks.push_back((self.now + 1, Msg::Ack { upto: cursor }));
                        }
                        Err(_) => broken = true,
                    }
                }
                while f.acks.front().is_some_and(|(t, _)| *t <= self.now) {
                    if let Some((_, Msg::Ack { upto })) = f.acks.pop_front()
                        && f.sender.on_ack(upto).is_err()
                    {
                        broken = true;
                    }
                }
            }
            if !broken {
                self.sessions[l] = Some(session);
            }
        }
    }

    /// What replica `x` must hold at the end.
    fn expected(&self, x: usize) -> BTreeSet<u64> {
        let unit = self.replicas[x].unit;
        let mut case_units: HashMap<u64, Vec<DivisionCode>> = HashMap::new();
        for r in &self.all {
            let u = case_units.entry(r.case).or_default();
            u.push(r.author);
            if let Some(a) = r.adds {
                u.push(a);
            }
        }
        self.all
            .iter()
            .filter(|r| unit.contains(r.author) || scope::case_in_subtree(&case_units[&r.case], unit))
            .map(|r| r.id)
            .collect()
    }
}

fn run(seed: u64, ticks: u64) {
    let mut sim = Sim::new(seed);
    for _ in 0..ticks {
        sim.step();
    }
    // Heal: everyone up, no more faults or writes, until quiet.
    for r in sim.replicas.iter_mut() {
        r.up = true;
    }
    for c in sim.cut_until.iter_mut() {
        *c = 0;
    }
    for _ in 0..5_000 {
        for l in 0..sim.links.len() {
            if sim.sessions[l].is_none() {
                sim.open(l);
            }
        }
        step_quiet(&mut sim);
    }
    for x in 0..sim.replicas.len() {
        let r = &sim.replicas[x];
        let held: BTreeSet<u64> = r.feed.iter().copied().collect();
        assert_eq!(held.len(), r.feed.len(), "seed {seed}: replica {} stored a record twice", r.unit);
        assert!(r.pending.is_empty(), "seed {seed}: replica {} still waits for parents", r.unit);
        let want = sim.expected(x);
        assert_eq!(held, want, "seed {seed}: replica {} holds the wrong records", r.unit);
    }
}

/// One tick of delivery and sending, without faults or writes.
fn step_quiet(sim: &mut Sim) {
    sim.now += 1;
    for l in 0..sim.links.len() {
        let Some(mut session) = sim.sessions[l].take() else { continue };
        for f in session.flows.iter_mut() {
            let head = sim.replicas[f.from].feed.len() as u64;
            if let SenderPoll::SendAfter(after) = f.sender.poll(head) {
                let (recs, upto) = build_batch(&sim.replicas[f.from], sim.replicas[f.to].unit, f.dir, after, 4);
                f.sender.sent(upto);
                f.data.push_back((sim.now + 1, Msg::Batch { epoch: sim.replicas[f.from].epoch, upto, recs }));
            }
            while f.data.front().is_some_and(|(t, _)| *t <= sim.now) {
                let Some((_, Msg::Batch { epoch, upto, recs })) = f.data.pop_front() else { break };
                let cursor = f.receiver.on_batch(epoch, upto).expect("in-order stream");
                let r = &mut sim.replicas[f.to];
                r.ingest(recs);
                r.cursors.insert((f.from, f.dir), (epoch, cursor));
                f.receiver.stored(epoch, cursor);
                f.acks.push_back((sim.now + 1, Msg::Ack { upto: cursor }));
            }
            while f.acks.front().is_some_and(|(t, _)| *t <= sim.now) {
                if let Some((_, Msg::Ack { upto })) = f.acks.pop_front() {
                    f.sender.on_ack(upto).expect("acks in order");
                }
            }
        }
        sim.sessions[l] = Some(session);
    }
}

#[test]
fn replicas_converge_through_cuts_crashes_and_days_offline() {
    for seed in 1..=40u64 {
        run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 3_000);
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let feeds = |seed| {
        let mut sim = Sim::new(seed);
        for _ in 0..2_000 {
            sim.step();
        }
        sim.replicas.iter().map(|r| r.feed.clone()).collect::<Vec<_>>()
    };
    assert_eq!(feeds(42), feeds(42));
    assert_ne!(feeds(42), feeds(43));
}
