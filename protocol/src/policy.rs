//! The city-signed policy: category taxonomy, department windows, deadline
//! table and working-day calendars.
//!
//! Hour-scale deadlines run on natural time; day-scale ones on working days
//! with China's public holidays and make-up working days (调休). Asking for a
//! working-day deadline in a year with no calendar is an error, never a guess.
//! All times are Unix milliseconds; calendar days are in China Standard Time
//! (UTC+8, no daylight saving since 1991), so no time-zone database is read.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Weekday};

use crate::case::{Complexity, Urgency};
use crate::codec::{Decode, Encode};

pub mod document;

/// A leaf category (小类).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct SubCategory {
    /// Four digits: the parent's two plus two.
    pub code: String,
    pub name: String,
    /// Department window this kind of case usually goes to.
    pub default_window: String,
    /// Retired codes stay (old cases keep their names) but take no new cases.
    pub retired: bool,
}

/// A top-level category (大类).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Category {
    /// Two digits.
    pub code: String,
    pub name: String,
    pub retired: bool,
    pub children: Vec<SubCategory>,
}

/// A department window (窗口) inside a center.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Window {
    pub code: String,
    pub name: String,
    pub retired: bool,
}

/// Deadlines, from DOMAIN.md unless the city sets others.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineTable {
    /// Registration after arrival (1 h).
    pub registration_minutes: u32,
    /// Routing of general cases (24 h) and urgent ones (1 h).
    pub routing_minutes: u32,
    pub routing_urgent_minutes: u32,
    /// Responders on site for urgent cases (15 min).
    pub on_site_urgent_minutes: u32,
    /// Sign-for-receipt after an escalation or dispatch.
    pub sign_for_minutes: u32,
    pub sign_for_urgent_minutes: u32,
    /// Resolution in working days: general 7, complex 15.
    pub resolution_working_days: u32,
    pub resolution_complex_working_days: u32,
    /// Feedback to the complainant after resolution (24 h).
    pub feedback_minutes: u32,
    /// Re-handling after 不满意, in working days.
    pub rehandle_working_days: u32,
    /// Longest extension one request may ask for, in working days.
    pub max_extension_working_days: u32,
    /// A deadline is "due soon" once this share of its time has elapsed.
    pub due_soon_percent: u8,
    /// A handling deadline set by hand (route or dispatch `due_at`) lies at
    /// most this many days ahead.
    pub max_due_days: u32,
    /// How long the citizen's one-time rating token (given at feedback)
    /// stays valid, in days.
    #[serde(default = "default_rating_token_days")]
    pub rating_token_days: u32,
}

fn default_rating_token_days() -> u32 {
    7
}

impl Default for DeadlineTable {
    fn default() -> Self {
        DeadlineTable {
            registration_minutes: 60,
            routing_minutes: 24 * 60,
            routing_urgent_minutes: 60,
            on_site_urgent_minutes: 15,
            sign_for_minutes: 24 * 60,
            sign_for_urgent_minutes: 60,
            resolution_working_days: 7,
            resolution_complex_working_days: 15,
            feedback_minutes: 24 * 60,
            rating_token_days: default_rating_token_days(),
            rehandle_working_days: 7,
            max_extension_working_days: 15,
            due_soon_percent: 75,
            max_due_days: 90,
        }
    }
}

/// Automatic supervision of an overdue clock: minutes past due after which
/// it earns 普通, 黄牌, 红牌 and 约谈.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionGrades {
    pub normal_after_minutes: u32,
    pub yellow_after_minutes: u32,
    pub red_after_minutes: u32,
    pub interview_after_minutes: u32,
}

impl Default for SupervisionGrades {
    fn default() -> Self {
        SupervisionGrades { normal_after_minutes: 0, yellow_after_minutes: 24 * 60, red_after_minutes: 3 * 24 * 60, interview_after_minutes: 7 * 24 * 60 }
    }
}

impl SupervisionGrades {
    /// The thresholds in grade order (普通, 黄牌, 红牌, 约谈).
    pub fn steps(&self) -> [u32; 4] {
        [self.normal_after_minutes, self.yellow_after_minutes, self.red_after_minutes, self.interview_after_minutes]
    }
}

/// A public holiday (放假日).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Holiday {
    /// `YYYYMMDD`.
    pub date: u32,
    /// The festival, e.g. 春节.
    pub name: String,
}

/// One year's public holidays and make-up working days (调休上班).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct YearCalendar {
    pub year: u16,
    /// Where the dates come from (the State Council notice).
    pub source: String,
    /// Sorted by date.
    pub holidays: Vec<Holiday>,
    /// `YYYYMMDD`, sorted.
    pub makeup_workdays: Vec<u32>,
}

/// The city-signed policy record body. Every change is a new version; the
/// rules a case event follows are those of the version its author held
/// (see [`PolicySet`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Policy {
    /// Increases with every policy the city signs.
    pub version: u32,
    pub categories: Vec<Category>,
    pub windows: Vec<Window>,
    pub deadlines: DeadlineTable,
    pub supervision: SupervisionGrades,
    /// A complaint is a repeat when the same complainant (contact hash) filed
    /// one in the same leaf category within this many days before.
    pub repeat_window_days: u32,
    /// Each center signs its monthly report this long after the month closes.
    pub report_grace_minutes: u32,
    /// `MMDD`: from this day of each year on, every node warns while the
    /// next year's calendar is missing.
    pub calendar_warning_from: u16,
    /// Sorted by year.
    pub calendars: Vec<YearCalendar>,
    /// The upgrade gate (format 4): the newest record format nodes may
    /// sign, raised by the city when it finalizes a release.
    pub gate: UpgradeGate,
    /// How long the supervised unit has to reply to a 督办 (format 4).
    pub supervision_reply: ReplyDeadlines,
    /// What the decisions of format 4 follow: where 不予受理 refers a
    /// citizen, why a case may be 中止, the default 协办 deadline, when
    /// the 回访 of a mediation agreement is due.
    pub decisions: DecisionRules,
}

/// A place a citizen is referred to when the center declines a matter
/// (不予受理): a code the step names, the name the citizen reads, and what
/// to do there.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Referral {
    pub code: String,
    pub name: String,
    /// What the citizen is told to do (where to go, what to bring).
    pub guidance: String,
    /// Retired codes stay (old cases name them) but are not offered.
    pub retired: bool,
}

/// A reason a case may be 中止 (its clocks stand still).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct SuspensionReason {
    pub code: String,
    pub name: String,
    pub retired: bool,
}

/// The rules of the decisions of record format 4. A policy of format 3
/// reads as [`DecisionRules::default`], which is therefore frozen: never
/// change a value of it (a later default would change what old policies
/// say).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct DecisionRules {
    /// 不予受理: where a citizen may be referred.
    pub referrals: Vec<Referral>,
    /// 中止: why a case may wait.
    pub suspension_reasons: Vec<SuspensionReason>,
    /// The longest 中止, in days after the step (its expected end).
    pub max_suspension_days: u32,
    /// 协办: working days a helper has to reply when the request does not
    /// say otherwise, and the most a request may give.
    pub assistance_working_days: u32,
    pub max_assistance_working_days: u32,
    /// 回访: days after a mediation agreement within which it is due.
    pub return_visit_days: u32,
}

impl Default for DecisionRules {
    fn default() -> Self {
        let referral = |code: &str, name: &str, guidance: &str| Referral { code: code.into(), name: name.into(), guidance: guidance.into(), retired: false };
        let reason = |code: &str, name: &str| SuspensionReason { code: code.into(), name: name.into(), retired: false };
        DecisionRules {
            referrals: vec![
                referral("court", "人民法院", "属于人民法院受理范围的民事纠纷，请携带身份证件和相关证据到有管辖权的人民法院诉讼服务中心咨询立案"),
                referral("labor_arbitration", "劳动人事争议仲裁委员会", "劳动人事争议请先向用人单位所在地的劳动人事争议仲裁委员会申请仲裁"),
                referral("police", "公安机关", "涉及违法犯罪的，请向当地公安机关报案；紧急情况请拨打110"),
                referral("administrative_review", "行政复议机关", "对行政机关的行政行为不服的，请依法向行政复议机关申请行政复议或向人民法院提起行政诉讼"),
                referral("petitions", "信访工作机构", "属于信访事项的，请按照《信访工作条例》向有权处理的机关提出"),
                referral("market_regulation", "市场监督管理部门（12315）", "消费纠纷请拨打12315或通过全国12315平台向市场监督管理部门投诉"),
            ],
            suspension_reasons: vec![
                reason("appraisal", "等待鉴定、评估结论"),
                reason("litigation", "当事人已申请仲裁或提起诉讼"),
                reason("other_authority", "等待其他机关的处理结果"),
                reason("party_unavailable", "当事人因故暂时不能参加"),
            ],
            max_suspension_days: 90,
            assistance_working_days: 5,
            max_assistance_working_days: 20,
            return_visit_days: 30,
        }
    }
}

impl DecisionRules {
    /// A referral by code, retired or not.
    pub fn referral(&self, code: &str) -> Option<&Referral> {
        self.referrals.iter().find(|r| r.code == code)
    }

    /// A 中止 reason by code, retired or not.
    pub fn suspension_reason(&self, code: &str) -> Option<&SuspensionReason> {
        self.suspension_reasons.iter().find(|r| r.code == code)
    }
}

/// The newest record format the city allows nodes to sign. A node signs
/// `min(its own newest, write_format)`; raising it (finalizing) promises
/// that no node goes back below it. Policies of format 3 read as a gate at
/// format 3.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeGate {
    pub write_format: u8,
    /// Centers that had not reported reading `write_format` when the city
    /// finalized anyway (an override names them; they park what they
    /// cannot read until upgraded).
    #[serde(default)]
    pub overridden: Vec<crate::division::DivisionCode>,
    /// Why the override was taken (empty without one).
    #[serde(default)]
    pub reason: String,
}

impl UpgradeGate {
    /// The gate every format-3 policy reads as.
    pub fn format_3() -> UpgradeGate {
        UpgradeGate { write_format: 3, overridden: Vec::new(), reason: String::new() }
    }
}

impl Default for UpgradeGate {
    fn default() -> Self {
        UpgradeGate::format_3()
    }
}

/// Working days the supervised unit has to reply to a 督办 (督办回复) of
/// each grade; an unanswered notice is raised a grade when its reply is
/// late. 督办 of format 3 asked for no reply.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyDeadlines {
    pub normal_working_days: u32,
    pub yellow_working_days: u32,
    pub red_working_days: u32,
    pub interview_working_days: u32,
}

impl Default for ReplyDeadlines {
    fn default() -> Self {
        ReplyDeadlines { normal_working_days: 3, yellow_working_days: 2, red_working_days: 1, interview_working_days: 1 }
    }
}

impl ReplyDeadlines {
    /// The reply deadline of a grade, in working days.
    pub fn working_days(&self, grade: crate::case::SuperviseGrade) -> u32 {
        use crate::case::SuperviseGrade::*;
        match grade {
            Normal => self.normal_working_days,
            Yellow => self.yellow_working_days,
            Red => self.red_working_days,
            Interview => self.interview_working_days,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PolicyError {
    #[error("no working-day calendar for {0}: load a policy with that year's holidays")]
    NoCalendar(i32),
    #[error("time out of range")]
    TimeRange,
    #[error("bad calendar data: {0}")]
    BadCalendar(String),
    #[error("{0}")]
    Invalid(String),
}

/// China Standard Time.
const CST: jiff::tz::Offset = jiff::tz::offset(8);

const MS_PER_MINUTE: u64 = 60_000;

/// The calendar date in China of a Unix-ms instant.
pub fn china_date(ms: u64) -> Result<Date, PolicyError> {
    let ts = Timestamp::from_millisecond(i64::try_from(ms).map_err(|_| PolicyError::TimeRange)?).map_err(|_| PolicyError::TimeRange)?;
    Ok(CST.to_datetime(ts).date())
}

/// Formats a Unix-ms instant as `YYYY-MM-DD HH:MM` China time.
pub fn format_china(ms: u64) -> String {
    match Timestamp::from_millisecond(ms as i64) {
        Ok(ts) => CST.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => format!("{ms}ms"),
    }
}

/// Start (00:00 China time) of a date, as Unix ms.
pub fn start_of_day_ms(date: Date) -> Result<u64, PolicyError> {
    let ts = CST.to_timestamp(date.at(0, 0, 0, 0)).map_err(|_| PolicyError::TimeRange)?;
    u64::try_from(ts.as_millisecond()).map_err(|_| PolicyError::TimeRange)
}

/// Start (00:00 China time) of the day of a Unix-ms instant (0 outside
/// the supported range).
pub fn day_start(ms: u64) -> u64 {
    china_date(ms).and_then(start_of_day_ms).unwrap_or(0)
}

/// End (23:59:59.999 China time) of the day of a Unix-ms instant (the
/// instant itself outside the supported range).
pub fn day_end(ms: u64) -> u64 {
    china_date(ms).and_then(end_of_day_ms).unwrap_or(ms)
}

fn end_of_day_ms(date: Date) -> Result<u64, PolicyError> {
    let dt: DateTime = date.at(23, 59, 59, 999_000_000);
    let ts = CST.to_timestamp(dt).map_err(|_| PolicyError::TimeRange)?;
    u64::try_from(ts.as_millisecond()).map_err(|_| PolicyError::TimeRange)
}

/// `YYYYMMDD` of a date. Years before 1 CE (which no calendar covers) give
/// year 0, so the number is never a date of a covered year.
pub fn ymd(date: Date) -> u32 {
    u32::from(date.year().max(0).unsigned_abs()) * 10_000 + date.month() as u32 * 100 + date.day() as u32
}

/// The date of a `YYYYMMDD` number.
pub fn date_of_ymd(d: u32) -> Option<Date> {
    Date::new(i16::try_from(d / 10_000).ok()?, ((d / 100) % 100) as i8, (d % 100) as i8).ok()
}

/// Longest name of a category or window, in characters.
pub const MAX_NAME_CHARS: usize = 40;

impl Policy {
    /// The default policy: deadlines from DOMAIN.md, the taxonomy below and
    /// the 2025 and 2026 calendars shipped with this crate.
    pub fn default_policy() -> Policy {
        let calendars = [include_str!("../data/cn-2025.json"), include_str!("../data/cn-2026.json")]
            .iter()
            .map(|json| match YearCalendar::from_json(json) {
                Ok(c) => c,
                Err(e) => panic!("shipped calendar is invalid: {e}"),
            })
            .collect();
        Policy {
            version: 1,
            categories: default_categories(),
            windows: default_windows(),
            deadlines: DeadlineTable::default(),
            supervision: SupervisionGrades::default(),
            repeat_window_days: 180,
            report_grace_minutes: 3 * 24 * 60,
            calendar_warning_from: 1101,
            calendars,
            gate: UpgradeGate::format_3(),
            supervision_reply: ReplyDeadlines::default(),
            decisions: DecisionRules::default(),
        }
    }

    /// A window by code, retired or not (names of old cases).
    pub fn window(&self, code: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.code == code)
    }

    /// The leaf category with `code` and its parent, retired or not.
    pub fn subcategory(&self, code: &str) -> Option<(&Category, &SubCategory)> {
        self.categories.iter().find_map(|c| c.children.iter().find(|s| s.code == code).map(|s| (c, s)))
    }

    /// The calendar of `year`, if this policy has one.
    pub fn calendar(&self, year: i32) -> Option<&YearCalendar> {
        self.calendars.iter().find(|c| c.year as i32 == year)
    }

    pub fn calendar_years(&self) -> Vec<i32> {
        self.calendars.iter().map(|c| c.year as i32).collect()
    }

    /// Whether `date` is a working day (Mon–Fri not a holiday, or a make-up day).
    pub fn is_working_day(&self, date: Date) -> Result<bool, PolicyError> {
        let cal = self.calendar(date.year() as i32).ok_or(PolicyError::NoCalendar(date.year() as i32))?;
        let d = ymd(date);
        if cal.makeup_workdays.binary_search(&d).is_ok() {
            return Ok(true);
        }
        if cal.holidays.binary_search_by_key(&d, |h| h.date).is_ok() {
            return Ok(false);
        }
        Ok(!matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday))
    }

    /// End (23:59:59.999 China time) of the `n`th working day after the day
    /// of `start_ms`. With `n == 0`, the end of the start day.
    pub fn add_working_days(&self, start_ms: u64, n: u32) -> Result<u64, PolicyError> {
        let mut date = china_date(start_ms)?;
        let mut left = n;
        while left > 0 {
            date = date.tomorrow().map_err(|_| PolicyError::TimeRange)?;
            if self.is_working_day(date)? {
                left -= 1;
            }
        }
        end_of_day_ms(date)
    }

    /// Working days after the day of `from_ms` up to and including the day
    /// of `to_ms` (0 when `to_ms` is on the same day or earlier): what a
    /// working-day clock due at `to_ms` has left at `from_ms`.
    pub fn working_days_between(&self, from_ms: u64, to_ms: u64) -> Result<u32, PolicyError> {
        let mut date = china_date(from_ms)?;
        let end = china_date(to_ms)?;
        let mut n = 0;
        while date < end {
            date = date.tomorrow().map_err(|_| PolicyError::TimeRange)?;
            if self.is_working_day(date)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Natural-time deadline.
    pub fn add_minutes(start_ms: u64, minutes: u32) -> u64 {
        start_ms.saturating_add(minutes as u64 * MS_PER_MINUTE)
    }

    pub fn routing_minutes(&self, urgency: Urgency) -> u32 {
        match urgency {
            Urgency::Urgent => self.deadlines.routing_urgent_minutes,
            Urgency::Normal => self.deadlines.routing_minutes,
        }
    }

    pub fn sign_for_minutes(&self, urgency: Urgency) -> u32 {
        match urgency {
            Urgency::Urgent => self.deadlines.sign_for_urgent_minutes,
            Urgency::Normal => self.deadlines.sign_for_minutes,
        }
    }

    pub fn resolution_working_days(&self, complexity: Complexity) -> u32 {
        match complexity {
            Complexity::Complex => self.deadlines.resolution_complex_working_days,
            Complexity::General => self.deadlines.resolution_working_days,
        }
    }

    /// The calendar warning at `now_ms`: the years a node should have a
    /// calendar for by now and has not (this year always; next year from
    /// the warning date on).
    pub fn missing_calendars(&self, now_ms: u64) -> Vec<i32> {
        let Ok(today) = china_date(now_ms) else { return Vec::new() };
        let year = today.year() as i32;
        let mut out = Vec::new();
        if self.calendar(year).is_none() {
            out.push(year);
        }
        let md = today.month() as u16 * 100 + today.day() as u16;
        if md >= self.calendar_warning_from && self.calendar(year + 1).is_none() {
            out.push(year + 1);
        }
        out
    }

    /// Checks a policy on its own and against the version before it:
    /// calendars well formed, codes never removed or reused with another
    /// meaning, names present and bounded, thresholds in order.
    pub fn validate(&self, previous: Option<&Policy>) -> Result<(), PolicyError> {
        for cal in &self.calendars {
            cal.validate()?;
        }
        for w in self.calendars.windows(2) {
            if w[0].year >= w[1].year {
                return invalid(format!("calendar {} is listed twice or out of order", w[1].year));
            }
        }
        self.validate_windows()?;
        self.validate_categories()?;
        self.validate_numbers()?;
        self.validate_decisions()?;
        match previous {
            Some(prev) => self.validate_against(prev),
            None => Ok(()),
        }
    }

    fn validate_windows(&self) -> Result<(), PolicyError> {
        let mut seen = std::collections::HashSet::new();
        for w in &self.windows {
            if w.code.is_empty() || w.code.len() > 32 || !w.code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return invalid(format!("window code {:?}: 1 to 32 characters a-z, 0-9 or _", w.code));
            }
            if !seen.insert(w.code.clone()) {
                return invalid(format!("window {} is listed twice", w.code));
            }
            name_ok("window", &w.code, &w.name)?;
        }
        Ok(())
    }

    fn validate_categories(&self) -> Result<(), PolicyError> {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let mut seen = std::collections::HashSet::new();
        for c in &self.categories {
            if !digits(&c.code, 2) {
                return invalid(format!("category code {:?}: two digits", c.code));
            }
            if !seen.insert(c.code.clone()) {
                return invalid(format!("category {} is listed twice", c.code));
            }
            name_ok("category", &c.code, &c.name)?;
            for s in &c.children {
                if !digits(&s.code, 4) || !s.code.starts_with(&c.code) {
                    return invalid(format!("sub-category code {:?}: four digits starting with its category's {}", s.code, c.code));
                }
                if !seen.insert(s.code.clone()) {
                    return invalid(format!("sub-category {} is listed twice", s.code));
                }
                name_ok("sub-category", &s.code, &s.name)?;
                match self.window(&s.default_window) {
                    None => return invalid(format!("sub-category {}: no window {:?}", s.code, s.default_window)),
                    Some(w) if w.retired && !s.retired && !c.retired => {
                        return invalid(format!("sub-category {} takes cases but its window {} is retired", s.code, w.code));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Deadlines, supervision thresholds, the report grace and the calendar
    /// warning date.
    fn validate_numbers(&self) -> Result<(), PolicyError> {
        let d = &self.deadlines;
        // Each field against the bound of its own unit: a year in minutes,
        // working days or days (a day field was once checked against a
        // year in minutes, so 100000 days passed).
        const YEAR_MINUTES: u32 = 366 * 24 * 60;
        const YEAR_DAYS: u32 = 366;
        const YEAR_WORKING_DAYS: u32 = 250;
        for (name, v, max, unit) in [
            ("registration_minutes", d.registration_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("routing_minutes", d.routing_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("routing_urgent_minutes", d.routing_urgent_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("on_site_urgent_minutes", d.on_site_urgent_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("sign_for_minutes", d.sign_for_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("sign_for_urgent_minutes", d.sign_for_urgent_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("feedback_minutes", d.feedback_minutes, YEAR_MINUTES, "a year in minutes (527040)"),
            ("resolution_working_days", d.resolution_working_days, YEAR_WORKING_DAYS, "a year's working days (250)"),
            ("resolution_complex_working_days", d.resolution_complex_working_days, YEAR_WORKING_DAYS, "a year's working days (250)"),
            ("rehandle_working_days", d.rehandle_working_days, YEAR_WORKING_DAYS, "a year's working days (250)"),
            ("max_extension_working_days", d.max_extension_working_days, YEAR_WORKING_DAYS, "a year's working days (250)"),
            ("max_due_days", d.max_due_days, YEAR_DAYS, "a year in days (366)"),
            ("rating_token_days", d.rating_token_days, YEAR_DAYS, "a year in days (366)"),
            ("repeat_window_days", self.repeat_window_days, YEAR_DAYS, "a year in days (366)"),
        ] {
            if v == 0 || v > max {
                return invalid(format!("{name} must be at least 1 and at most {unit}, not {v}"));
            }
        }
        if d.due_soon_percent == 0 || d.due_soon_percent > 100 {
            return invalid("due_soon_percent must be 1 to 100".into());
        }
        let steps = self.supervision.steps();
        if steps.windows(2).any(|w| w[0] > w[1]) {
            return invalid("supervision thresholds must not decrease from 普通 to 约谈".into());
        }
        if let Some(v) = steps.iter().find(|v| **v > YEAR_MINUTES) {
            return invalid(format!("a supervision threshold is at most a year in minutes (527040), not {v}"));
        }
        if self.report_grace_minutes > 31 * 24 * 60 {
            return invalid("report_grace_minutes is at most 31 days".into());
        }
        if date_of_ymd(20240000 + self.calendar_warning_from as u32).is_none() {
            return invalid(format!("calendar_warning_from {:04}: not a month and day", self.calendar_warning_from));
        }
        Ok(())
    }

    /// Referral and 中止 reason codes well formed, each once, named; the
    /// decision deadlines in range.
    fn validate_decisions(&self) -> Result<(), PolicyError> {
        let d = &self.decisions;
        let code_ok = |what: &str, code: &str| -> Result<(), PolicyError> {
            if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return invalid(format!("{what} code {code:?}: 1 to 32 characters a-z, 0-9 or _"));
            }
            Ok(())
        };
        let mut seen = std::collections::HashSet::new();
        for r in &d.referrals {
            code_ok("referral", &r.code)?;
            if !seen.insert(r.code.clone()) {
                return invalid(format!("referral {} is listed twice", r.code));
            }
            name_ok("referral", &r.code, &r.name)?;
            let n = r.guidance.trim().chars().count();
            if n == 0 || n > 200 || r.guidance.chars().any(char::is_control) {
                return invalid(format!("referral {}: guidance is 1 to 200 characters without control characters", r.code));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &d.suspension_reasons {
            code_ok("suspension reason", &r.code)?;
            if !seen.insert(r.code.clone()) {
                return invalid(format!("suspension reason {} is listed twice", r.code));
            }
            name_ok("suspension reason", &r.code, &r.name)?;
        }
        for (name, v, max) in [
            ("max_suspension_days", d.max_suspension_days, 366),
            ("assistance_working_days", d.assistance_working_days, 250),
            ("max_assistance_working_days", d.max_assistance_working_days, 250),
            ("return_visit_days", d.return_visit_days, 366),
        ] {
            if v == 0 || v > max {
                return invalid(format!("decisions.{name} must be 1 to {max}"));
            }
        }
        if d.assistance_working_days > d.max_assistance_working_days {
            return invalid("decisions.assistance_working_days is more than max_assistance_working_days".into());
        }
        Ok(())
    }

    /// The version follows `prev`, and no window, category or sub-category
    /// of it is gone (old cases name them: they are retired instead).
    fn validate_against(&self, prev: &Policy) -> Result<(), PolicyError> {
        if self.version != prev.version + 1 {
            return invalid(format!("version {} does not follow {}", self.version, prev.version));
        }
        for w in &prev.windows {
            if self.window(&w.code).is_none() {
                return invalid(format!("window {} cannot be removed (old cases use it): retire it instead", w.code));
            }
        }
        for r in &prev.decisions.referrals {
            if self.decisions.referral(&r.code).is_none() {
                return invalid(format!("referral {} cannot be removed (old cases name it): retire it instead", r.code));
            }
        }
        for r in &prev.decisions.suspension_reasons {
            if self.decisions.suspension_reason(&r.code).is_none() {
                return invalid(format!("suspension reason {} cannot be removed (old cases name it): retire it instead", r.code));
            }
        }
        for c in &prev.categories {
            let Some(now) = self.categories.iter().find(|x| x.code == c.code) else {
                return invalid(format!("category {} cannot be removed: retire it instead", c.code));
            };
            for s in &c.children {
                if !now.children.iter().any(|x| x.code == s.code) {
                    return invalid(format!("sub-category {} cannot be removed: retire it instead", s.code));
                }
            }
        }
        Ok(())
    }
}

fn invalid(message: String) -> Result<(), PolicyError> {
    Err(PolicyError::Invalid(message))
}

/// A name of a window or category: present, bounded, no control characters.
fn name_ok(what: &str, code: &str, name: &str) -> Result<(), PolicyError> {
    let n = name.trim().chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(PolicyError::Invalid(format!("{what} {code}: a name is 1 to {MAX_NAME_CHARS} characters without control characters")));
    }
    Ok(())
}

/// Every policy version a node holds, and the rules each implies.
///
/// The rule for clocks across versions: a case event follows the version its
/// author held when signing it (the event says which). A clock takes the
/// deadline table of that version, and its working days from that
/// version's calendars; only a year that version lacks is filled from the
/// first later version that has it. So a clock already computed never moves
/// when a later version changes the deadline table or a calendar, and a
/// clock waiting for a year is computed as soon as a version with that year
/// is held.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Sorted by version; never empty.
    versions: Vec<std::sync::Arc<Policy>>,
    /// `versions[i]` with the years it lacks filled from later versions.
    composed: Vec<std::sync::Arc<Policy>>,
}

/// The rules one event follows.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub policy: &'a Policy,
    /// The version the event named is held (otherwise the newest older one
    /// stands in until it arrives).
    pub held: bool,
}

impl PolicySet {
    pub fn new(policy: Policy) -> PolicySet {
        let p = std::sync::Arc::new(policy);
        PolicySet { versions: vec![p.clone()], composed: vec![p] }
    }

    /// Adds a version; false if it was held already.
    pub fn insert(&mut self, policy: Policy) -> bool {
        match self.versions.binary_search_by_key(&policy.version, |p| p.version) {
            Ok(_) => false,
            Err(i) => {
                self.versions.insert(i, std::sync::Arc::new(policy));
                self.compose();
                true
            }
        }
    }

    fn compose(&mut self) {
        let mut composed = Vec::with_capacity(self.versions.len());
        for (i, v) in self.versions.iter().enumerate() {
            let mut years: Vec<YearCalendar> = v.calendars.clone();
            for later in &self.versions[i + 1..] {
                for cal in &later.calendars {
                    if !years.iter().any(|c| c.year == cal.year) {
                        years.push(cal.clone());
                    }
                }
            }
            if years.len() == v.calendars.len() {
                composed.push(v.clone());
            } else {
                years.sort_by_key(|c| c.year);
                let mut p = (**v).clone();
                p.calendars = years;
                composed.push(std::sync::Arc::new(p));
            }
        }
        self.composed = composed;
    }

    /// The newest version.
    pub fn current(&self) -> &std::sync::Arc<Policy> {
        // Never empty: built from one policy, versions only added.
        &self.versions[self.versions.len() - 1]
    }

    /// The newest version with every year any version has (what new steps
    /// follow: the current version's calendars first).
    pub fn current_rules(&self) -> &std::sync::Arc<Policy> {
        &self.composed[self.composed.len() - 1]
    }

    pub fn get(&self, version: u32) -> Option<&std::sync::Arc<Policy>> {
        self.versions.binary_search_by_key(&version, |p| p.version).ok().map(|i| &self.versions[i])
    }

    pub fn versions(&self) -> impl Iterator<Item = &std::sync::Arc<Policy>> {
        self.versions.iter()
    }

    /// The rules of `version` (see the type's doc).
    pub fn rules(&self, version: u32) -> Rules<'_> {
        match self.versions.binary_search_by_key(&version, |p| p.version) {
            Ok(i) => Rules { policy: &self.composed[i], held: true },
            // Not held yet: the newest older version (or the oldest) stands in.
            Err(i) => Rules { policy: &self.composed[i.saturating_sub(1)], held: false },
        }
    }
}

impl From<Policy> for PolicySet {
    fn from(p: Policy) -> Self {
        PolicySet::new(p)
    }
}

/// The fewest working days a year's calendar may have (China's have about 250).
pub const MIN_WORKING_DAYS: u32 = 200;

impl YearCalendar {
    /// Dates in the year, make-up workdays on weekends, no date twice, no
    /// holiday that is also a make-up workday, a holiday name for each.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::BadCalendar(format!("{}: {m}", self.year)));
        if !(2000..=2100).contains(&self.year) {
            return bad("the year must lie in 2000–2100".into());
        }
        if self.source.chars().count() > 200 {
            return bad("source is longer than 200 characters".into());
        }
        let in_year = |d: u32| -> Result<Date, PolicyError> {
            let date = date_of_ymd(d).ok_or_else(|| PolicyError::BadCalendar(format!("{}: {d} is not a date", self.year)))?;
            if date.year() as i32 != self.year as i32 {
                return Err(PolicyError::BadCalendar(format!("{}: {} is not in {}", self.year, date, self.year)));
            }
            Ok(date)
        };
        for w in self.holidays.windows(2) {
            if w[0].date >= w[1].date {
                return bad(format!("holiday {} listed twice or out of order", w[1].date));
            }
        }
        for w in self.makeup_workdays.windows(2) {
            if w[0] >= w[1] {
                return bad(format!("make-up workday {} listed twice or out of order", w[1]));
            }
        }
        for h in &self.holidays {
            let date = in_year(h.date)?;
            let n = h.name.trim().chars().count();
            if n == 0 || n > 20 {
                return bad(format!("holiday {date}: a name of 1 to 20 characters (e.g. 春节)"));
            }
        }
        for &d in &self.makeup_workdays {
            let date = in_year(d)?;
            if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
                return bad(format!("make-up workday (调休上班) {date} is a {:?}, not a weekend day", date.weekday()));
            }
            if self.holidays.iter().any(|h| h.date == d) {
                return bad(format!("{date} is both a holiday and a make-up workday"));
            }
        }
        // A year of China's calendar has about 250 working days; one with
        // far fewer (every weekday a holiday, say) is a mistake, and one
        // with none would leave every working-day deadline without an end.
        let working = self.working_days();
        if working < MIN_WORKING_DAYS {
            return bad(format!("the year has {working} working days; a calendar needs at least {MIN_WORKING_DAYS} (is every weekday listed as a holiday?)"));
        }
        Ok(())
    }

    /// The working days of the year: Monday to Friday not a holiday, and
    /// the make-up workdays.
    pub fn working_days(&self) -> u32 {
        let Some(mut day) = date_of_ymd(self.year as u32 * 10_000 + 101) else { return 0 };
        let mut n = self.makeup_workdays.len() as u32;
        while day.year() as i32 == self.year as i32 {
            let ymd = day.year() as u32 * 10_000 + day.month() as u32 * 100 + day.day() as u32;
            if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) && !self.holidays.iter().any(|h| h.date == ymd) {
                n += 1;
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        n
    }
}

/// One year's calendar as JSON: the shape of the shipped `data/cn-YYYY.json`
/// files and of each year in the policy document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDoc {
    /// Only in calendar files (the document keys years by number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
    #[serde(default)]
    pub source: String,
    /// Free text in calendar files (how to read the lists); not kept.
    #[serde(default, skip_serializing)]
    pub rule: Option<String>,
    pub holidays: Vec<HolidayDoc>,
    pub make_up_workdays: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayDoc {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub name: String,
}

fn parse_date(s: &str) -> Result<u32, PolicyError> {
    let not_a_date = || PolicyError::BadCalendar(format!("{s:?} is not a date (YYYY-MM-DD)"));
    // jiff also reads signed six-digit years (`-002027-10-01`); a policy
    // date is exactly YYYY-MM-DD.
    if s.len() != 10 || !s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() }) {
        return Err(not_a_date());
    }
    let date: Date = s.parse().map_err(|_| not_a_date())?;
    Ok(ymd(date))
}

fn date_string(d: u32) -> String {
    match date_of_ymd(d) {
        Some(date) => date.to_string(),
        None => d.to_string(),
    }
}

impl CalendarDoc {
    /// The calendar of `year` (dates parsed and sorted, then validated:
    /// duplicates, dates outside the year, make-up days on weekdays refused).
    pub fn to_calendar(&self, year: u16) -> Result<YearCalendar, PolicyError> {
        if let Some(y) = self.year
            && y != year
        {
            return Err(PolicyError::BadCalendar(format!("the file is the calendar of {y}, not {year}")));
        }
        let mut holidays = self.holidays.iter().map(|h| Ok(Holiday { date: parse_date(&h.date)?, name: h.name.trim().to_string() })).collect::<Result<Vec<_>, PolicyError>>()?;
        let mut makeup_workdays = self.make_up_workdays.iter().map(|d| parse_date(d)).collect::<Result<Vec<_>, _>>()?;
        holidays.sort_by_key(|h| h.date);
        makeup_workdays.sort_unstable();
        let cal = YearCalendar { year, source: self.source.trim().to_string(), holidays, makeup_workdays };
        cal.validate()?;
        Ok(cal)
    }

    pub fn of(cal: &YearCalendar) -> CalendarDoc {
        CalendarDoc {
            year: None,
            source: cal.source.clone(),
            rule: None,
            holidays: cal.holidays.iter().map(|h| HolidayDoc { date: date_string(h.date), name: h.name.clone() }).collect(),
            make_up_workdays: cal.makeup_workdays.iter().map(|d| date_string(*d)).collect(),
        }
    }
}

impl YearCalendar {
    /// Reads a calendar file (one year, with its `year` field).
    pub fn from_json(json: &str) -> Result<YearCalendar, PolicyError> {
        let raw: CalendarDoc = serde_json::from_str(json).map_err(|e| PolicyError::BadCalendar(e.to_string()))?;
        let year = raw.year.ok_or_else(|| PolicyError::BadCalendar("the file has no \"year\"".into()))?;
        raw.to_calendar(year)
    }
}

fn sub(code: &str, name: &str, window: &str) -> SubCategory {
    SubCategory { code: code.into(), name: name.into(), default_window: window.into(), retired: false }
}

fn default_categories() -> Vec<Category> {
    let cat = |code: &str, name: &str, children: Vec<SubCategory>| Category { code: code.into(), name: name.into(), retired: false, children };
    vec![
        cat("01", "婚姻家庭纠纷", vec![sub("0101", "婚姻纠纷", "justice"), sub("0102", "家庭纠纷", "justice"), sub("0103", "赡养抚养纠纷", "civil_affairs"), sub("0104", "继承纠纷", "justice")]),
        cat("02", "邻里纠纷", vec![sub("0201", "相邻关系纠纷", "justice"), sub("0202", "噪音扰民", "police"), sub("0203", "宅基地纠纷", "natural_resources")]),
        cat("03", "土地山林纠纷", vec![sub("0301", "土地承包经营纠纷", "natural_resources"), sub("0302", "征地拆迁纠纷", "housing"), sub("0303", "山林权属纠纷", "natural_resources")]),
        cat("04", "劳动争议", vec![sub("0401", "拖欠工资", "human_resources"), sub("0402", "工伤纠纷", "human_resources"), sub("0403", "劳动合同纠纷", "human_resources")]),
        cat("05", "物业与住房", vec![sub("0501", "物业服务纠纷", "housing"), sub("0502", "房屋质量问题", "housing"), sub("0503", "违法建筑", "housing")]),
        cat("06", "消费与合同", vec![sub("0601", "消费维权", "market"), sub("0602", "合同纠纷", "justice"), sub("0603", "民间借贷纠纷", "justice")]),
        cat("07", "治安与安全隐患", vec![sub("0701", "治安问题", "police"), sub("0702", "安全隐患", "emergency"), sub("0703", "矛盾激化风险", "police")]),
        cat("08", "环境与公共服务", vec![sub("0801", "环境污染", "environment"), sub("0802", "市政设施", "housing"), sub("0803", "医疗卫生", "health")]),
        cat("09", "信访与其他", vec![sub("0901", "信访事项", "petitions"), sub("0999", "其他", "petitions")]),
    ]
}

fn default_windows() -> Vec<Window> {
    [
        ("police", "公安"),
        ("justice", "司法"),
        ("civil_affairs", "民政"),
        ("housing", "住建"),
        ("market", "市场监管"),
        ("petitions", "信访"),
        ("human_resources", "人社"),
        ("health", "卫健"),
        ("emergency", "应急"),
        ("natural_resources", "自然资源"),
        ("environment", "生态环境"),
    ]
    .iter()
    .map(|(code, name)| Window { code: (*code).into(), name: (*name).into(), retired: false })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    fn ms(y: i16, m: i8, d: i8, h: i8) -> u64 {
        CST.to_timestamp(date(y, m, d).at(h, 0, 0, 0)).unwrap().as_millisecond() as u64
    }

    #[test]
    fn shipped_calendars_load() {
        let p = Policy::default_policy();
        assert_eq!(p.calendars.len(), 2);
        // 2026-10-01 National Day is a holiday (Thursday).
        assert!(!p.is_working_day(date(2026, 10, 1)).unwrap());
        // 2026-10-10 is a Saturday make-up working day.
        assert!(p.is_working_day(date(2026, 10, 10)).unwrap());
        // An ordinary Saturday.
        assert!(!p.is_working_day(date(2026, 11, 28)).unwrap());
        assert!(p.is_working_day(date(2026, 11, 27)).unwrap());
    }

    #[test]
    fn every_default_category_has_a_known_window() {
        let p = Policy::default_policy();
        for c in &p.categories {
            for s in &c.children {
                assert!(s.code.starts_with(&c.code), "{} under {}", s.code, c.code);
                assert!(p.window(&s.default_window).is_some(), "{}", s.default_window);
            }
        }
    }

    #[test]
    fn seven_working_days_across_national_day() {
        let p = Policy::default_policy();
        // Filed Tuesday 2026-09-29 10:00. Working days after: 30 Sep (Wed),
        // then 1–7 Oct holiday, 8 Oct (Thu), 9 Oct (Fri), 10 Oct (Sat, make-up),
        // 12, 13, 14 Oct → the 7th is Wed 14 Oct.
        let due = p.add_working_days(ms(2026, 9, 29, 10), 7).unwrap();
        assert_eq!(format_china(due), "2026-10-14 23:59");
    }

    #[test]
    fn spring_festival_2026() {
        let p = Policy::default_policy();
        // Friday 2026-02-13; 14 Feb (Sat) is a make-up day; 15–23 Feb holiday.
        let due = p.add_working_days(ms(2026, 2, 13, 9), 2).unwrap();
        assert_eq!(format_china(due), "2026-02-24 23:59");
    }

    #[test]
    fn year_without_calendar_is_an_error() {
        let p = Policy::default_policy();
        // Late December 2026: counting runs into 2027, which has no calendar.
        assert_eq!(p.add_working_days(ms(2026, 12, 28, 9), 7), Err(PolicyError::NoCalendar(2027)));
        assert_eq!(p.add_working_days(ms(2024, 6, 3, 9), 1), Err(PolicyError::NoCalendar(2024)));
    }

    #[test]
    fn bad_calendar_json_is_refused() {
        assert!(YearCalendar::from_json("{}").is_err());
        let wrong_year = r#"{"year":2026,"holidays":[{"date":"2025-01-01"}],"make_up_workdays":[]}"#;
        assert!(YearCalendar::from_json(wrong_year).is_err());
    }

    proptest! {
        #[test]
        fn working_day_deadlines_land_on_working_days_and_grow(
            day in 0u64..700, hour in 0u64..24, n in 1u32..20,
        ) {
            let p = Policy::default_policy();
            let start = ms(2025, 1, 1, 0) + day * 86_400_000 + hour * 3_600_000;
            match p.add_working_days(start, n) {
                Ok(due) => {
                    prop_assert!(due > start);
                    let d = china_date(due).unwrap();
                    prop_assert!(p.is_working_day(d).unwrap());
                    // Exactly n working days lie in (start day, due day].
                    let mut count = 0;
                    let mut cur = china_date(start).unwrap();
                    while cur < d {
                        cur = cur.tomorrow().unwrap();
                        if p.is_working_day(cur).unwrap() { count += 1; }
                    }
                    prop_assert_eq!(count, n);
                    if let Ok(more) = p.add_working_days(start, n + 1) {
                        prop_assert!(more > due);
                    }
                }
                Err(PolicyError::NoCalendar(y)) => prop_assert_eq!(y, 2027),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
