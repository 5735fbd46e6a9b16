//! What is measured, defined once (DOMAIN.md "What is measured").
//!
//! A case contributes [`Fact`]s: counter increments keyed by month (China
//! time), unit, and the case's category and channel. They are a pure
//! function of the folded [`CaseState`], so a node keeps them incrementally
//! (subtract the case's old facts, add its new ones, in the same write as
//! the case) and anyone holding the same events recomputes the same figures.
//! KPIs are ratios of summed counters; the one figure that depends on the
//! clock rather than on events (open cases past due) is counted at query
//! time and passed in.

use crate::case::{Channel, Rating};
use crate::division::{DivisionCode, Level};
use crate::policy::china_date;
use crate::workflow::{CaseState, DeadlineKind, RatedBy, Status};

pub use crate::report::MonthlyReport;

macro_rules! counters {
    ($($name:ident = $code:literal, $zh:literal;)+) => {
        /// A counter kept per (month, unit, category, channel). The order is
        /// stored (a counter's index in the value vector): append only.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Counter { $($name,)+ }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)+];

            pub fn as_str(self) -> &'static str {
                match self { $(Counter::$name => $code,)+ }
            }

            pub fn zh(self) -> &'static str {
                match self { $(Counter::$name => $zh,)+ }
            }

            pub fn from_index(i: u8) -> Option<Counter> {
                Counter::ALL.get(i as usize).copied()
            }
        }
    };
}

counters! {
    Received = "received", "受理";
    RegisteredOnTime = "registered_on_time", "按时登记";
    Routed = "routed", "分流";
    RoutedOnTime = "routed_on_time", "按时分流";
    SignedFor = "signed_for", "签收";
    SignedForOnTime = "signed_for_on_time", "按时签收";
    OnSite = "on_site", "到场";
    OnSiteOnTime = "on_site_on_time", "按时到场";
    Resolved = "resolved", "办结";
    ResolvedOnTime = "resolved_on_time", "按期办结";
    ResolvedLocally = "resolved_locally", "就地化解";
    Escalated = "escalated", "上报";
    Closed = "closed", "办结时限到结";
    ClosedLate = "closed_late", "超期办结";
    FedBack = "fed_back", "反馈";
    FeedbackOnTime = "feedback_on_time", "按时反馈";
    Rated = "rated", "评价";
    Satisfied = "satisfied", "满意";
    BasicallySatisfied = "basically_satisfied", "基本满意";
    Unsatisfied = "unsatisfied", "不满意";
    Rehandled = "rehandled", "重办";
    HandlingMinutes = "handling_minutes", "办理时长(分钟)";
    Supervised = "supervised", "督办";
    Void = "void", "作废";
    WaitingForCalendar = "waiting_for_calendar", "待定时限(缺工作日历)";
    // New counters go last: stored statistics are indexed by position.
    Overruled = "overruled", "被覆盖";
    // Record format 3: every rating counts in its month; citizen-given and
    // staff-entered apart; 差评申诉; 越级.
    CitizenRated = "citizen_rated", "群众评价";
    CitizenSatisfied = "citizen_satisfied", "群众评价满意";
    CitizenBasicallySatisfied = "citizen_basically_satisfied", "群众评价基本满意";
    CitizenUnsatisfied = "citizen_unsatisfied", "群众评价不满意";
    ResultRated = "result_rated", "群众结果评价";
    ResultSatisfied = "result_satisfied", "群众结果满意(含基本满意)";
    Appealed = "appealed", "差评申诉";
    AppealUpheld = "appeal_upheld", "申诉成立";
    SkipLevelFiled = "skip_level_filed", "越级受理";
    SkipLevel = "skip_level", "越级(应处置单位)";
    // Record format 4: 督办回复.
    SupervisionReplied = "supervision_replied", "督办回复";
    SupervisionRepliedOnTime = "supervision_replied_on_time", "按时督办回复";
    // Record format 4: the decisions a center takes.
    Declined = "declined", "不予受理";
    Withdrawn = "withdrawn", "撤回";
    Suspended = "suspended", "中止";
    Resumed = "resumed", "恢复";
    ResumedOnTime = "resumed_on_time", "按期恢复";
    AssistanceRequested = "assistance_requested", "协办请求";
    AssistanceReplied = "assistance_replied", "协办回复";
    AssistanceRepliedOnTime = "assistance_replied_on_time", "按时协办回复";
    AssistanceSupervised = "assistance_supervised", "协办督办";
    MediationSessions = "mediation_sessions", "调解场次";
    MediationAgreements = "mediation_agreements", "调解协议";
    ConfirmationReferred = "confirmation_referred", "申请司法确认";
    Confirmed = "confirmed", "司法确认有效";
    ReturnVisits = "return_visits", "回访";
    ReturnVisitsOnTime = "return_visits_on_time", "按时回访";
    AgreementsKept = "agreements_kept", "协议已履行";
}

/// Number of counters in a value vector.
pub const COUNTERS: usize = Counter::ALL.len();

/// Counter values, indexed by `Counter as usize`.
pub type Counts = [i64; COUNTERS];

/// One counter increment a case contributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    /// `YYYYMM` in China time.
    pub month: u32,
    pub unit: DivisionCode,
    pub counter: Counter,
    pub value: i64,
}

/// `YYYYMM` of an instant in China time (`None` outside the supported range).
pub fn month_of(ms: u64) -> Option<u32> {
    let d = china_date(ms).ok()?;
    Some(d.year() as u32 * 100 + d.month() as u32)
}

/// The facts of one case. Category and channel are the filing's and never
/// change, so they are not repeated in each fact.
pub fn facts(state: &CaseState) -> Vec<Fact> {
    let mut out: Vec<Fact> = Vec::new();
    let mut add = |ms: u64, unit: DivisionCode, counter: Counter, value: i64| {
        if value == 0 {
            return;
        }
        if let Some(month) = month_of(ms) {
            match out.iter_mut().find(|f| f.month == month && f.unit == unit && f.counter == counter) {
                Some(f) => f.value += value,
                None => out.push(Fact { month, unit, counter, value }),
            }
        }
    };
    let filed = state.filed_ms;
    let home = state.filed_by;
    if state.status == Status::Void {
        add(filed, home, Counter::Void, 1);
        return finish(out);
    }
    add(filed, home, Counter::Received, 1);
    let mut last_resolution_on_time = None;
    for d in state.deadlines.iter().filter(|d| !d.cancelled) {
        if d.waiting_year.is_some() {
            // Neither on time nor late until the calendar is known: counted
            // apart, and folded again (with the right figures) when it is.
            add(filed, d.unit, Counter::WaitingForCalendar, 1);
            continue;
        }
        let Some(met) = d.met_ms else { continue };
        let on_time = d.met_on_time() == Some(true);
        let (done, timely) = match d.kind {
            DeadlineKind::Registration => {
                add(filed, home, Counter::RegisteredOnTime, on_time as i64);
                continue;
            }
            DeadlineKind::Routing => (Counter::Routed, Counter::RoutedOnTime),
            DeadlineKind::SignFor => (Counter::SignedFor, Counter::SignedForOnTime),
            DeadlineKind::OnSite => (Counter::OnSite, Counter::OnSiteOnTime),
            DeadlineKind::Feedback => (Counter::FedBack, Counter::FeedbackOnTime),
            DeadlineKind::SupervisionReply => (Counter::SupervisionReplied, Counter::SupervisionRepliedOnTime),
            DeadlineKind::Assistance => (Counter::AssistanceReplied, Counter::AssistanceRepliedOnTime),
            DeadlineKind::Suspension => (Counter::Resumed, Counter::ResumedOnTime),
            DeadlineKind::ReturnVisit => (Counter::ReturnVisits, Counter::ReturnVisitsOnTime),
            DeadlineKind::Resolution | DeadlineKind::Rehandle => {
                add(met, d.unit, Counter::Closed, 1);
                add(met, d.unit, Counter::ClosedLate, (!on_time) as i64);
                last_resolution_on_time = Some(on_time);
                continue;
            }
        };
        add(met, d.unit, done, 1);
        add(met, d.unit, timely, on_time as i64);
    }
    if let (Some(at), Some(by)) = (state.resolved_ms, state.resolved_by) {
        add(at, by, Counter::Resolved, 1);
        add(at, by, Counter::ResolvedOnTime, last_resolution_on_time.unwrap_or(false) as i64);
        add(at, by, Counter::ResolvedLocally, (by == home && state.escalations == 0) as i64);
        let received = state.filing.received_at_ms.min(filed);
        add(at, by, Counter::HandlingMinutes, (at.saturating_sub(received) / 60_000) as i64);
    }
    add(filed, home, Counter::Escalated, (state.escalations > 0) as i64);
    if state.filing.intake.skip_level {
        add(filed, home, Counter::SkipLevelFiled, 1);
        add(filed, state.filing.intake.arose_in.unwrap_or(home), Counter::SkipLevel, 1);
    }
    rating_facts(state, &mut add);
    decision_facts(state, &mut add);
    add(filed, state.owner, Counter::Rehandled, state.reopens as i64);
    add(filed, state.owner, Counter::Supervised, state.supervisions as i64);
    // A step its unit acknowledged that a concurrent step elsewhere
    // overruled (被覆盖), in the month it was taken, against its unit.
    for t in state.timeline.iter().filter(|t| t.overruled_by.is_some()) {
        add(t.hlc.wall_ms, t.unit, Counter::Overruled, 1);
    }
    finish(out)
}

/// Whom a counter of [`attributed`] is counted against: a department
/// window of a center, or a person (an account of a center).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    Window { unit: DivisionCode, window: String },
    Person { unit: DivisionCode, operator: String },
}

/// One counter increment of a case against a window or a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorFact {
    pub month: u32,
    pub actor: Actor,
    pub counter: Counter,
    pub value: i64,
}

/// The counters of a case by window and by person (docs/kpis.md "By window
/// and by person"), from the steps that stand (accepted, not overruled):
/// - 受理 (`received`): the person who filed the case, in the month it was
///   filed; a window receives a case when it is routed (分流 or 改派) to it,
///   in the month of that step, against the routing center.
/// - 办结 (`resolved`, `resolved_on_time`, `handling_minutes`): the step
///   that resolved the case as it stands ([`facts`]' own figures), against
///   its person and the window it acted for.
/// - Ratings (满意率 and the other rating counters): against the person and
///   window of the last 办结 of the rated unit before the rating.
pub fn attributed(state: &CaseState) -> Vec<ActorFact> {
    use crate::case::{Action, RouteTarget};
    let mut out: Vec<ActorFact> = Vec::new();
    if state.status == Status::Void {
        return out;
    }
    let mut add = |ms: u64, actor: &Actor, counter: Counter, value: i64| {
        let Some(month) = month_of(ms).filter(|_| value != 0) else { return };
        match out.iter_mut().find(|f| f.month == month && f.actor == *actor && f.counter == counter) {
            Some(f) => f.value += value,
            None => out.push(ActorFact { month, actor: actor.clone(), counter, value }),
        }
    };
    let standing = || state.timeline.iter().filter(|t| t.outcome.is_ok() && t.overruled_by.is_none());
    let person = |t: &crate::workflow::TimelineEntry| Actor::Person { unit: t.unit, operator: t.operator.clone() };
    let window = |t: &crate::workflow::TimelineEntry| t.window.clone().map(|w| Actor::Window { unit: t.unit, window: w });
    for t in standing() {
        match &t.action {
            Action::File(_) => add(state.filed_ms, &person(t), Counter::Received, 1),
            Action::Route { window, .. } | Action::Reroute { target: RouteTarget::Window(window), .. } => {
                add(t.hlc.wall_ms, &Actor::Window { unit: t.unit, window: window.clone() }, Counter::Received, 1)
            }
            _ => {}
        }
    }
    let resolves: Vec<&crate::workflow::TimelineEntry> = standing().filter(|t| matches!(t.action, Action::Resolve { .. })).collect();
    let resolver = |unit: DivisionCode, at: u64| resolves.iter().rev().find(|t| t.unit == unit && t.hlc.wall_ms <= at).copied();
    let own = facts(state);
    if let (Some(at), Some(by)) = (state.resolved_ms, state.resolved_by)
        && let Some(t) = resolver(by, at)
    {
        let month = month_of(at);
        for f in own.iter().filter(|f| Some(f.month) == month && f.unit == by) {
            if matches!(f.counter, Counter::Resolved | Counter::ResolvedOnTime | Counter::HandlingMinutes) {
                add(at, &person(t), f.counter, f.value);
                if let Some(w) = window(t) {
                    add(at, &w, f.counter, f.value);
                }
            }
        }
    }
    for r in &state.ratings {
        let Some(t) = resolver(r.unit, r.at_ms) else { continue };
        let actors: Vec<Actor> = std::iter::once(person(t)).chain(window(t)).collect();
        one_rating_facts(r, &mut |ms, _unit, counter, value| {
            for a in &actors {
                add(ms, a, counter, value);
            }
        });
    }
    out.sort();
    out
}

/// Every rating, in the month it was given, against the unit rated,
/// whatever happened to the case later (重办 does not take it back).
fn rating_facts(state: &CaseState, add: &mut impl FnMut(u64, DivisionCode, Counter, i64)) {
    for r in &state.ratings {
        one_rating_facts(r, add);
    }
}

/// The counters of one rating (see [`rating_facts`]).
fn one_rating_facts(r: &crate::workflow::RatingEntry, add: &mut impl FnMut(u64, DivisionCode, Counter, i64)) {
    let (at, by) = (r.at_ms, r.unit);
    add(at, by, Counter::Appealed, r.appeal.is_some() as i64);
    if !r.counts() {
        add(at, by, Counter::AppealUpheld, 1);
        return;
    }
    let citizen = r.by == RatedBy::Citizen;
    add(at, by, Counter::Rated, 1);
    add(at, by, Counter::CitizenRated, citizen as i64);
    let (all, own) = match r.rating {
        Rating::Satisfied => (Counter::Satisfied, Counter::CitizenSatisfied),
        Rating::Basic => (Counter::BasicallySatisfied, Counter::CitizenBasicallySatisfied),
        Rating::Unsatisfied => (Counter::Unsatisfied, Counter::CitizenUnsatisfied),
    };
    add(at, by, all, 1);
    add(at, by, own, citizen as i64);
    if let Some(result) = r.result_rating.filter(|_| citizen) {
        add(at, by, Counter::ResultRated, 1);
        add(at, by, Counter::ResultSatisfied, (result != Rating::Unsatisfied) as i64);
    }
}

/// The decisions of format 4, each in the month of its step (never the
/// date it reports: a session entered late does not change a closed month)
/// against the unit that took it; a 协办 request against its helper.
fn decision_facts(state: &CaseState, add: &mut impl FnMut(u64, DivisionCode, Counter, i64)) {
    if let Some(d) = &state.declined {
        add(d.at_ms, d.unit, Counter::Declined, 1);
    }
    if let Some(w) = &state.withdrawn {
        add(w.at_ms, w.unit, Counter::Withdrawn, 1);
    }
    for s in &state.suspensions {
        add(s.at_ms, s.unit, Counter::Suspended, 1);
    }
    for a in &state.assists {
        add(a.at_ms, a.unit(), Counter::AssistanceRequested, 1);
        add(a.at_ms, a.unit(), Counter::AssistanceSupervised, a.supervisions as i64);
    }
    for s in &state.mediation.sessions {
        add(s.at_ms, s.unit, Counter::MediationSessions, 1);
    }
    for a in &state.mediation.agreements {
        add(a.at_ms, a.unit, Counter::MediationAgreements, 1);
        if let Some(c) = &a.confirmation {
            add(c.at_ms, a.unit, Counter::ConfirmationReferred, 1);
            if let Some(r) = c.ruling.as_ref().filter(|r| r.confirmed) {
                add(r.at_ms, a.unit, Counter::Confirmed, 1);
            }
        }
        if let Some(v) = a.visits.last().filter(|v| v.fulfilment == crate::case::Fulfilment::Kept) {
            add(v.at_ms, a.unit, Counter::AgreementsKept, 1);
        }
    }
}

fn finish(mut out: Vec<Fact>) -> Vec<Fact> {
    out.sort();
    out
}

/// Summed figures of some set of units, months, categories and channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub counts: Counts,
    /// Open cases whose resolution clock ran out (counted at query time).
    pub open_overdue: i64,
    /// Cases received that repeat an earlier complaint of the same
    /// complainant and leaf category within the policy's window (counted at
    /// query time from contact hashes; no personal data needed).
    pub repeats: i64,
}

impl Default for Figures {
    fn default() -> Self {
        Figures { counts: [0; COUNTERS], open_overdue: 0, repeats: 0 }
    }
}

impl Figures {
    pub fn get(&self, c: Counter) -> i64 {
        self.counts[c as usize]
    }

    pub fn add(&mut self, counts: &Counts) {
        for (a, b) in self.counts.iter_mut().zip(counts) {
            *a += b;
        }
    }

    pub fn add_figures(&mut self, other: &Figures) {
        self.add(&other.counts);
        self.open_overdue += other.open_overdue;
        self.repeats += other.repeats;
    }
}

/// A target from the plan (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Target {
    pub value: f64,
    /// The figure should be at least `value` (else at most).
    pub at_least: bool,
}

macro_rules! kpis {
    ($($name:ident = $code:literal, $zh:literal, $def:literal, $zhdef:literal;)+) => {
        /// A KPI: a ratio of counters, as DOMAIN.md defines it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kpi { $($name,)+ }

        impl Kpi {
            pub const ALL: &'static [Kpi] = &[$(Kpi::$name,)+];

            pub fn as_str(self) -> &'static str {
                match self { $(Kpi::$name => $code,)+ }
            }

            pub fn zh(self) -> &'static str {
                match self { $(Kpi::$name => $zh,)+ }
            }

            /// The definition every report states.
            pub fn definition(self) -> &'static str {
                match self { $(Kpi::$name => $def,)+ }
            }

            /// The same definition in Chinese alone, for the console and
            /// the command line.
            pub fn definition_zh(self) -> &'static str {
                match self { $(Kpi::$name => $zhdef,)+ }
            }

            pub fn parse(s: &str) -> Option<Kpi> {
                match s { $($code => Some(Kpi::$name),)+ _ => None }
            }
        }
    };
}

kpis! {
    Satisfaction = "satisfaction", "满意率",
        "群众评价(满意 + 基本满意) / 群众评价; citizen-given ratings only (the plan's target applies to these), every rating in the month it was given (a 不满意 followed by 重办 and a 满意 is two ratings), less ratings set aside by an upheld 差评申诉",
        "群众评价中满意与基本满意之和 ÷ 群众评价数；只计群众本人作出的评价（规划目标按此考核），每次评价计入作出评价的月份（不满意后重办再评满意计两次），差评申诉成立的评价不计";
    SatisfactionStrict = "satisfaction_strict", "满意率(仅满意)",
        "群众评价满意 / 群众评价; citizen-given 满意 alone over citizen-given ratings",
        "群众评价中满意数 ÷ 群众评价数";
    ResultSatisfaction = "result_satisfaction", "结果满意率",
        "结果满意(含基本满意) / 结果评价; the citizen's satisfaction with the result, rated separately on the public page",
        "结果评价中满意（含基本满意）数 ÷ 结果评价数；群众在公众查询页对办理结果单独作出的评价";
    StaffSatisfaction = "staff_satisfaction", "满意率(工作人员录入)",
        "(满意 + 基本满意 − 群众评价满意 − 群众评价基本满意) / (评价 − 群众评价); staff-entered ratings, shown apart and never counted towards the target",
        "工作人员录入评价中满意与基本满意之和 ÷ 工作人员录入的评价数；单列显示，不计入考核目标";
    CitizenRatedShare = "citizen_rated_share", "群众评价占比",
        "群众评价 / 评价; the share of ratings the citizen gave (the rest were entered by staff)",
        "群众评价数 ÷ 评价总数；其余为工作人员代为录入";
    ResolutionRate = "resolution_rate", "化解率",
        "办结 / (办结 + 超期未办结); cases resolved over cases resolved or open past their resolution deadline (a case 不予受理 or 撤回 is in neither; a 中止 case's resolution clock stands still, so it is not past due while it waits)",
        "办结数 ÷（办结数 + 超期未办结数）；不予受理、撤回的案件不计入；中止期间办结时限停止计算，不算超期";
    LocalResolution = "local_resolution", "就地化解率",
        "首接中心未上报即办结 / 办结; resolved at the center that first accepted the case with no escalation, over all resolved",
        "首接中心未上报即办结数 ÷ 办结数";
    RegistrationOnTime = "registration_on_time", "按时登记率",
        "1小时内登记 / 受理; registered within the policy's registration time, over received",
        "在策略规定的登记时限（1小时）内登记数 ÷ 受理数";
    RoutingOnTime = "routing_on_time", "按时分流率",
        "按时分流 / 分流; routed (or signed onward) within 24 h (urgent 1 h), over routed",
        "在24小时（紧急1小时）内分流或转交数 ÷ 分流数";
    SignForOnTime = "sign_for_on_time", "按时签收率",
        "按时签收 / 签收; signed for within the policy's time after an escalation or dispatch",
        "上报或下派后在策略时限内签收数 ÷ 签收数";
    OnSiteOnTime = "on_site_on_time", "紧急案件按时到场率",
        "15分钟内到场 / 到场; urgent cases with a first on-site report within 15 minutes",
        "紧急案件15分钟内首次到场数 ÷ 到场数";
    ResolutionOnTime = "resolution_on_time", "按期办结率",
        "按期办结 / 办结; resolved within 7 (complex 15) working days plus approved extensions, the days of a 中止 not counted",
        "在7个工作日（复杂15个）加批准延期内办结数 ÷ 办结数；中止的天数不计";
    OverdueRate = "overdue_rate", "超期率",
        "超期办结 / 办结时限到结; closed late over closed (each resolution or re-handling clock)",
        "超期办结数 ÷ 办结时限到结数（每个办理或重办时限各计一次）";
    FeedbackOnTime = "feedback_on_time", "按时反馈率",
        "24小时内反馈 / 反馈; feedback given within 24 h of resolution",
        "办结后24小时内反馈数 ÷ 反馈数";
    AvgHandlingDays = "avg_handling_days", "平均办理时长(天)",
        "Σ(办结时间 − 受理时间) / 办结; mean natural days from receipt to resolution",
        "（办结时间 − 受理时间）之和 ÷ 办结数，按自然日计";
    RepeatRate = "repeat_rate", "重复投诉率",
        "重复投诉 / 受理; cases whose complainant (the same phone or ID fingerprint bucket) filed in the same leaf category within the policy's window (180 days) before, over received",
        "重复投诉数 ÷ 受理数；同一诉求人（电话或身份证号指纹相同）在策略窗口（180天）内就同一小类再次投诉";
}

impl Kpi {
    /// The value for `f`, `None` when the denominator is zero.
    pub fn value(self, f: &Figures) -> Option<f64> {
        use Counter as C;
        let ratio = |n: i64, d: i64| (d > 0).then(|| n as f64 / d as f64);
        match self {
            Kpi::Satisfaction => ratio(f.get(C::CitizenSatisfied) + f.get(C::CitizenBasicallySatisfied), f.get(C::CitizenRated)),
            Kpi::SatisfactionStrict => ratio(f.get(C::CitizenSatisfied), f.get(C::CitizenRated)),
            Kpi::ResultSatisfaction => ratio(f.get(C::ResultSatisfied), f.get(C::ResultRated)),
            Kpi::StaffSatisfaction => {
                ratio(f.get(C::Satisfied) + f.get(C::BasicallySatisfied) - f.get(C::CitizenSatisfied) - f.get(C::CitizenBasicallySatisfied), f.get(C::Rated) - f.get(C::CitizenRated))
            }
            Kpi::CitizenRatedShare => ratio(f.get(C::CitizenRated), f.get(C::Rated)),
            Kpi::ResolutionRate => ratio(f.get(C::Resolved), f.get(C::Resolved) + f.open_overdue),
            Kpi::LocalResolution => ratio(f.get(C::ResolvedLocally), f.get(C::Resolved)),
            Kpi::RegistrationOnTime => ratio(f.get(C::RegisteredOnTime), f.get(C::Received)),
            Kpi::RoutingOnTime => ratio(f.get(C::RoutedOnTime), f.get(C::Routed)),
            Kpi::SignForOnTime => ratio(f.get(C::SignedForOnTime), f.get(C::SignedFor)),
            Kpi::OnSiteOnTime => ratio(f.get(C::OnSiteOnTime), f.get(C::OnSite)),
            Kpi::ResolutionOnTime => ratio(f.get(C::ResolvedOnTime), f.get(C::Resolved)),
            Kpi::OverdueRate => ratio(f.get(C::ClosedLate), f.get(C::Closed)),
            Kpi::FeedbackOnTime => ratio(f.get(C::FeedbackOnTime), f.get(C::FedBack)),
            Kpi::AvgHandlingDays => ratio(f.get(C::HandlingMinutes), f.get(C::Resolved) * 1440),
            Kpi::RepeatRate => ratio(f.repeats, f.get(C::Received)),
        }
    }

    /// The plan's target for a unit at `level` (DOMAIN.md), if it sets one.
    pub fn target(self, level: Level) -> Option<Target> {
        let at_least = |value| Some(Target { value, at_least: true });
        match self {
            Kpi::Satisfaction => at_least(0.90),
            Kpi::ResultSatisfaction => at_least(0.85),
            Kpi::ResolutionRate => at_least(match level {
                Level::City => 0.95,
                Level::County => 0.93,
                Level::Township | Level::Village => 0.90,
            }),
            Kpi::LocalResolution => at_least(0.85),
            Kpi::RegistrationOnTime | Kpi::RoutingOnTime | Kpi::FeedbackOnTime => at_least(1.0),
            _ => None,
        }
    }
}

/// The version of the definitions above; every report names it.
pub const DEFINITIONS: &str = "zongzhi-kpi/v2 (docs/kpis.md: satisfaction from citizen-given ratings, each in its month, staff-entered apart; resolution, local resolution, on-time per clock, overdue = closed late / closed; 越级 against the unit where the matter arose)";

impl MonthlyReport {
    pub fn new(unit: DivisionCode, month: u32, counts: &Counts) -> MonthlyReport {
        MonthlyReport {
            unit,
            month,
            counts: counts.iter().enumerate().filter(|(_, v)| **v != 0).map(|(i, v)| (i as u8, *v)).collect(),
            definitions: DEFINITIONS.to_string(),
            supersedes: None,
            reason: String::new(),
        }
    }

    /// The month as people write it: `2026-12`.
    pub fn period(&self) -> String {
        period_of(self.month)
    }
}

/// `YYYYMM` as people write it: `2026-12`.
pub fn period_of(month: u32) -> String {
    format!("{}-{:02}", month / 100, month % 100)
}

impl MonthlyReport {
    pub fn figures(&self) -> Counts {
        let mut c = [0; COUNTERS];
        for (i, v) in &self.counts {
            if let Some(slot) = c.get_mut(*i as usize) {
                *slot = *v;
            }
        }
        c
    }
}

/// One difference between a report and the recomputation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Discrepancy {
    pub unit: DivisionCode,
    pub month: u32,
    /// A counter or KPI code.
    pub figure: &'static str,
    pub reported: f64,
    pub recomputed: f64,
}

/// Compares a report with the figures recomputed from the events: every
/// counter and every KPI that differs.
pub fn check_report(report: &MonthlyReport, recomputed: &Counts) -> Vec<Discrepancy> {
    let reported = report.figures();
    let mut out = Vec::new();
    let d = |figure, reported, recomputed| Discrepancy { unit: report.unit, month: report.month, figure, reported, recomputed };
    for c in Counter::ALL {
        let (a, b) = (reported[*c as usize], recomputed[*c as usize]);
        if a != b {
            out.push(d(c.as_str(), a as f64, b as f64));
        }
    }
    let fr = Figures { counts: reported, ..Figures::default() };
    let fc = Figures { counts: *recomputed, ..Figures::default() };
    for k in Kpi::ALL {
        if matches!(k, Kpi::ResolutionRate | Kpi::RepeatRate) {
            continue; // need query-time counts, which a report does not carry
        }
        let (a, b) = (k.value(&fr), k.value(&fc));
        if a != b {
            out.push(d(k.as_str(), a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN)));
        }
    }
    out
}

/// Months (`YYYYMM`) of a period: `2026-10`, `2026-Q4` or `2026`.
pub fn period_months(period: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("period {period:?}: expected YYYY-MM, YYYY-Qn or YYYY");
    let (year, rest) = match period.split_once('-') {
        Some((y, r)) => (y, Some(r)),
        None => (period, None),
    };
    let year: u32 = year.parse().ok().filter(|y| (2000..=2100).contains(y)).ok_or_else(bad)?;
    let months: Vec<u32> = match rest {
        None => (1..=12).collect(),
        Some(q) if q.starts_with('Q') => {
            let n: u32 = q[1..].parse().ok().filter(|n| (1..=4).contains(n)).ok_or_else(bad)?;
            (3 * n - 2..=3 * n).collect()
        }
        Some(m) => {
            let m: u32 = m.parse().ok().filter(|m| (1..=12).contains(m)).ok_or_else(bad)?;
            if rest.is_some_and(|r| r.len() != 2) {
                return Err(bad());
            }
            vec![m]
        }
    };
    Ok(months.into_iter().map(|m| year * 100 + m).collect())
}

/// The channel's index in stored keys (its place in `Channel::ALL`).
pub fn channel_index(c: Channel) -> u8 {
    Channel::ALL.iter().position(|x| *x == c).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(period_months("2026-10").unwrap(), vec![202610]);
        assert_eq!(period_months("2026-Q4").unwrap(), vec![202610, 202611, 202612]);
        assert_eq!(period_months("2026").unwrap().len(), 12);
        for bad in ["2026-13", "2026-Q5", "26", "2026-1", "x", "2026-Q"] {
            assert!(period_months(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn month_in_china_time() {
        // 2026-09-30 16:30 UTC is 2026-10-01 00:30 in China.
        let ms = jiff::Timestamp::from_second(1_790_785_800).unwrap().as_millisecond() as u64;
        assert_eq!(month_of(ms), Some(202610));
    }

    #[test]
    fn ratios_and_targets() {
        let mut f = Figures::default();
        f.counts[Counter::CitizenRated as usize] = 10;
        f.counts[Counter::CitizenSatisfied as usize] = 7;
        f.counts[Counter::CitizenBasicallySatisfied as usize] = 2;
        assert_eq!(Kpi::Satisfaction.value(&f), Some(0.9));
        assert_eq!(Kpi::SatisfactionStrict.value(&f), Some(0.7));
        assert_eq!(Kpi::ResolutionRate.value(&f), None);
        f.counts[Counter::Resolved as usize] = 19;
        f.open_overdue = 1;
        assert_eq!(Kpi::ResolutionRate.value(&f), Some(0.95));
        assert_eq!(Kpi::ResolutionRate.target(Level::County).unwrap().value, 0.93);
    }
}

/// `docs/kpis.md`: the definitions above as a published report states
/// them, generated from this module (a test keeps the file current).
pub fn markdown() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let pct = |t: Option<Target>| t.map(|t| format!("{} {}%", if t.at_least { "≥" } else { "≤" }, (t.value * 100.0).round())).unwrap_or_else(|| "—".into());
    let _ = writeln!(out, "# KPI definitions\n");
    let _ = writeln!(
        out,
        "Generated from `protocol/src/kpi.rs` (`kpi::markdown`); `cargo test -p zongzhi-protocol` fails when this file is stale, and `ZONGZHI_UPDATE_DOCS=1 cargo test -p zongzhi-protocol kpi_doc` rewrites it.\n"
    );
    let _ = writeln!(out, "Every report and statistics table names the definitions it follows: `{DEFINITIONS}`.\n");
    let _ = writeln!(out, "## KPIs\n");
    let _ = writeln!(out, "| code | 名称 | definition | target (city / county / township / village) |");
    let _ = writeln!(out, "|---|---|---|---|");
    for k in Kpi::ALL {
        let targets: Vec<String> = [Level::City, Level::County, Level::Township, Level::Village].iter().map(|l| pct(k.target(*l))).collect();
        let target = if targets.iter().all(|t| *t == targets[0]) { targets[0].clone() } else { targets.join(" / ") };
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", k.as_str(), k.zh(), k.definition(), target);
    }
    let _ = writeln!(out, "\n## Counters\n");
    let _ = writeln!(out, "Each case contributes counter increments keyed by month (China time), unit, category and channel, a pure function of its folded events (`kpi::facts`).\n");
    let _ = writeln!(out, "| code | 名称 |");
    let _ = writeln!(out, "|---|---|");
    for c in Counter::ALL {
        let _ = writeln!(out, "| `{}` | {} |", c.as_str(), c.zh());
    }
    let _ = writeln!(out, "\n## Rules the counters follow\n");
    for rule in [
        "Every rating counts in the month it was given, against the unit that resolved the case: a 不满意, then 重办 and a 满意, are two ratings, each in its month; 重办 never takes a rating back.",
        "A rating given by the citizen on a public page with the one-time token from the feedback is citizen-given (`citizen_rated`); one entered by staff is staff-entered (`rated` − `citizen_rated`). The satisfaction targets apply to citizen-given ratings; staff-entered ones are shown apart. While a citizen's invitation is open, staff cannot enter a rating.",
        "An upheld 差评申诉 takes the rating out of every satisfaction figure (`appeal_upheld`, in the rating's month); the rating stays in the case's timeline.",
        "越级: a case filed above the center where the matter arose (发生地), with no earlier case of the same complainant and leaf category at that center, as the filing center holds its subtree at intake. Counted for the filing unit (`skip_level_filed`) and against the unit where the matter arose (`skip_level`), in the month of filing. The statistics table shows it beside a baseline period (default: the same months a year earlier) and the plan's target of −50 %.",
        "Repeat: the same complainant — the same 24-bit fingerprint bucket of the normalised phone number (else of the ID number) — filing in the same leaf category within the policy's window.",
        "A month's report is signed once the month has closed; a later report for the same month supersedes the earlier with a reason, and both stay visible.",
        "督办回复 (record format 4): a 督办 asks the owning unit for a reply within the working days its grade allows (policy `supervision_reply`); `supervision_replied` and `supervision_replied_on_time` count replies against the supervised unit in the month of the reply. A later 督办 to the same unit before a reply supersedes the earlier one; resolving the case ends a pending reply clock without counting it. 督办 of format 3 asked for no reply.",
        "不予受理 (record format 4): the case was registered, so it counts as received (`received`, and `registered_on_time` by its registration clock); it is never resolved and never overdue: its running clocks stop uncounted (no 分流, 签收 or 办结 figure), and `declined` counts it against the declining unit in the month of the step. The citizen is referred to a place of the policy's list (`decisions.referrals`).",
        "撤回 (record format 4): received as any registered case; neither resolved nor overdue: its clocks stop uncounted, and `withdrawn` counts it against the unit that held it, in the month of the step.",
        "中止 and 恢复 (record format 4): a 中止 stops the owner's 分流, 办结 and 重办 clocks that are not past due, each keeping what it had left (working days after the day of the 中止, or natural time for hour-scale clocks), and 恢复 restarts them with as much from the day of 恢复; a clock already past due keeps running. So the days of a 中止 count neither towards 按期办结 nor as overdue. `suspended` counts each 中止 against the owner in its month; the 中止 names an expected end, and `resumed` / `resumed_on_time` count each 恢复 against it (a 中止 past its expected end is overdue and supervised, the case itself is not).",
        "协办 (record format 4): each helper unit or window has its working days to reply (policy `decisions.assistance_working_days` unless the request says otherwise). `assistance_requested` counts each helper asked, `assistance_replied` / `assistance_replied_on_time` each reply by its clock, `assistance_supervised` each 协办督办 — all against the helper (a window: its center). A request still unanswered when the case moves to another center, is resolved or closed ends uncounted.",
        "调解 (record format 4): `mediation_sessions`, `mediation_agreements`, `confirmation_referred` and `confirmed` (司法确认有效) count the steps against the mediating unit in the month each was recorded (not the date it reports). An agreement's 回访 is due `decisions.return_visit_days` after it was signed: `return_visits` / `return_visits_on_time` by that clock, and `agreements_kept` when the last visit found it kept.",
    ] {
        let _ = writeln!(out, "- {rule}");
    }
    let _ = writeln!(out, "\n## By window and by person\n");
    let _ = writeln!(
        out,
        "`GET /api/stats?by=window` and `by=person` (the console's 按窗口 and 按人员, the CSV/XLSX downloads and the Parquet export's `actors` table) count a subset of the counters against the department window (派驻窗口) and the person (a center's account, `unit:username`) who took the steps, from the steps that stand (accepted, not overruled):\n"
    );
    for rule in [
        "`received` (受理): against the person who filed the case, in the month it was filed; against a window when the case is routed (分流) or rerouted (改派) to it, in the month of that step, at the routing center.",
        "`resolved`, `resolved_on_time`, `handling_minutes` (办结, 按期办结, 办理时长): the case's resolution as it stands (as in the unit figures), against the person who resolved it and the window that step acted for (a window account's step, or the center's step on a case at one of its windows).",
        "Every rating counter (满意率 and the others): against the person and the window of the last 办结 of the rated unit before the rating, in the month of the rating.",
    ] {
        let _ = writeln!(out, "- {rule}");
    }
    let _ = writeln!(
        out,
        "\nOpen past-due cases and 越级 belong to units and are not shown by window or person. At a county or the city, a window's row sums the windows of that code of every center in the scope. These figures are computed from the cases at query time (the cases with a step since the period began are folded), not kept as counters."
    );
    out
}

#[cfg(test)]
mod doc_tests {
    #[test]
    fn kpi_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kpis.md");
        let want = super::markdown();
        if std::env::var_os("ZONGZHI_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("write docs/kpis.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "docs/kpis.md is stale: run ZONGZHI_UPDATE_DOCS=1 cargo test -p zongzhi-protocol kpi_doc");
    }
}
