//! The city-signed policy: category taxonomy, department windows, deadline
//! table and working-day calendars.
//!
//! Hour-scale deadlines run on natural time; day-scale ones on working days
//! with China's public holidays and make-up working days (调休). Asking for a
//! working-day deadline in a year with no calendar is an error, never a guess.
//! All times are Unix milliseconds; calendar days are in China Standard Time
//! (UTC+8, no daylight saving since 1991), so no time-zone database is read.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::Timestamp;

use crate::case::{Complexity, Urgency};
use crate::codec::{Decode, Encode};

/// A leaf category (小类).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct SubCategory {
    /// Four digits: the parent's two plus two.
    pub code: String,
    pub name: String,
    /// Department window this kind of case usually goes to.
    pub default_window: String,
}

/// A top-level category (大类).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Category {
    /// Two digits.
    pub code: String,
    pub name: String,
    pub children: Vec<SubCategory>,
}

/// A department window (窗口) inside a center.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Window {
    pub code: String,
    pub name: String,
}

/// Deadlines, from DOMAIN.md unless the city sets others.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
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
    /// Automatic supervision of an overdue clock: minutes past due after
    /// which it earns 普通, 黄牌, 红牌 and 约谈 (in that order).
    pub supervision_after_minutes: [u32; 4],
    /// Each center signs its monthly report this long after the month closes.
    pub report_grace_minutes: u32,
    /// A complaint is a repeat when the same complainant (contact hash) filed
    /// one in the same leaf category within this many days before.
    pub repeat_window_days: u32,
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
            rehandle_working_days: 7,
            max_extension_working_days: 15,
            due_soon_percent: 75,
            supervision_after_minutes: [0, 24 * 60, 3 * 24 * 60, 7 * 24 * 60],
            report_grace_minutes: 3 * 24 * 60,
            repeat_window_days: 180,
        }
    }
}

/// One year's public holidays and make-up working days, as `YYYYMMDD`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct YearCalendar {
    pub year: u16,
    pub holidays: Vec<u32>,
    pub makeup_workdays: Vec<u32>,
}

/// The city-signed policy record body.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Policy {
    /// Increases with every policy the city signs.
    pub version: u32,
    pub categories: Vec<Category>,
    pub windows: Vec<Window>,
    pub deadlines: DeadlineTable,
    pub calendars: Vec<YearCalendar>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PolicyError {
    #[error("no working-day calendar for {0}: load a policy with that year's holidays")]
    NoCalendar(i32),
    #[error("time out of range")]
    TimeRange,
    #[error("bad calendar data: {0}")]
    BadCalendar(String),
}

/// China Standard Time.
const CST: jiff::tz::Offset = jiff::tz::offset(8);

const MS_PER_MINUTE: u64 = 60_000;

/// The calendar date in China of a Unix-ms instant.
pub fn china_date(ms: u64) -> Result<Date, PolicyError> {
    let ts = Timestamp::from_millisecond(i64::try_from(ms).map_err(|_| PolicyError::TimeRange)?)
        .map_err(|_| PolicyError::TimeRange)?;
    Ok(CST.to_datetime(ts).date())
}

/// Formats a Unix-ms instant as `YYYY-MM-DD HH:MM` China time.
pub fn format_china(ms: u64) -> String {
    match Timestamp::from_millisecond(ms as i64) {
        Ok(ts) => CST.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => format!("{ms}ms"),
    }
}

fn end_of_day_ms(date: Date) -> Result<u64, PolicyError> {
    let dt: DateTime = date.at(23, 59, 59, 999_000_000);
    let ts = CST.to_timestamp(dt).map_err(|_| PolicyError::TimeRange)?;
    u64::try_from(ts.as_millisecond()).map_err(|_| PolicyError::TimeRange)
}

fn ymd(date: Date) -> u32 {
    date.year() as u32 * 10_000 + date.month() as u32 * 100 + date.day() as u32
}

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
            calendars,
        }
    }

    pub fn window(&self, code: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.code == code)
    }

    /// The leaf category with `code` and its parent.
    pub fn subcategory(&self, code: &str) -> Option<(&Category, &SubCategory)> {
        self.categories
            .iter()
            .find_map(|c| c.children.iter().find(|s| s.code == code).map(|s| (c, s)))
    }

    fn calendar(&self, year: i16) -> Option<&YearCalendar> {
        self.calendars.iter().find(|c| c.year as i32 == year as i32)
    }

    /// Whether `date` is a working day (Mon–Fri not a holiday, or a make-up day).
    pub fn is_working_day(&self, date: Date) -> Result<bool, PolicyError> {
        let cal = self.calendar(date.year()).ok_or(PolicyError::NoCalendar(date.year() as i32))?;
        let d = ymd(date);
        if cal.makeup_workdays.binary_search(&d).is_ok() {
            return Ok(true);
        }
        if cal.holidays.binary_search(&d).is_ok() {
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
}

#[derive(serde::Deserialize)]
struct CalendarJson {
    year: u16,
    holidays: Vec<HolidayJson>,
    make_up_workdays: Vec<String>,
}

#[derive(serde::Deserialize)]
struct HolidayJson {
    date: String,
}

impl YearCalendar {
    /// Reads the calendar JSON format shipped in `data/` (one year).
    pub fn from_json(json: &str) -> Result<YearCalendar, PolicyError> {
        let raw: CalendarJson = serde_json::from_str(json).map_err(|e| PolicyError::BadCalendar(e.to_string()))?;
        let parse = |s: &str| -> Result<u32, PolicyError> {
            let date: Date = s.parse().map_err(|_| PolicyError::BadCalendar(format!("bad date {s:?}")))?;
            if date.year() as i32 != raw.year as i32 {
                return Err(PolicyError::BadCalendar(format!("{s} is not in {}", raw.year)));
            }
            Ok(ymd(date))
        };
        let mut holidays = raw.holidays.iter().map(|h| parse(&h.date)).collect::<Result<Vec<_>, _>>()?;
        let mut makeup_workdays = raw.make_up_workdays.iter().map(|d| parse(d)).collect::<Result<Vec<_>, _>>()?;
        holidays.sort_unstable();
        holidays.dedup();
        makeup_workdays.sort_unstable();
        makeup_workdays.dedup();
        Ok(YearCalendar { year: raw.year, holidays, makeup_workdays })
    }
}

fn sub(code: &str, name: &str, window: &str) -> SubCategory {
    SubCategory { code: code.into(), name: name.into(), default_window: window.into() }
}

fn default_categories() -> Vec<Category> {
    let cat = |code: &str, name: &str, children: Vec<SubCategory>| Category { code: code.into(), name: name.into(), children };
    vec![
        cat("01", "婚姻家庭纠纷", vec![
            sub("0101", "婚姻纠纷", "justice"),
            sub("0102", "家庭纠纷", "justice"),
            sub("0103", "赡养抚养纠纷", "civil_affairs"),
            sub("0104", "继承纠纷", "justice"),
        ]),
        cat("02", "邻里纠纷", vec![
            sub("0201", "相邻关系纠纷", "justice"),
            sub("0202", "噪音扰民", "police"),
            sub("0203", "宅基地纠纷", "natural_resources"),
        ]),
        cat("03", "土地山林纠纷", vec![
            sub("0301", "土地承包经营纠纷", "natural_resources"),
            sub("0302", "征地拆迁纠纷", "housing"),
            sub("0303", "山林权属纠纷", "natural_resources"),
        ]),
        cat("04", "劳动争议", vec![
            sub("0401", "拖欠工资", "human_resources"),
            sub("0402", "工伤纠纷", "human_resources"),
            sub("0403", "劳动合同纠纷", "human_resources"),
        ]),
        cat("05", "物业与住房", vec![
            sub("0501", "物业服务纠纷", "housing"),
            sub("0502", "房屋质量问题", "housing"),
            sub("0503", "违法建筑", "housing"),
        ]),
        cat("06", "消费与合同", vec![
            sub("0601", "消费维权", "market"),
            sub("0602", "合同纠纷", "justice"),
            sub("0603", "民间借贷纠纷", "justice"),
        ]),
        cat("07", "治安与安全隐患", vec![
            sub("0701", "治安问题", "police"),
            sub("0702", "安全隐患", "emergency"),
            sub("0703", "矛盾激化风险", "police"),
        ]),
        cat("08", "环境与公共服务", vec![
            sub("0801", "环境污染", "environment"),
            sub("0802", "市政设施", "housing"),
            sub("0803", "医疗卫生", "health"),
        ]),
        cat("09", "信访与其他", vec![
            sub("0901", "信访事项", "petitions"),
            sub("0999", "其他", "petitions"),
        ]),
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
    .map(|(code, name)| Window { code: (*code).into(), name: (*name).into() })
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
