//! Automatic supervision (督办), decided purely from a case's summary facts
//! and the policy: who supervises, which grade an overdue clock has earned,
//! and when a case is a "problem case" raised one level (提级督办).

use crate::case::SuperviseGrade;
use crate::division::DivisionCode;
use crate::policy::Policy;

/// Returned this many times, or passed between this many units, a case is
/// a problem case (DOMAIN.md "督办").
pub const PROBLEM_RETURNS: u32 = 3;
pub const PROBLEM_UNITS: usize = 3;

pub fn is_problem_case(returns: u32, units_handled: usize) -> bool {
    returns >= PROBLEM_RETURNS || units_handled >= PROBLEM_UNITS
}

/// The center that supervises an open case: the owner's parent, or its
/// grandparent for a problem case (the parent when there is none). A city's
/// own cases have no supervisor above it.
pub fn supervisor(owner: DivisionCode, returns: u32, units_handled: usize) -> Option<DivisionCode> {
    let parent = owner.parent()?;
    if is_problem_case(returns, units_handled) {
        return Some(parent.parent().unwrap_or(parent));
    }
    Some(parent)
}

/// The highest grade a clock `overdue_ms` past its due time has earned.
pub fn grade_for(policy: &Policy, overdue_ms: u64) -> Option<SuperviseGrade> {
    let minutes = overdue_ms / 60_000;
    let steps = policy.supervision.steps();
    SuperviseGrade::ALL.iter().zip(steps).filter(|(_, after)| minutes >= *after as u64).map(|(g, _)| *g).next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_and_supervisors() {
        let p = Policy::default_policy();
        let h = 3_600_000;
        assert_eq!(grade_for(&p, 1), Some(SuperviseGrade::Normal));
        assert_eq!(grade_for(&p, 23 * h), Some(SuperviseGrade::Normal));
        assert_eq!(grade_for(&p, 24 * h), Some(SuperviseGrade::Yellow));
        assert_eq!(grade_for(&p, 80 * h), Some(SuperviseGrade::Red));
        assert_eq!(grade_for(&p, 200 * h), Some(SuperviseGrade::Interview));
        let village: DivisionCode = "330106010001".parse().unwrap();
        assert_eq!(supervisor(village, 0, 1).unwrap().to_string(), "330106010000");
        assert_eq!(supervisor(village, 3, 1).unwrap().to_string(), "330106000000", "returned three times: raised a level");
        assert_eq!(supervisor(village, 0, 3).unwrap().to_string(), "330106000000", "passed between three units");
        let county: DivisionCode = "330106000000".parse().unwrap();
        assert_eq!(supervisor(county, 5, 1).unwrap().to_string(), "330100000000", "no grandparent: the parent");
        assert_eq!(supervisor("330100000000".parse().unwrap(), 0, 1), None);
    }
}
