//! Administrative division codes (12-digit 统计用区划代码) and levels.
//!
//! `PPCCDDTTTVVV`: province, city, county (县/市/区), township (乡/镇/街道),
//! village (村/社区). A node's code fixes its level and its parent's code:
//! zero the last non-zero group.

use std::fmt;
use std::str::FromStr;

use crate::codec::{Decode, Encode};

/// The four levels of centers, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    City,
    County,
    Township,
    Village,
}

impl Level {
    /// Chinese name of the level.
    pub fn zh(self) -> &'static str {
        match self {
            Level::City => "市",
            Level::County => "县（市、区）",
            Level::Township => "乡（镇、街道）",
            Level::Village => "村（社区）",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::County => "county",
            Level::Township => "township",
            Level::Village => "village",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DivisionError {
    #[error("division code must be 12 digits, got {0:?}")]
    Format(String),
    #[error("division code {0} has no province or city part")]
    NoCity(String),
    #[error("division code {0} skips a level (a lower group is set while a higher one is zero)")]
    SkipsLevel(String),
    #[error("division code {0} starts with {1:02}, which is not a province code of GB/T 2260 (11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71, 81, 82)")]
    UnknownProvince(String, u64),
}

/// The province-level codes of GB/T 2260 (the first two digits of every
/// division code).
pub const PROVINCES: [u64; 34] = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82];

/// A validated 12-digit division code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct DivisionCode(u64);

const CITY_UNIT: u64 = 100_000_000; // PPCC | 00 000 000
const COUNTY_UNIT: u64 = 1_000_000; // PPCCDD | 000 000
const TOWNSHIP_UNIT: u64 = 1_000; // PPCCDDTTT | 000

impl DivisionCode {
    /// Validates a numeric code.
    pub fn new(code: u64) -> Result<Self, DivisionError> {
        let s = format!("{code:012}");
        if code >= 1_000_000_000_000 {
            return Err(DivisionError::Format(s));
        }
        let pp = code / 10_000_000_000;
        let cc = (code / CITY_UNIT) % 100;
        if pp == 0 || cc == 0 {
            return Err(DivisionError::NoCity(s));
        }
        if !PROVINCES.contains(&pp) {
            return Err(DivisionError::UnknownProvince(s, pp));
        }
        let dd = (code / COUNTY_UNIT) % 100;
        let ttt = (code / TOWNSHIP_UNIT) % 1000;
        let vvv = code % 1000;
        let skips = if dd == 0 { ttt != 0 || vvv != 0 } else { ttt == 0 && vvv != 0 };
        if skips {
            return Err(DivisionError::SkipsLevel(s));
        }
        Ok(DivisionCode(code))
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    pub fn level(self) -> Level {
        if self.0.is_multiple_of(CITY_UNIT) {
            Level::City
        } else if self.0.is_multiple_of(COUNTY_UNIT) {
            Level::County
        } else if self.0.is_multiple_of(TOWNSHIP_UNIT) {
            Level::Township
        } else {
            Level::Village
        }
    }

    /// The parent center's code; `None` for a city.
    pub fn parent(self) -> Option<DivisionCode> {
        let unit = match self.level() {
            Level::City => return None,
            Level::County => CITY_UNIT,
            Level::Township => COUNTY_UNIT,
            Level::Village => TOWNSHIP_UNIT,
        };
        Some(DivisionCode(self.0 / unit * unit))
    }

    /// The chain from this code up to its city, this code first.
    pub fn lineage(self) -> Vec<DivisionCode> {
        let mut out = vec![self];
        let mut cur = self;
        while let Some(p) = cur.parent() {
            out.push(p);
            cur = p;
        }
        out
    }

    /// True when `self` is a strict ancestor of `other`.
    pub fn is_ancestor_of(self, other: DivisionCode) -> bool {
        let mut cur = other.parent();
        while let Some(p) = cur {
            if p == self {
                return true;
            }
            cur = p.parent();
        }
        false
    }

    /// True when `self` is `other` or an ancestor of it.
    pub fn contains(self, other: DivisionCode) -> bool {
        self == other || self.is_ancestor_of(other)
    }

    /// The numeric codes of this unit's subtree (itself included): one
    /// contiguous range, so a subtree is a range scan.
    pub fn subtree_range(self) -> std::ops::RangeInclusive<u64> {
        let width = match self.level() {
            Level::City => CITY_UNIT,
            Level::County => COUNTY_UNIT,
            Level::Township => TOWNSHIP_UNIT,
            Level::Village => 1,
        };
        self.0..=self.0 + width - 1
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

impl fmt::Debug for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DivisionCode({:012})", self.0)
    }
}

impl FromStr for DivisionCode {
    type Err = DivisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DivisionError::Format(s.to_string()));
        }
        let code: u64 = s.parse().map_err(|_| DivisionError::Format(s.to_string()))?;
        DivisionCode::new(code)
    }
}

impl serde::Serialize for DivisionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for DivisionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(s: &str) -> DivisionCode {
        s.parse().unwrap()
    }

    #[test]
    fn example_chain_from_domain() {
        let v = code("330102001001");
        assert_eq!(v.level(), Level::Village);
        assert_eq!(v.parent(), Some(code("330102001000")));
        assert_eq!(code("330102001000").level(), Level::Township);
        assert_eq!(code("330102001000").parent(), Some(code("330102000000")));
        assert_eq!(code("330102000000").parent(), Some(code("330100000000")));
        assert_eq!(code("330100000000").parent(), None);
        assert_eq!(v.lineage().len(), 4);
        assert!(code("330100000000").is_ancestor_of(v));
        assert!(!v.is_ancestor_of(v));
        assert!(!code("330103000000").is_ancestor_of(v));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "33010200100", "3301020010011", "33010200100a", "000000000000", "330000000000", "330100001000", "330102000001", " 33010200100"] {
            assert!(bad.parse::<DivisionCode>().is_err(), "{bad:?} accepted");
        }
    }

    fn any_code() -> impl Strategy<Value = DivisionCode> {
        (0usize..PROVINCES.len(), 1u64..100, 0u64..100, 0u64..1000, 0u64..1000).prop_map(|(p, c, d, t, v)| {
            let p = PROVINCES[p];
            let (t, v) = if d == 0 { (0, 0) } else { (t, v) };
            let v = if t == 0 { 0 } else { v };
            DivisionCode::new(p * 10_000_000_000 + c * CITY_UNIT + d * COUNTY_UNIT + t * TOWNSHIP_UNIT + v).unwrap()
        })
    }

    proptest! {
        #[test]
        fn parent_is_one_level_up_and_an_ancestor(c in any_code()) {
            if let Some(p) = c.parent() {
                prop_assert_eq!(p.level() as u8 + 1, c.level() as u8);
                prop_assert!(p.is_ancestor_of(c));
                prop_assert!(!c.is_ancestor_of(p));
            } else {
                prop_assert_eq!(c.level(), Level::City);
            }
        }

        #[test]
        fn display_parse_round_trip(c in any_code()) {
            prop_assert_eq!(c.to_string().parse::<DivisionCode>().unwrap(), c);
        }

        #[test]
        fn subtree_range_is_exactly_the_subtree(a in any_code(), b in any_code()) {
            prop_assert_eq!(a.subtree_range().contains(&b.as_u64()), a.contains(b));
            for l in b.lineage() {
                prop_assert!(l.subtree_range().contains(&b.as_u64()));
            }
        }

        #[test]
        fn ancestry_matches_lineage(a in any_code(), b in any_code()) {
            prop_assert_eq!(a.is_ancestor_of(b), a != b && b.lineage().contains(&a));
        }
    }
}
