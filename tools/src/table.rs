//! Plain-text tables that line up with Chinese text (CJK characters take
//! two columns in a terminal), and the short names of units that fit in them.

use std::collections::HashMap;

use serde_json::Value;

/// Display width of a character in a terminal: 2 for East Asian wide and
/// full-width characters (CJK ideographs, kana, hangul, full-width
/// punctuation and forms, most emoji), 0 for combining marks and
/// zero-width characters, 1 otherwise.
fn char_width(c: char) -> usize {
    let cp = c as u32;
    let zero = matches!(cp,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064
        | 0x20D0..=0x20FF | 0xFE00..=0xFE0F | 0xFE20..=0xFE2F | 0xFEFF | 0xE0100..=0xE01EF);
    if zero || c.is_control() {
        return 0;
    }
    let wide = matches!(cp,
        0x1100..=0x115F | 0x231A..=0x231B | 0x2329..=0x232A | 0x23E9..=0x23EC | 0x23F0 | 0x23F3 | 0x25FD..=0x25FE
        | 0x2614..=0x2615 | 0x2648..=0x2653 | 0x267F | 0x2693 | 0x26A1 | 0x26AA..=0x26AB | 0x26BD..=0x26BE
        | 0x26C4..=0x26C5 | 0x26CE | 0x26D4 | 0x26EA | 0x26F2..=0x26F5 | 0x26FA | 0x26FD | 0x2705 | 0x270A..=0x270B
        | 0x2728 | 0x274C | 0x274E | 0x2753..=0x2755 | 0x2757 | 0x2795..=0x2797 | 0x27B0 | 0x27BF | 0x2B1B..=0x2B1C
        | 0x2B50 | 0x2B55 | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xA000..=0xA4CF
        | 0xA960..=0xA97F | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE10..=0xFE19 | 0xFE30..=0xFE6F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x16FE0..=0x16FE4 | 0x17000..=0x18AFF | 0x1B000..=0x1B2FF | 0x1F004 | 0x1F0CF | 0x1F18E
        | 0x1F191..=0x1F19A | 0x1F200..=0x1F251 | 0x1F300..=0x1F64F | 0x1F680..=0x1F6FF | 0x1F7E0..=0x1F7EB
        | 0x1F90C..=0x1F9FF | 0x1FA70..=0x1FAFF | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

/// Display width of `s` in a terminal (the widest line when it has several).
pub fn width(s: &str) -> usize {
    s.split('\n').map(|l| l.chars().map(char_width).sum()).max().unwrap_or(0)
}

/// Cuts `s` to at most `max` columns, marking the cut with '…'.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// Breaks `s` into lines of at most `max` columns (newlines in `s` are
/// kept). Chinese text breaks between any two characters; other text at a
/// space when there is one on the line, else where the line is full.
/// Nothing is dropped except the spaces a line was broken at.
pub fn wrap(s: &str, max: usize) -> String {
    let max = max.max(2);
    let mut lines: Vec<String> = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        let mut w = 0;
        for c in para.chars() {
            let cw = char_width(c);
            if w + cw > max && !line.is_empty() {
                // Break at the last space if the tail after it is short
                // enough to move to the next line; else here.
                let cut = line.rfind(' ').filter(|&i| i > 0 && !line[i + 1..].chars().any(|x| char_width(x) == 2));
                match cut {
                    Some(i) => {
                        let tail = line[i + 1..].to_string();
                        line.truncate(i);
                        lines.push(std::mem::take(&mut line));
                        line = tail;
                    }
                    None => lines.push(std::mem::take(&mut line)),
                }
                w = width(&line);
                if c == ' ' && line.is_empty() {
                    continue;
                }
            }
            line.push(c);
            w += cw;
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Renders rows under a header, columns padded to the widest cell. A cell
/// may hold several lines (see [`wrap`]): its row takes as many lines, the
/// other cells on the first of them.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate().take(cols) {
            s.push_str(cell);
            if i + 1 < cols {
                s.push_str(&" ".repeat(widths[i].saturating_sub(width(cell)) + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header);
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule.iter().map(String::as_str).collect::<Vec<_>>()));
    out.push('\n');
    for row in rows {
        let split: Vec<Vec<&str>> = row.iter().take(cols).map(|c| c.split('\n').collect()).collect();
        let height = split.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let cells: Vec<&str> = split.iter().map(|c| c.get(k).copied().unwrap_or("")).collect();
            out.push_str(&line(&cells));
            out.push('\n');
        }
    }
    out
}

/// Suffixes of official center names, longest first: 成都市锦江区春熙路街道社会治安综合治理中心 → 成都市锦江区春熙路街道.
pub const UNIT_SUFFIXES: &[&str] = &["社会治安综合治理工作站", "社会治安综合治理中心", "综治工作站", "综治中心"];

/// `name` without its 社会治安综合治理中心 (…工作站, 综治中心, 综治工作站) suffix.
pub fn strip_unit_suffix(name: &str) -> &str {
    let name = name.trim();
    UNIT_SUFFIXES.iter().find_map(|s| name.strip_suffix(s)).filter(|n| !n.is_empty()).unwrap_or(name)
}

/// A unit's short name: the part of its name below its ancestors' names
/// (closest first; the first one that is a prefix is cut off), without the
/// center suffix; the full name when nothing is left.
/// 成都市锦江区春熙路街道红星路社区社会治安综合治理工作站 under 成都市锦江区春熙路街道社会治安综合治理中心 → 红星路社区.
pub fn short_unit_name(name: &str, ancestors: &[&str]) -> String {
    let base = strip_unit_suffix(name);
    for a in ancestors {
        let prefix = strip_unit_suffix(a);
        if prefix.is_empty() {
            continue;
        }
        if let Some(rest) = base.strip_prefix(prefix)
            && !rest.trim().is_empty()
        {
            return rest.trim().to_string();
        }
    }
    if base.is_empty() { name.trim().to_string() } else { base.to_string() }
}

/// The names of the units a node knows (from `GET /api/certs`), by division code.
#[derive(Debug, Default)]
pub struct UnitNames {
    full: HashMap<String, String>,
}

impl UnitNames {
    /// From the answer of `GET /api/certs` (a revoked certificate's name
    /// only when its division has no other).
    pub fn from_certs(v: &Value) -> UnitNames {
        let mut full: HashMap<String, (bool, String)> = HashMap::new();
        for c in v["certs"].as_array().into_iter().flatten() {
            let (Some(division), Some(name)) = (c["division"].as_str(), c["name"].as_str()) else { continue };
            let revoked = !c["revoked"].is_null();
            match full.get(division) {
                Some((was_revoked, _)) if !*was_revoked || revoked => {}
                _ => {
                    full.insert(division.to_string(), (revoked, name.to_string()));
                }
            }
        }
        UnitNames { full: full.into_iter().map(|(d, (_, n))| (d, n)).collect() }
    }

    /// The official name of `division`, when known.
    pub fn full(&self, division: &str) -> Option<&str> {
        self.full.get(division).map(String::as_str)
    }

    /// The short name of `division` (see [`short_unit_name`]), when known.
    pub fn short(&self, division: &str) -> Option<String> {
        let name = self.full(division)?;
        let ancestors: Vec<&str> = match division.parse::<zongzhi_protocol::DivisionCode>() {
            Ok(d) => d.lineage().iter().skip(1).filter_map(|a| self.full(&a.to_string())).collect(),
            Err(_) => Vec::new(),
        };
        Some(short_unit_name(name, &ancestors))
    }

    /// The short name of `division`, or `fallback` (e.g. the name the answer
    /// carried, or the code itself) when the unit is unknown.
    pub fn short_or(&self, division: &str, fallback: &str) -> String {
        match self.short(division) {
            Some(s) => s,
            None if !fallback.is_empty() => {
                let parent = division.parse::<zongzhi_protocol::DivisionCode>().ok().and_then(|d| d.parent()).and_then(|p| self.full(&p.to_string()));
                short_unit_name(fallback, &parent.into_iter().collect::<Vec<_>>())
            }
            None => division.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_columns_line_up() {
        let t = render(&["编号", "状态"], &[vec!["A-1".into(), "办理中".into()], vec!["B-22".into(), "x".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        // "状态" starts at the same column in every line.
        let col = |l: &str, needle: &str| width(&l[..l.find(needle).unwrap()]);
        assert_eq!(col(lines[0], "状态"), col(lines[2], "办理中"));
        assert_eq!(col(lines[0], "状态"), col(lines[3], "x"));
        assert_eq!(truncate("邻居装修噪音扰民", 9), "邻居装修…");
    }

    #[test]
    fn widths_of_wide_and_zero_width_characters() {
        assert_eq!(width("春熙路街道"), 10);
        assert_eq!(width("（红星路）"), 10, "full-width brackets");
        assert_eq!(width("A-1"), 3);
        assert_eq!(width("e\u{301}"), 1, "a combining accent takes no column");
        assert_eq!(width("✓"), 1);
        assert_eq!(width("两行\n三个字"), 6, "the widest line");
    }

    #[test]
    fn wrapped_cells_keep_every_character_and_line_up() {
        let reply = "经街道调解，双方按1998年确权图划定边界，并签订调解协议书，约定各自退让0.3米。";
        let w = wrap(reply, 20);
        assert!(w.lines().all(|l| width(l) <= 20), "{w}");
        assert_eq!(w.replace('\n', ""), reply, "nothing lost");
        let latin = wrap("the quick brown fox jumps over the lazy dog", 12);
        assert!(latin.lines().all(|l| width(l) <= 12 && !l.starts_with(' ')), "{latin}");
        assert_eq!(latin.replace('\n', " "), "the quick brown fox jumps over the lazy dog");
        let t = render(&["时间", "内容", "结果"], &[vec!["10-01 09:00".into(), w.clone(), "有效".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2 + w.lines().count(), "{t}");
        let col = |l: &str, needle: &str| width(&l[..l.find(needle).unwrap()]);
        assert_eq!(col(lines[0], "结果"), col(lines[2], "有效"), "{t}");
        // The continuation lines start in the content column.
        let second = w.lines().nth(1).unwrap();
        assert_eq!(col(lines[3], second), col(lines[0], "内容"), "{t}");
    }

    #[test]
    fn short_names_of_real_units() {
        let city = "成都市社会治安综合治理中心";
        let county = "成都市锦江区社会治安综合治理中心";
        let town = "成都市锦江区春熙路街道社会治安综合治理中心";
        let village = "成都市锦江区春熙路街道红星路社区社会治安综合治理工作站";
        assert_eq!(short_unit_name(city, &[]), "成都市");
        assert_eq!(short_unit_name(county, &[city]), "锦江区");
        assert_eq!(short_unit_name(town, &[county, city]), "春熙路街道");
        assert_eq!(short_unit_name(village, &[town, county, city]), "红星路社区");
        assert_eq!(short_unit_name("春熙路街道综治中心", &[county]), "春熙路街道");
        assert_eq!(short_unit_name("红星路社区综治工作站", &[town]), "红星路社区");
        // A name not below its parent's keeps what it has; nothing left → the full name.
        assert_eq!(short_unit_name("示例社区1工作站", &["示例街道社会治安综合治理中心"]), "示例社区1工作站");
        assert_eq!(short_unit_name("社会治安综合治理中心", &[]), "社会治安综合治理中心");
        assert_eq!(short_unit_name(town, &[town, county]), "春熙路街道", "an ancestor that is all of the name is skipped");
        // The two real names that truncated to the same text no longer look alike.
        assert_eq!(truncate(town, 16), truncate(village, 16));
        assert_ne!(short_unit_name(town, &[county]), short_unit_name(village, &[town]));
    }

    #[test]
    fn unit_names_from_certificates() {
        let v = serde_json::json!({"certs": [
            {"division": "510100000000", "name": "成都市社会治安综合治理中心", "revoked": null},
            {"division": "510104000000", "name": "成都市锦江区社会治安综合治理中心", "revoked": null},
            {"division": "510104020000", "name": "成都市锦江区春熙路街道社会治安综合治理中心", "revoked": null},
            {"division": "510104020001", "name": "旧名称", "revoked": {"cutoff_seq": 3}},
            {"division": "510104020001", "name": "成都市锦江区春熙路街道红星路社区社会治安综合治理工作站", "revoked": null},
        ]});
        let n = UnitNames::from_certs(&v);
        assert_eq!(n.short("510104020000").as_deref(), Some("春熙路街道"));
        assert_eq!(n.short("510104020001").as_deref(), Some("红星路社区"));
        assert_eq!(n.full("510104020001"), Some("成都市锦江区春熙路街道红星路社区社会治安综合治理工作站"));
        assert_eq!(n.short_or("510104020002", ""), "510104020002");
        assert_eq!(n.short_or("510104020002", "成都市锦江区春熙路街道东大街社区综治工作站"), "东大街社区");
    }
}
