//! The benchmark city's tree and its cases' workflows, planned before
//! anything is signed: who does which step when, following the order the
//! workflow rules allow (`protocol::workflow`).

use std::collections::HashMap;

use zongzhi_protocol::{DivisionCode, Level, NodeKey, Policy};

use super::data;

/// Deterministic pseudo-random numbers (SplitMix64): the same seed gives
/// the same city.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n.max(1) as u128) >> 64) as u64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `lo..=hi` minutes, as milliseconds (at least 1 s).
    pub fn minutes(&mut self, lo: f64, hi: f64) -> u64 {
        let f = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo + (hi - lo) * f) * 60_000.0).max(1_000.0) as u64
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// A 32-byte key seed from the benchmark seed and a division code.
pub fn key_seed(seed: u64, code: u64) -> [u8; 32] {
    let mut r = Rng::new(seed.wrapping_mul(0x1000_0000_01B3) ^ code);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&r.next().to_le_bytes());
    }
    out
}

/// A center of the benchmark city below the city itself.
pub struct Unit {
    pub code: DivisionCode,
    pub name: String,
    pub key: NodeKey,
    /// Index of the parent in the county's unit list; `None` for the
    /// county (its parent is the city).
    pub parent: Option<u16>,
    pub children: Vec<u16>,
}

impl Unit {
    pub fn level(&self) -> Level {
        self.code.level()
    }
}

/// A county and its subtree: index 0 is the county, then its townships,
/// then the villages.
pub struct County {
    pub index: usize,
    pub units: Vec<Unit>,
}

/// The county part of the city's division codes.
pub const CITY: u64 = 330_100_000_000;
pub const CITY_NAME: &str = "示例市社会治安综合治理中心";

/// Number of units in the tree: 1 city, 12 counties, 120 townships and
/// the villages (2,867 for a city of 3,000 units).
pub fn tree(seed: u64, villages_total: usize) -> anyhow::Result<Vec<County>> {
    let townships_per_county = 10usize;
    let townships = data::COUNTIES.len() * townships_per_county;
    let mut counties = Vec::new();
    let mut township_no = 0usize;
    for (ci, (dd, cname)) in data::COUNTIES.iter().enumerate() {
        let county_code = DivisionCode::new(CITY + dd * 1_000_000)?;
        let mut units =
            vec![Unit { code: county_code, name: format!("{cname}社会治安综合治理中心"), key: NodeKey::from_seed(key_seed(seed, county_code.as_u64())), parent: None, children: Vec::new() }];
        for t in 0..townships_per_county {
            let code = DivisionCode::new(county_code.as_u64() + (t as u64 + 1) * 1000)?;
            let word = data::TOWNS[(ci * townships_per_county + t) % data::TOWNS.len()];
            let kind = if t % 4 == 3 { "镇" } else { "街道" };
            let idx = units.len() as u16;
            units.push(Unit { code, name: format!("{word}{kind}社会治安综合治理中心"), key: NodeKey::from_seed(key_seed(seed, code.as_u64())), parent: Some(0), children: Vec::new() });
            units[0].children.push(idx);
            // Spread the villages evenly: the first townships get one more.
            let base = villages_total / townships;
            let n = base + usize::from(township_no < villages_total % townships);
            township_no += 1;
            for v in 0..n {
                let vcode = DivisionCode::new(code.as_u64() + v as u64 + 1)?;
                let vword = data::VILLAGES[(v + t * 7 + ci * 3) % data::VILLAGES.len()];
                let vkind = if t % 4 == 3 { "村" } else { "社区" };
                let vidx = units.len() as u16;
                units.push(Unit {
                    code: vcode,
                    name: format!("{word}{vword}{vkind}社会治安综合治理工作站"),
                    key: NodeKey::from_seed(key_seed(seed, vcode.as_u64())),
                    parent: Some(idx),
                    children: Vec::new(),
                });
                units[idx as usize].children.push(vidx);
            }
        }
        counties.push(County { index: ci, units });
    }
    Ok(counties)
}

/// A workflow step, rendered into an `Action` when it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    File,
    SignFor,
    Route { window: u8 },
    Progress { public: bool },
    Escalate,
    Dispatch { to: u16 },
    Return,
    Reroute { window: u8 },
    AddHelper { window: u8 },
    RequestExtension { days: u8 },
    DecideExtension { approve: bool },
    Supervise { grade: u8 },
    Resolve,
    Feedback,
    Rate { rating: u8 },
    Reopen,
    Archive,
}

#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub at: u64,
    /// The acting unit (index in the county's list).
    pub unit: u16,
    pub step: Step,
    /// An admin's step (supervision, extension decisions).
    pub admin: bool,
}

/// How a case goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Handled and resolved where it was filed.
    Local,
    /// Escalated this many levels (to the city: left waiting there).
    Escalated(u8),
    /// Sent down to a lower center and resolved there.
    Dispatched,
}

/// A planned case.
pub struct CasePlan {
    pub received_ms: u64,
    /// Index into [`Leaves`].
    pub leaf: u8,
    pub urgent: bool,
    pub complex: bool,
    pub channel: u8,
    pub request_type: u8,
    /// Seed of the complainant's contact details (`None`: anonymous).
    pub contact: Option<u64>,
    pub repeat: bool,
    pub year: i16,
    pub serial: u32,
    /// Seed for texts.
    pub text: u32,
    pub path: Path,
    pub stuck: bool,
    pub steps: Vec<Planned>,
}

/// The policy's leaf categories with their default windows.
pub struct Leaves {
    pub codes: Vec<String>,
    pub default_window: Vec<u8>,
    pub windows: Vec<String>,
}

impl Leaves {
    pub fn of(policy: &Policy) -> Leaves {
        let windows: Vec<String> = policy.windows.iter().filter(|w| !w.retired).map(|w| w.code.clone()).collect();
        let mut codes = Vec::new();
        let mut default_window = Vec::new();
        for c in policy.categories.iter().filter(|c| !c.retired) {
            for s in c.children.iter().filter(|s| !s.retired) {
                codes.push(s.code.clone());
                default_window.push(windows.iter().position(|w| *w == s.default_window).unwrap_or(0) as u8);
            }
        }
        Leaves { codes, default_window, windows }
    }
}

/// Weights of the leaf categories (neighbour disputes and wages are the
/// most common matters at a village center).
fn leaf_weight(code: &str) -> u64 {
    match &code[..2] {
        "02" => 6,
        "04" | "05" => 4,
        "01" | "06" | "07" => 3,
        _ => 2,
    }
}

fn weighted_leaf(rng: &mut Rng, leaves: &Leaves) -> u8 {
    let total: u64 = leaves.codes.iter().map(|c| leaf_weight(c)).sum();
    let mut x = rng.below(total);
    for (i, c) in leaves.codes.iter().enumerate() {
        let w = leaf_weight(c);
        if x < w {
            return i as u8;
        }
        x -= w;
    }
    0
}

const DAY: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;
/// China Standard Time offset.
const CST: u64 = 8 * HOUR;

/// Builds a case's steps.
struct Flow<'a> {
    units: &'a [Unit],
    steps: Vec<Planned>,
    t: u64,
    owner: u16,
    filed_by: u16,
    routed: bool,
    urgent: bool,
    window: u8,
    windows: usize,
}

impl Flow<'_> {
    fn push(&mut self, unit: u16, step: Step, delay: u64) {
        self.t += delay.max(1_000);
        self.steps.push(Planned { at: self.t, unit, step, admin: false });
    }

    fn push_admin(&mut self, unit: u16, step: Step, delay: u64) {
        self.push(unit, step, delay);
        if let Some(last) = self.steps.last_mut() {
            last.admin = true;
        }
    }

    fn level(&self, u: u16) -> Level {
        self.units[u as usize].level()
    }

    fn other_window(&self, rng: &mut Rng) -> u8 {
        let w = rng.below(self.windows as u64 - 1) as u8;
        if w >= self.window { w + 1 } else { w }
    }

    fn sign_for(&mut self, rng: &mut Rng) {
        let d = if self.urgent {
            rng.minutes(1.0, 40.0)
        } else if rng.chance(0.95) {
            rng.minutes(3.0, 600.0)
        } else {
            rng.minutes(1500.0, 3000.0)
        };
        self.push(self.owner, Step::SignFor, d);
    }

    /// Moves the case along `path` (escalations up, or a dispatch down to
    /// a child); returns whether it was escalated to the city, where it waits.
    fn follow_path(&mut self, rng: &mut Rng, path: Path) -> bool {
        match path {
            Path::Local => {}
            Path::Escalated(levels) => {
                for _ in 0..levels {
                    if rng.chance(0.3) {
                        self.push(self.owner, Step::Progress { public: false }, rng.minutes(60.0, 1440.0));
                    }
                    self.push(self.owner, Step::Escalate, rng.minutes(60.0, 4320.0));
                    match self.units[self.owner as usize].parent {
                        Some(p) => {
                            self.owner = p;
                            self.sign_for(rng);
                        }
                        None => return true,
                    }
                }
            }
            Path::Dispatched => {
                let children = &self.units[self.owner as usize].children;
                if !children.is_empty() {
                    let to = *rng.pick(children);
                    self.push(self.owner, Step::Dispatch { to }, rng.minutes(30.0, 1440.0));
                    self.owner = to;
                    self.sign_for(rng);
                }
            }
        }
        false
    }

    /// Routing (or direct mediation at a village), extensions, resolution.
    fn handle_and_resolve(&mut self, rng: &mut Rng, extension: bool) {
        let owner = self.owner;
        let village = self.level(owner) == Level::Village;
        if !village || rng.chance(0.4) {
            let d = if self.urgent {
                rng.minutes(2.0, 50.0)
            } else if rng.chance(0.95) {
                rng.minutes(10.0, 1200.0)
            } else {
                rng.minutes(1500.0, 3600.0)
            };
            self.push(owner, Step::Route { window: self.window }, d);
            self.routed = true;
            if rng.chance(0.025) {
                self.push(owner, Step::Return, rng.minutes(120.0, 2880.0));
                self.window = self.other_window(rng);
                self.push(owner, Step::Reroute { window: self.window }, rng.minutes(30.0, 1440.0));
            }
            if rng.chance(0.015) {
                let helper = self.other_window(rng);
                self.push(owner, Step::AddHelper { window: helper }, rng.minutes(60.0, 1440.0));
            }
        }
        if rng.chance(0.3) {
            self.push(owner, Step::Progress { public: rng.chance(0.5) }, rng.minutes(120.0, 2880.0));
        }
        if extension {
            // One decider (the workflow's rule): the owning center over
            // its own window while the case is there, else the level
            // directly above the owner (an admin, not the requester).
            let decider = if self.routed { Some(owner) } else { self.units[owner as usize].parent };
            if let Some(decider) = decider {
                self.push(owner, Step::RequestExtension { days: 3 + rng.below(8) as u8 }, rng.minutes(1440.0, 5760.0));
                self.push_admin(decider, Step::DecideExtension { approve: rng.chance(0.85) }, rng.minutes(60.0, 1440.0));
            }
        }
        let x = rng.below(100);
        let d = if x < 86 {
            rng.minutes(240.0, 7200.0)
        } else if x < 97 {
            rng.minutes(7200.0, 15840.0)
        } else {
            rng.minutes(17280.0, 36000.0)
        };
        self.push(owner, Step::Resolve, d);
    }

    /// Feedback, rating (re-handling after 不满意), archiving.
    fn close(&mut self, rng: &mut Rng) {
        let mut reopened = false;
        loop {
            // After resolution only the filing center closes the loop.
            let fb = self.filed_by;
            let d = if rng.chance(0.95) { rng.minutes(60.0, 1200.0) } else { rng.minutes(1500.0, 3000.0) };
            self.push(fb, Step::Feedback, d);
            let x = rng.below(100);
            let rating = if reopened {
                (x % 2) as u8
            } else if x < 82 {
                0
            } else if x < 96 {
                1
            } else {
                2
            };
            self.push(fb, Step::Rate { rating }, rng.minutes(10.0, 4320.0));
            if rating == 2 {
                reopened = true;
                self.push(self.filed_by, Step::Reopen, rng.minutes(60.0, 1440.0));
                self.push(self.owner, Step::Resolve, rng.minutes(1440.0, 8640.0));
                continue;
            }
            break;
        }
        self.push(self.filed_by, Step::Archive, rng.minutes(1440.0, 14400.0));
    }
}

/// Plans every case of one county: `n` cases filed over the `days` days
/// before `now`, sorted by filing time, with serial numbers, repeats,
/// and steps cut at `now` (later steps have not happened yet).
pub fn plan_county(county: &County, leaves: &Leaves, n: usize, now: u64, days: u64, seed: u64) -> anyhow::Result<Vec<CasePlan>> {
    let mut planner =
        CountyPlanner { rng: Rng::new(seed ^ (county.index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)), units: &county.units, leaves, now, serials: HashMap::new(), last_contact: HashMap::new() };
    let filed = planner.filings(n, days);
    let mut plans = Vec::with_capacity(n);
    for (filed_ms, filed_by) in filed {
        plans.push(planner.plan_case(filed_ms, filed_by)?);
    }
    Ok(plans)
}

/// Plans one county's cases in filing order from one random stream.
struct CountyPlanner<'a> {
    rng: Rng,
    units: &'a [Unit],
    leaves: &'a Leaves,
    now: u64,
    /// The last serial number per filing unit and year.
    serials: HashMap<(u16, i16), u32>,
    /// The last contact each unit took a complaint from: (time, seed, leaf).
    last_contact: HashMap<u16, (u64, u64, u8)>,
}

impl CountyPlanner<'_> {
    /// Filing times and units of `n` cases, sorted: a day in the period,
    /// office hours China time (the most recent ones in the last hours
    /// before now), filed by a village, a township or the county itself.
    fn filings(&mut self, n: usize, days: u64) -> Vec<(u64, u16)> {
        let (units, now, rng) = (self.units, self.now, &mut self.rng);
        let villages: Vec<u16> = (0..units.len() as u16).filter(|u| units[*u as usize].level() == Level::Village).collect();
        let towns: Vec<u16> = units[0].children.clone();
        let mut filed: Vec<(u64, u16)> = (0..n)
            .map(|_| {
                let day_ago = rng.below(days);
                let midnight_cst = ((now + CST) / DAY - day_ago) * DAY - CST;
                let mut t = midnight_cst + 8 * HOUR + rng.minutes(0.0, 12.0 * 60.0);
                if t + 30 * 60_000 > now {
                    t = now - rng.minutes(30.0, 600.0);
                }
                let x = rng.below(100);
                let unit = if x < 85 {
                    *rng.pick(&villages)
                } else if x < 96 {
                    *rng.pick(&towns)
                } else {
                    0
                };
                (t, unit)
            })
            .collect();
        filed.sort_unstable();
        filed
    }

    /// Plans the case `filed_by` filed at `filed_ms`: its matter, path,
    /// steps up to now and the details of its filing.
    fn plan_case(&mut self, filed_ms: u64, filed_by: u16) -> anyhow::Result<CasePlan> {
        let (units, now) = (self.units, self.now);
        let year = zongzhi_protocol::policy::china_date(filed_ms).map_err(|e| anyhow::anyhow!("{e}"))?.year();
        let serial = self.serials.entry((filed_by, year)).or_insert(0);
        *serial += 1;
        let serial = *serial;
        let (leaf, contact, repeat) = self.complainant(filed_ms, filed_by);
        let rng = &mut self.rng;
        let urgent = rng.chance(0.03);
        let recent = now - filed_ms < 20 * DAY;
        let path = choose_path(rng, units[filed_by as usize].level(), recent);
        let stuck = rng.chance(0.03);
        let extension = rng.chance(0.03);
        let received_ms = filed_ms - rng.minutes(0.0, if urgent { 3.0 } else { 40.0 }).min(filed_ms);
        let mut f = Flow {
            units,
            steps: vec![Planned { at: filed_ms, unit: filed_by, step: Step::File, admin: false }],
            t: filed_ms,
            owner: filed_by,
            filed_by,
            routed: false,
            urgent,
            window: self.leaves.default_window[leaf as usize],
            windows: self.leaves.windows.len(),
        };
        if urgent {
            // Responders on site within 15 minutes: the first progress note.
            f.push(filed_by, Step::Progress { public: false }, rng.minutes(1.0, 8.0));
        }
        f.sign_for(rng);
        let at_city = f.follow_path(rng, path);
        if !at_city {
            f.handle_and_resolve(rng, extension);
            f.close(rng);
        }
        let mut steps = f.steps;
        if stuck && !at_city {
            stop_before_resolution(&mut steps, units, filed_by, rng);
        }
        // Only what has happened by now.
        let limit = now - 60_000;
        if let Some(cut) = steps.iter().position(|s| s.at > limit) {
            steps.truncate(cut.max(1));
        }
        Ok(CasePlan {
            received_ms,
            leaf,
            urgent,
            complex: rng.chance(0.12),
            channel: rng.below(100) as u8,
            request_type: rng.below(100) as u8,
            contact,
            repeat,
            year,
            serial,
            text: rng.next() as u32,
            path,
            stuck,
            steps,
        })
    }

    /// The matter (leaf category) and complainant of a case `filed_by`
    /// filed at `filed_ms`, and whether it is a repeat: now and then the
    /// unit's last complainant within 30 days comes back with the same matter.
    fn complainant(&mut self, filed_ms: u64, filed_by: u16) -> (u8, Option<u64>, bool) {
        let rng = &mut self.rng;
        let mut leaf = weighted_leaf(rng, self.leaves);
        let mut contact = rng.chance(0.92).then(|| rng.next());
        let mut repeat = false;
        if let Some(&(t, c, l)) = self.last_contact.get(&filed_by)
            && filed_ms - t < 30 * DAY
            && rng.chance(0.06)
        {
            (contact, leaf, repeat) = (Some(c), l, true);
        }
        if let Some(c) = contact {
            self.last_contact.insert(filed_by, (filed_ms, c, leaf));
        }
        (leaf, contact, repeat)
    }
}

/// How a case filed at a unit of `level` goes (escalated as far as the
/// city, where it is left waiting, only when it is `recent`).
fn choose_path(rng: &mut Rng, level: Level, recent: bool) -> Path {
    let x = rng.below(1000);
    match level {
        Level::Village => match x {
            0..=739 => Path::Local,
            740..=879 => Path::Escalated(1),
            880..=919 => Path::Escalated(2),
            920..=939 if recent => Path::Escalated(3),
            _ => Path::Local,
        },
        Level::Township => match x {
            0..=619 => Path::Local,
            620..=869 => Path::Dispatched,
            870..=969 => Path::Escalated(1),
            970..=999 if recent => Path::Escalated(2),
            _ => Path::Local,
        },
        _ => match x {
            0..=699 => Path::Local,
            700..=979 => Path::Dispatched,
            _ if recent => Path::Escalated(1),
            _ => Path::Local,
        },
    }
}

/// Stops a stuck case before its resolution: open with its clocks past
/// due, perhaps supervised by the level above.
fn stop_before_resolution(steps: &mut Vec<Planned>, units: &[Unit], filed_by: u16, rng: &mut Rng) {
    let resolve = steps.iter().position(|s| s.step == Step::Resolve).unwrap_or(steps.len());
    let cut = 2 + rng.below(resolve.saturating_sub(2).max(1) as u64) as usize;
    steps.truncate(cut.min(resolve).max(2));
    let owner = owner_after(units, filed_by, steps);
    if let Some(sup) = units[owner as usize].parent
        && let Some(last) = steps.last().map(|s| s.at)
    {
        steps.push(Planned { at: last + rng.minutes(3.0 * 1440.0, 12.0 * 1440.0), unit: sup, step: Step::Supervise { grade: 1 + rng.below(2) as u8 }, admin: true });
    }
}

/// The owner after `steps` (escalations and dispatches move it).
pub fn owner_after(units: &[Unit], filed_by: u16, steps: &[Planned]) -> u16 {
    let mut owner = filed_by;
    for s in steps {
        match s.step {
            Step::Escalate => {
                if let Some(p) = units[owner as usize].parent {
                    owner = p;
                }
            }
            Step::Dispatch { to } => owner = to,
            _ => {}
        }
    }
    owner
}
