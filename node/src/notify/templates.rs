//! The message templates, their variables and rendering.
//!
//! A template is text with variables in braces (`{number}`) and optional
//! parts in double brackets: `[[，查询码{query_code}]]` is left out
//! whole when a variable in it has no value (no query code was given),
//! so a message never reads "查询码。". Which variables a template may
//! use depends on the message ([`Kind::variables`]); any other is refused
//! when the node starts.

use std::fmt;

/// Which message: one per kind of step a citizen is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 受理回执: the case was filed.
    Receipt,
    /// A public progress note.
    Progress,
    /// 办结: the public reply.
    Resolution,
    /// After 反馈: the invitation to rate (评价).
    RatingInvitation,
    /// 不予受理: where to go instead, and why (format 4).
    Declined,
    /// 撤回: the withdrawal, as confirmed (format 4).
    Withdrawn,
    /// 中止: why the case waits, until when (format 4).
    Suspended,
    /// 恢复: the case runs again (format 4).
    Resumed,
    /// A status callback to the system that filed the case
    /// (`crate::integration`): a JSON body, no template.
    Callback,
}

impl Kind {
    pub const ALL: [Kind; 8] = [Kind::Receipt, Kind::Progress, Kind::Resolution, Kind::RatingInvitation, Kind::Declined, Kind::Withdrawn, Kind::Suspended, Kind::Resumed];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Receipt => "receipt",
            Kind::Progress => "progress",
            Kind::Resolution => "resolution",
            Kind::RatingInvitation => "rating_invitation",
            Kind::Declined => "declined",
            Kind::Withdrawn => "withdrawn",
            Kind::Suspended => "suspended",
            Kind::Resumed => "resumed",
            Kind::Callback => "callback",
        }
    }

    /// The variables that have a value in this message.
    pub fn variables(self) -> &'static [Var] {
        use Var::*;
        match self {
            Kind::Receipt => &[Number, Title, Unit, PublicUrl, QueryCode],
            Kind::Progress => &[Number, Title, Unit, PublicUrl, Note],
            Kind::Resolution => &[Number, Title, Unit, PublicUrl, Reply],
            Kind::RatingInvitation => &[Number, Title, Unit, PublicUrl, RatingToken, RatingLink],
            Kind::Declined => &[Number, Title, Unit, PublicUrl, Reason, Referral, Guidance],
            Kind::Withdrawn => &[Number, Title, Unit, PublicUrl, Note],
            Kind::Suspended => &[Number, Title, Unit, PublicUrl, Reason, Date],
            Kind::Resumed => &[Number, Title, Unit, PublicUrl, Date],
            Kind::Callback => &[],
        }
    }

    /// The default text (zh-CN; "【综治中心】" stands for the SMS signature
    /// the gateway has registered).
    pub fn default_template(self) -> &'static str {
        match self {
            Kind::Receipt => "【综治中心】您反映的“{title}”已由{unit}受理，编号{number}[[，查询码{query_code}]]。[[查询进度：{public_url}]]",
            Kind::Progress => "【综治中心】您反映的事项（编号{number}）有新进展：{note}[[ 查询进度：{public_url}]]",
            Kind::Resolution => "【综治中心】您反映的事项（编号{number}）已由{unit}办结：{reply}",
            Kind::RatingInvitation => "【综治中心】您反映的事项（编号{number}）已办结，请对办理结果作出评价[[：{rating_link}]]。感谢您的支持！",
            Kind::Declined => "【综治中心】您反映的“{title}”（编号{number}）不属于{unit}受理范围，不予受理：{reason}。请到{referral}：{guidance}",
            Kind::Withdrawn => "【综治中心】您反映的事项（编号{number}）已按您的意愿撤回（{note}）。如有需要，欢迎再次反映。",
            Kind::Suspended => "【综治中心】您反映的事项（编号{number}）因{reason}中止办理，预计{date}恢复，中止期间不计入办理期限。[[查询进度：{public_url}]]",
            Kind::Resumed => "【综治中心】您反映的事项（编号{number}）已恢复办理[[，办理期限至{date}]]。[[查询进度：{public_url}]]",
            Kind::Callback => "",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// The case number (一案一码).
    Number,
    /// The case's title.
    Title,
    /// The progress note.
    Note,
    /// The resolution's public reply.
    Reply,
    /// The query code given at filing (from the ledger's secrets).
    QueryCode,
    /// The citizen's rating token (from the ledger's secrets).
    RatingToken,
    /// The rating page: the `rating_link` secret, else the public page
    /// with the case number and the token,
    /// `<public_url>#n=<number>&r=<rating_token>` (the public page's
    /// rating form).
    RatingLink,
    /// The public progress page (`public_url` in the config).
    PublicUrl,
    /// The center that took the step (its certificate's name).
    Unit,
    /// 不予受理: where the citizen is referred (the policy's name).
    Referral,
    /// 不予受理: what to do there (the policy's guidance).
    Guidance,
    /// 不予受理: the reason given; 中止: the policy's name of its reason.
    Reason,
    /// 中止: the expected day of 恢复; 恢复: the new due day.
    Date,
}

impl Var {
    pub const ALL: [Var; 13] =
        [Var::Number, Var::Title, Var::Note, Var::Reply, Var::QueryCode, Var::RatingLink, Var::RatingToken, Var::PublicUrl, Var::Unit, Var::Referral, Var::Guidance, Var::Reason, Var::Date];

    pub fn name(self) -> &'static str {
        match self {
            Var::Number => "number",
            Var::Title => "title",
            Var::Note => "note",
            Var::Reply => "reply",
            Var::QueryCode => "query_code",
            Var::RatingToken => "rating_token",
            Var::RatingLink => "rating_link",
            Var::PublicUrl => "public_url",
            Var::Unit => "unit",
            Var::Referral => "referral",
            Var::Guidance => "guidance",
            Var::Reason => "reason",
            Var::Date => "date",
        }
    }

    fn parse(s: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
    /// Left out when one of its variables is empty.
    Optional(Vec<Part>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The longest template accepted (characters).
const MAX_TEMPLATE_CHARS: usize = 1000;

fn all_names() -> String {
    Var::ALL.iter().map(|v| format!("{{{}}}", v.name())).collect::<Vec<_>>().join(" ")
}

impl Template {
    /// Parses `text` as the template of `kind`: every variable must be
    /// known and have a value in that message; braces and double brackets
    /// must close.
    pub fn parse(kind: Kind, text: &str) -> Result<Template, String> {
        if text.trim().is_empty() {
            return Err(format!("the {kind} template is empty"));
        }
        if text.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(format!("the {kind} template is longer than {MAX_TEMPLATE_CHARS} characters"));
        }
        let mut top: Vec<Part> = Vec::new();
        let mut optional: Option<Vec<Part>> = None;
        let mut text_buf = String::new();
        let mut rest = text;
        let flush = |buf: &mut String, into: &mut Vec<Part>| {
            if !buf.is_empty() {
                into.push(Part::Text(std::mem::take(buf)));
            }
        };
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("[[") {
                if optional.is_some() {
                    return Err(format!("the {kind} template opens \"[[\" inside an optional part (they do not nest)"));
                }
                flush(&mut text_buf, &mut top);
                optional = Some(Vec::new());
                rest = after;
            } else if let Some(after) = rest.strip_prefix("]]") {
                let Some(mut parts) = optional.take() else {
                    return Err(format!("the {kind} template closes \"]]\" without an opening \"[[\""));
                };
                flush(&mut text_buf, &mut parts);
                top.push(Part::Optional(parts));
                rest = after;
            } else if c == '{' {
                let Some(end) = rest.find('}') else {
                    return Err(format!("the {kind} template has a \"{{\" without its \"}}\""));
                };
                let name = &rest[1..end];
                let var = Var::parse(name).ok_or_else(|| format!("the {kind} template uses {{{name}}}, which is not a variable; the variables are {}", all_names()))?;
                if !kind.variables().contains(&var) {
                    let here = kind.variables().iter().map(|v| format!("{{{}}}", v.name())).collect::<Vec<_>>().join(" ");
                    return Err(format!("the {kind} template uses {{{name}}}, which has no value in this message; it may use {here}"));
                }
                flush(&mut text_buf, optional.as_mut().unwrap_or(&mut top));
                optional.as_mut().unwrap_or(&mut top).push(Part::Var(var));
                rest = &rest[end + 1..];
            } else if c == '}' {
                return Err(format!("the {kind} template has a \"}}\" without its \"{{\""));
            } else {
                text_buf.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if optional.is_some() {
            return Err(format!("the {kind} template opens \"[[\" without closing it with \"]]\""));
        }
        flush(&mut text_buf, &mut top);
        Ok(Template { parts: top })
    }

    /// The text with `value` filled in (an unknown value is empty); an
    /// optional part with an empty variable is left out.
    pub fn render(&self, value: impl Fn(Var) -> String) -> String {
        fn put(parts: &[Part], value: &dyn Fn(Var) -> String, out: &mut String) {
            for p in parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Var(v) => out.push_str(&value(*v)),
                    Part::Optional(inner) => {
                        if inner.iter().all(|p| !matches!(p, Part::Var(v) if value(*v).is_empty())) {
                            put(inner, value, out);
                        }
                    }
                }
            }
        }
        let mut out = String::new();
        put(&self.parts, &value, &mut out);
        out.trim().to_string()
    }
}

/// The templates in use, one per [`Kind`]: the defaults with the
/// configured ones over them.
#[derive(Debug, Clone)]
pub struct Templates {
    by_kind: Vec<Template>,
}

impl Templates {
    /// `configured` gives a kind's text from the config, if any.
    pub fn new(configured: impl Fn(Kind) -> Option<String>) -> Result<Templates, String> {
        let one = |k: Kind| Template::parse(k, configured(k).as_deref().unwrap_or(k.default_template()));
        Ok(Templates { by_kind: Kind::ALL.iter().map(|k| one(*k)).collect::<Result<_, _>>()? })
    }

    pub fn get(&self, kind: Kind) -> &Template {
        &self.by_kind[Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: Var) -> String {
        match v {
            Var::Number => "330106010001-2026-000007".into(),
            Var::Title => "楼道堆物".into(),
            Var::Unit => "示例社区工作站".into(),
            Var::PublicUrl => "https://city.example/public/".into(),
            Var::Note => "已约谈物业。".into(),
            _ => String::new(),
        }
    }

    #[test]
    fn defaults_parse_and_optional_parts_go_with_an_empty_variable() {
        let t = Templates::new(|_| None).unwrap();
        assert_eq!(t.get(Kind::Receipt).render(values), "【综治中心】您反映的“楼道堆物”已由示例社区工作站受理，编号330106010001-2026-000007。查询进度：https://city.example/public/");
        let with_code = t.get(Kind::Receipt).render(|v| if v == Var::QueryCode { "K7Q2".into() } else { values(v) });
        assert!(with_code.contains("编号330106010001-2026-000007，查询码K7Q2。查询进度："), "{with_code}");
        let no_url = t.get(Kind::Progress).render(|v| if v == Var::PublicUrl { String::new() } else { values(v) });
        assert_eq!(no_url, "【综治中心】您反映的事项（编号330106010001-2026-000007）有新进展：已约谈物业。");
        let rating = t.get(Kind::RatingInvitation).render(values);
        assert_eq!(rating, "【综治中心】您反映的事项（编号330106010001-2026-000007）已办结，请对办理结果作出评价。感谢您的支持！");
    }

    #[test]
    fn configured_templates_replace_defaults_and_bad_ones_are_refused() {
        let t = Templates::new(|k| (k == Kind::Resolution).then(|| "{number}办结：{reply}".to_string())).unwrap();
        assert_eq!(t.get(Kind::Resolution).render(|v| if v == Var::Reply { "已清理".into() } else { values(v) }), "330106010001-2026-000007办结：已清理");
        assert_eq!(t.get(Kind::Receipt), &Template::parse(Kind::Receipt, Kind::Receipt.default_template()).unwrap());
        for (kind, text, says) in [
            (Kind::Receipt, "编号{numbr}", "{numbr}, which is not a variable"),
            (Kind::Receipt, "回复{reply}", "{reply}, which has no value in this message"),
            (Kind::Progress, "进展{note", "without its \"}\""),
            (Kind::Progress, "进展note}", "without its \"{\""),
            (Kind::Progress, "[[进展{note}", "without closing it"),
            (Kind::Progress, "进展{note}]]", "without an opening"),
            (Kind::Progress, "[[a[[b]]]]", "do not nest"),
            (Kind::Progress, "  ", "empty"),
        ] {
            let e = Template::parse(kind, text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let e = Templates::new(|k| (k == Kind::RatingInvitation).then(|| "{rating_lnk}".to_string())).unwrap_err();
        assert!(e.starts_with("the rating_invitation template uses {rating_lnk}") && e.contains("{rating_link}"), "{e}");
    }
}
