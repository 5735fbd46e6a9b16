//! The one rule for what travels on a link, record by record. Every sender
//! path (the feed batches, the urgent-first batch, answers to `Want`) and
//! the simulator ask [`sends`]; none decides scope on its own.
//!
//! Up, a child sends what was authored in its subtree. Down, a parent sends
//! certificates, revocations and policies everywhere; reports never (they
//! go up to the centers that check them); a case's events once the case's
//! ownership or a helper role has entered the child's subtree, except those
//! the child's subtree authored itself (they came from there), unless their
//! author's key was revoked (the center that replaced the key needs its
//! division's history).

use crate::case::{Action, RouteTarget};
use crate::division::DivisionCode;

use super::Direction;

/// What kind of record is being considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// Certificates, revocations and city policies.
    Trust,
    /// A signed monthly report.
    Report,
    /// A case event; `units` are the units the case has been owned by or
    /// helped in as the sender holds it (empty when the sender does not
    /// hold the case).
    CaseEvent { units: &'a [DivisionCode] },
    /// A record of a kind the sender cannot read (a newer format): it goes
    /// up like everything its subtree authored, and never down.
    Unknown,
}

/// The facts about one record that decide whether it is sent.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The division the author is certified for (`None`: unknown author).
    pub author: Option<DivisionCode>,
    /// The author's key has been revoked.
    pub author_revoked: bool,
    pub kind: Kind<'a>,
}

/// Whether a record goes over a link. `me` is the sending node's division;
/// `peer` the receiving node's. `dir` is the flow as the receiver sees it:
/// `Up` when the sender is the child.
pub fn sends(dir: Direction, me: DivisionCode, peer: DivisionCode, f: &Facts<'_>) -> bool {
    match (dir, f.kind) {
        (Direction::Up, _) => f.author.is_some_and(|a| me.contains(a)),
        (Direction::Down, Kind::Trust) => true,
        (Direction::Down, Kind::Report | Kind::Unknown) => false,
        (Direction::Down, Kind::CaseEvent { units }) => !came_from(peer, f) && case_in_subtree(units, peer),
    }
}

/// Down: the record was authored in `child`'s subtree by a key still valid,
/// so it came from there and does not go back (whatever the case's units;
/// a sender may ask this before it looks the case up).
pub fn came_from(child: DivisionCode, f: &Facts<'_>) -> bool {
    f.author.is_some_and(|a| child.contains(a)) && !f.author_revoked
}

/// Whether a case (by the units it has been owned by or helped in) has
/// entered `child`'s subtree.
pub fn case_in_subtree(units: &[DivisionCode], child: DivisionCode) -> bool {
    units.iter().any(|u| child.contains(*u))
}

/// Whether this action brings its case into `child`'s subtree, so that the
/// case's whole history goes down before it.
pub fn enters_subtree(action: &Action, child: DivisionCode) -> bool {
    match action {
        Action::Dispatch { to, .. } => child.contains(*to),
        Action::Reroute { target: RouteTarget::Unit(u), .. } => child.contains(*u),
        Action::AddHelpers { helpers } => helpers.iter().any(|h| matches!(h, RouteTarget::Unit(u) if child.contains(*u))),
        Action::RequestAssistance { helpers, .. } => helpers.iter().any(|h| matches!(&h.helper, RouteTarget::Unit(u) if child.contains(*u))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DivisionCode {
        s.parse().unwrap()
    }

    #[test]
    fn the_rule_per_direction_and_kind() {
        let (county, town, v1, v2) = (d("330106000000"), d("330106010000"), d("330106010001"), d("330106010002"));
        let facts = |author: Option<DivisionCode>, revoked: bool, kind| Facts { author, author_revoked: revoked, kind };
        // Up: authored in the sender's subtree, whatever the kind.
        assert!(sends(Direction::Up, town, county, &facts(Some(v1), false, Kind::Report)));
        assert!(sends(Direction::Up, town, county, &facts(Some(town), false, Kind::CaseEvent { units: &[] })));
        assert!(!sends(Direction::Up, town, county, &facts(Some(county), false, Kind::Trust)));
        assert!(!sends(Direction::Up, town, county, &facts(None, false, Kind::Trust)));
        // Down: trust everywhere, reports never.
        assert!(sends(Direction::Down, town, v1, &facts(Some(county), false, Kind::Trust)));
        assert!(!sends(Direction::Down, county, town, &facts(Some(county), false, Kind::Report)));
        // Down: a case in the child's subtree, not what the child authored.
        let units = [county, v1];
        assert!(sends(Direction::Down, town, v1, &facts(Some(county), false, Kind::CaseEvent { units: &units })));
        assert!(!sends(Direction::Down, town, v2, &facts(Some(county), false, Kind::CaseEvent { units: &units })));
        assert!(!sends(Direction::Down, town, v1, &facts(Some(v1), false, Kind::CaseEvent { units: &units })));
        assert!(sends(Direction::Down, town, v1, &facts(Some(v1), true, Kind::CaseEvent { units: &units })));
        assert!(!sends(Direction::Down, town, v1, &facts(Some(county), false, Kind::CaseEvent { units: &[] })));
        let dispatch = Action::Dispatch { to: v1, requirements: String::new(), due_ms: None };
        assert!(enters_subtree(&dispatch, town) && enters_subtree(&dispatch, v1) && !enters_subtree(&dispatch, v2));
        assert!(case_in_subtree(&[v2, v1], v1) && !case_in_subtree(&[v2], v1));
    }
}
