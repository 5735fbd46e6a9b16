//! What an attachment may be called and how it is served. An attachment is
//! evidence a citizen or an operator brought: its bytes are whatever they
//! are, so a browser must never run them as a page of this node. Names are
//! cleaned before they are signed into the case; downloads always go to a
//! file (`Content-Disposition: attachment`), with a type from a short list
//! of harmless ones (else `application/octet-stream`) and `nosniff`.

/// Most characters in an attachment's name.
pub const MAX_NAME_CHARS: usize = 200;

/// Types served as they were given; anything else (HTML, SVG, scripts,
/// XML …) is served as `application/octet-stream`.
const SERVED_AS_GIVEN: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "audio/mpeg",
    "audio/mp4",
    "audio/amr",
    "video/mp4",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
];

/// The name an attachment is stored under: no control characters (CR, LF,
/// tab …), no path separators, quotes or characters Windows refuses in a
/// file name, no leading dots or blanks; at most [`MAX_NAME_CHARS`].
/// `None` when nothing is left.
pub fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name.chars().map(|c| if c.is_control() || matches!(c, '/' | '\\' | '"' | '\'' | ':' | '*' | '?' | '<' | '>' | '|' | '`') { '_' } else { c }).collect();
    let trimmed = cleaned.trim().trim_start_matches(['.', '_', ' ']).trim_end_matches([' ', '.']);
    let short: String = trimmed.chars().take(MAX_NAME_CHARS).collect();
    (!short.trim().is_empty()).then_some(short)
}

/// The `Content-Type` a download is served with (the type's parameters
/// are dropped; text is UTF-8).
pub fn served_type(given: &str) -> &'static str {
    let essence = given.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match SERVED_AS_GIVEN.iter().find(|t| **t == essence) {
        Some(&"text/plain") => "text/plain; charset=utf-8",
        Some(t) => t,
        None => "application/octet-stream",
    }
}

/// `Content-Disposition: attachment` with the name as a quoted ASCII
/// fallback and as UTF-8 (RFC 6266 / RFC 5987), safe for any stored name
/// (older records may hold names stored before they were cleaned).
pub fn content_disposition(name: &str) -> String {
    let name = clean_name(name).unwrap_or_else(|| "attachment".into());
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_what_could_break_a_header_or_a_path() {
        assert_eq!(clean_name("现场照片.jpg").as_deref(), Some("现场照片.jpg"));
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("etc_passwd"));
        assert_eq!(clean_name("a\r\nSet-Cookie: x=1\".html").as_deref(), Some("a__Set-Cookie_ x=1_.html"));
        assert_eq!(clean_name(" .. "), None);
        assert_eq!(clean_name(&"长".repeat(300)).map(|n| n.chars().count()), Some(MAX_NAME_CHARS));
    }

    #[test]
    fn only_harmless_types_are_served_as_given() {
        assert_eq!(served_type("image/png"), "image/png");
        assert_eq!(served_type("IMAGE/JPEG; x=1"), "image/jpeg");
        assert_eq!(served_type("text/plain"), "text/plain; charset=utf-8");
        for bad in ["text/html", "image/svg+xml", "application/javascript", "text/xml", ""] {
            assert_eq!(served_type(bad), "application/octet-stream", "{bad}");
        }
    }

    #[test]
    fn the_disposition_is_one_safe_header_line() {
        let d = content_disposition("报告\r\n\"x\".pdf");
        assert!(d.starts_with("attachment; filename=\""), "{d}");
        assert!(!d.contains('\r') && !d.contains('\n') && d.matches('"').count() == 2, "{d}");
        assert!(d.ends_with("filename*=UTF-8''%E6%8A%A5%E5%91%8A___x_.pdf"), "{d}");
    }
}
