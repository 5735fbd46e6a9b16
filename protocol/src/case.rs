//! Case events: what a signed `CaseEvent` record says.
//!
//! Personal data is never in an event: the filing event signs the BLAKE3
//! hash of a separate [`Contact`] blob, which can be masked, withheld or
//! erased without breaking any signature. Attachments are blobs too.

use crate::codec::{self, CodecError, Decode, Encode};
use crate::division::DivisionCode;
pub use crate::id::{BlobHash, RecordId};

/// Generates a C-like enum with stable wire codes, JSON names and Chinese labels.
macro_rules! labelled_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $zh:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
        pub enum $name { $($variant,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Stable machine name used in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// Chinese label as used by the centers.
            pub fn zh(self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    let allowed: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    serde::de::Error::custom(format!("unknown {} {:?}; expected one of {}", stringify!($name), s, allowed.join(", ")))
                })
            }
        }
    };
}

labelled_enum!(
    /// How the case reached the center.
    Channel {
        OnSite = "on_site", "现场";
        Phone = "phone", "电话";
        Online = "online", "网络";
    }
);

labelled_enum!(
    /// 咨询/求助/投诉/举报/建议/表扬.
    RequestType {
        Inquiry = "inquiry", "咨询";
        Help = "help", "求助";
        Complaint = "complaint", "投诉";
        Report = "report", "举报";
        Suggestion = "suggestion", "建议";
        Praise = "praise", "表扬";
    }
);

labelled_enum!(
    /// Urgent: violent conflict, safety hazard, signs of a mass incident.
    Urgency {
        Normal = "normal", "一般";
        Urgent = "urgent", "紧急";
    }
);

labelled_enum!(
    Complexity {
        General = "general", "一般";
        Complex = "complex", "复杂";
    }
);

labelled_enum!(
    /// Supervision grades; 约谈 is the last step.
    SuperviseGrade {
        Normal = "normal", "普通";
        Yellow = "yellow", "黄牌";
        Red = "red", "红牌";
        Interview = "interview", "约谈";
    }
);

labelled_enum!(
    Rating {
        Satisfied = "satisfied", "满意";
        Basic = "basic", "基本满意";
        Unsatisfied = "unsatisfied", "不满意";
    }
);

labelled_enum!(
    /// How a withdrawal (撤回) was confirmed with the citizen (format 4).
    WithdrawalConfirmation {
        Phone = "phone", "电话确认";
        InPerson = "in_person", "当面确认";
        Written = "written", "书面申请";
        Online = "online", "网上申请";
    }
);

labelled_enum!(
    /// Whether a mediation agreement is kept, as a return visit (回访) found
    /// it (format 4).
    Fulfilment {
        Kept = "kept", "已履行";
        InProgress = "in_progress", "正在履行";
        Partly = "partly", "部分履行";
        NotKept = "not_kept", "未履行";
    }
);

/// Where a case is sent: a department window of the owning center, or a
/// lower center.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum RouteTarget {
    /// Department window code from the policy (e.g. `police`).
    Window(String),
    /// A descendant center.
    Unit(DivisionCode),
}

/// One helper of a 协办 request (format 4): a department window of the
/// requesting center or a center below it, and the working days it has to
/// reply.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AssistTarget {
    pub helper: RouteTarget,
    pub working_days: u32,
}

/// A mediator (调解员) as a step names them: the account at the center that
/// took the step, and the name the agreement prints (format 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize)]
pub struct Mediator {
    pub account: String,
    pub name: String,
}

/// Place of the matter. Coordinates are micro-degrees (no floats in records).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct Place {
    pub address: String,
    pub lat_e6: Option<i32>,
    pub lon_e6: Option<i32>,
}

/// Everything registered at intake (受理), except personal data.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Filing {
    /// 一案一码: `<division>-<year>-<serial>` of the filing center, for life.
    pub number: String,
    pub title: String,
    pub content: String,
    /// Leaf (小类) category code from the policy taxonomy, e.g. `0201`.
    pub category: String,
    pub request_type: RequestType,
    pub channel: Channel,
    pub urgency: Urgency,
    pub complexity: Complexity,
    pub place: Place,
    /// When the matter happened, if known (Unix ms).
    pub occurred_at_ms: Option<u64>,
    /// When the center received it (Unix ms); the registration clock starts here.
    pub received_at_ms: u64,
    pub people_involved: u32,
    /// Amount involved in fen (0.01 yuan).
    pub amount_fen: Option<u64>,
    /// Hash of the [`Contact`] blob, if the complainant gave details.
    pub contact: Option<BlobHash>,
    /// What the citizen's side of the case needs: where the matter arose,
    /// the query code's hash, the complainant's fingerprint, 越级.
    pub intake: Intake,
}

/// The citizen's side of a filing (record format 3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct Intake {
    /// 发生地: the division where the matter arose, when it is not the
    /// filing center's own (a village's matter filed at the county).
    pub arose_in: Option<DivisionCode>,
    /// [`query_code_hash`] of the query code the citizen was given on the
    /// receipt (the code itself is shown once and stored nowhere).
    pub query_code_hash: Option<[u8; 32]>,
    /// The complainant's fingerprint ([`Fingerprint`]): lets any center
    /// find the same person's cases without the contact.
    pub complainant: Option<Fingerprint>,
    /// 越级: filed above the center where the matter arose, and the filing
    /// center held no earlier case of this person and category there. The
    /// filing center decides at intake and signs it; counted against
    /// `arose_in`.
    pub skip_level: bool,
}

/// A complainant's fingerprint: 24-bit buckets of a keyed hash of the
/// normalised phone number and of the ID number. A bucket holds about 80
/// of China's 1.3 billion mobile numbers and about 6,000 possible ID
/// numbers, so whoever holds the key (every center) can narrow a
/// fingerprint down to a bucket but never read one number back; two
/// different people share a bucket with chance 1 in 16.7 million, which
/// the category and the period make rarer still. See ARCHITECTURE.md
/// ("The complainant fingerprint").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Fingerprint {
    pub phone: Option<u32>,
    pub id_number: Option<u32>,
}

/// Bits of a fingerprint bucket.
pub const FINGERPRINT_BITS: u32 = 24;

impl Fingerprint {
    /// The fingerprint of a contact under the city's fingerprint key
    /// ([`fingerprint_key`]); `None` when it has neither a phone number
    /// nor an ID number.
    pub fn of(key: &[u8; 32], contact: &Contact) -> Option<Fingerprint> {
        let bucket = |kind: &str, v: Option<String>| -> Option<u32> {
            let v = v?;
            let mut h = blake3::Hasher::new_keyed(key);
            h.update(kind.as_bytes());
            h.update(&[0]);
            h.update(v.as_bytes());
            let b = h.finalize();
            let b = b.as_bytes();
            Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
        };
        let fp = Fingerprint { phone: bucket("phone", normalize_phone(&contact.phone)), id_number: bucket("id", normalize_id_number(&contact.id_number)) };
        (fp.phone.is_some() || fp.id_number.is_some()).then_some(fp)
    }

    /// The one bucket repeats are grouped by: the phone's, else the ID's
    /// (tagged so the two never collide).
    pub fn group(&self) -> Option<u32> {
        self.phone.map(|p| p | 1 << 31).or(self.id_number)
    }
}

/// The city's fingerprint key, derived from its root key (so every center
/// of a tree computes the same fingerprints). It is not secret: the
/// protection is the bucket size, not the key.
pub fn fingerprint_key(root: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("zongzhi complainant fingerprint v1", root)
}

/// A phone number as digits only, without China's country code (so
/// `+86 138-1234-1234`, `008613812341234` and `13812341234` agree), if it
/// has the length of one (7 to 13 digits). The one normalisation of a
/// phone number: the fingerprint, the node's contact index and search,
/// and the messages' recipients all use it.
pub fn normalize_phone(s: &str) -> Option<String> {
    let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    let d = d.strip_prefix("0086").or_else(|| if d.len() == 13 { d.strip_prefix("86") } else { None }).unwrap_or(&d).to_string();
    (7..=13).contains(&d.len()).then_some(d)
}

/// An ID number upper-cased (`x` and `X` agree), if it has the shape of
/// one (15 or 18 characters, digits and a final X).
pub fn normalize_id_number(s: &str) -> Option<String> {
    let t: String = s.trim().to_ascii_uppercase();
    let ok = (t.len() == 18 || t.len() == 15) && t.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || (c == 'X' && i == t.len() - 1));
    ok.then_some(t)
}

/// The stored hash of a receipt's query code: keyed by the case number, so
/// one guess tests one case.
pub fn query_code_hash(number: &str, code: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("zongzhi query code v1");
    h.update(number.as_bytes());
    h.update(&[0]);
    h.update(normalize_query_code(code).as_bytes());
    *h.finalize().as_bytes()
}

/// A query code as the citizen may type it: case and dashes ignored.
pub fn normalize_query_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_uppercase()
}

/// The hash a feedback record carries of the citizen's rating token.
pub fn rating_token_hash(token: &[u8; 16]) -> [u8; 32] {
    blake3::derive_key("zongzhi rating token v1", token)
}

/// A citizen's one-time rating token, issued at feedback (反馈): its hash
/// and when it expires are in the signed feedback record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct RatingInvite {
    pub token_hash: [u8; 32],
    pub expires_ms: u64,
}

/// A workflow step.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Action {
    /// 受理: register a new case.
    File(Box<Filing>),
    /// 签收: the owner acknowledges custody.
    SignFor,
    /// 分流: route to a department window of the owning center.
    Route { window: String, requirements: String, due_ms: Option<u64> },
    /// 下派: send down to a descendant center.
    Dispatch { to: DivisionCode, requirements: String, due_ms: Option<u64> },
    /// 上报: send up to the parent center.
    Escalate { reason: String },
    /// 退单: return a routing or dispatch with reasons.
    Return { reason: String },
    /// 改派: send a returned (or misrouted) case elsewhere.
    Reroute { target: RouteTarget, reason: String },
    /// 协办: add helper units or windows.
    AddHelpers { helpers: Vec<RouteTarget> },
    /// Progress note; `public` notes may be told to the complainant.
    Progress { note: String, public: bool },
    /// 延期申请.
    RequestExtension { working_days: u32, reason: String },
    /// 延期审批: approve or refuse the pending request.
    DecideExtension { approve: bool, note: String },
    /// 督办 notice.
    Supervise { grade: SuperviseGrade, note: String },
    /// 办结.
    Resolve { public_reply: String, internal_note: String },
    /// 反馈 to the complainant; with an invitation to rate, a one-time
    /// token was given to the citizen.
    Feedback { method: String, note: String, invite: Option<RatingInvite> },
    /// 评价 as entered by staff (the citizen told them).
    Rate { rating: Rating, comment: String, result_rating: Option<Rating> },
    /// 重办 after 不满意.
    Reopen { reason: String },
    /// 并单: this case is a duplicate of `into`.
    Merge { into: RecordId },
    /// 归档.
    Archive,
    /// Evidence attachment (a content-addressed blob).
    Attach { blob: BlobHash, name: String, mime: String, size: u64 },
    /// 评价 given by the citizen on a public page, with the one-time token
    /// from the feedback: any center may sign it (the one that served the
    /// page); the token proves it came from the citizen.
    CitizenRate { token: [u8; 16], rating: Rating, result_rating: Rating, comment: String },
    /// 差评申诉: the rated unit asks its supervising level to set aside an
    /// unfair 不满意.
    Appeal { reason: String },
    /// The supervising level's decision on the appeal: an upheld appeal
    /// takes the rating out of the satisfaction figures (it stays in the
    /// timeline and is counted as 申诉成立).
    DecideAppeal { upheld: bool, note: String },
    /// 督办回复 (format 4): the supervised unit answers a 督办 notice with
    /// the measures it took, within the reply deadline of the notice's
    /// grade.
    ReplySupervision { notice: RecordId, measures: String },
    /// 不予受理 (format 4): the matter is not this center's; the citizen is
    /// referred elsewhere (`referral`: a code of the policy's referral list)
    /// and told why.
    Decline { referral: String, reason: String },
    /// 撤回 (format 4): the citizen withdrew the request; how it was
    /// confirmed with them, and what they said.
    Withdraw { confirmation: WithdrawalConfirmation, reason: String },
    /// 中止 (format 4): the case waits (an appraisal, a court, the
    /// citizen); its handling clocks stand still with the time they had
    /// left until 恢复. `reason`: a code of the policy's list; `expected_ms`:
    /// when the case is expected to resume.
    Suspend { reason: String, note: String, expected_ms: u64 },
    /// 恢复 (format 4): the clocks 中止 stopped run again with the time
    /// they had left.
    Resume { note: String },
    /// 协办 with deadlines and replies (format 4): each helper has its
    /// working days to reply.
    RequestAssistance { helpers: Vec<AssistTarget>, requirements: String },
    /// 协办回复 (format 4): a helper answers the request `request` (the
    /// 协办 step's record id).
    ReplyAssistance { request: RecordId, helper: RouteTarget, reply: String },
    /// 协办督办 (format 4): the requesting center chases a helper whose
    /// reply is late.
    SuperviseAssistance { request: RecordId, helper: RouteTarget, grade: SuperviseGrade, note: String },
    /// 调解 session (format 4): when it was held, by whom, who attended,
    /// what happened.
    MediationSession { held_ms: u64, mediators: Vec<Mediator>, attendees: String, notes: String },
    /// 调解协议书 (format 4): the agreement's document (parties, matter,
    /// terms: personal data, so a blob whose hash is signed) and the
    /// parties' confirmations (scanned signatures, attachments of the case).
    MediationAgreement { document: BlobHash, signatures: Vec<BlobHash>, mediators: Vec<Mediator>, signed_ms: u64 },
    /// 申请司法确认 (format 4): the agreement is referred to the court.
    ReferConfirmation { court: String, note: String },
    /// 司法确认结果 (format 4): the court's ruling on the agreement.
    RecordConfirmation { confirmed: bool, ruling: String, ruled_ms: u64, note: String },
    /// 回访 (format 4): whether the agreement is kept.
    ReturnVisit { fulfilment: Fulfilment, method: String, note: String },
}

impl Action {
    /// A step that moves the case on (who holds it, its status, its
    /// deadlines): one authority takes each at a time. The others (progress
    /// notes, evidence, 督办) add to the case and never conflict.
    pub fn is_exclusive(&self) -> bool {
        !matches!(
            self,
            Action::Progress { .. }
                | Action::Attach { .. }
                | Action::Supervise { .. }
                | Action::ReplySupervision { .. }
                | Action::ReplyAssistance { .. }
                | Action::SuperviseAssistance { .. }
                | Action::ReferConfirmation { .. }
                | Action::RecordConfirmation { .. }
                | Action::ReturnVisit { .. }
        )
    }

    /// The lowest record format that has this step.
    pub fn format_needed(&self) -> u8 {
        match self {
            Action::ReplySupervision { .. }
            | Action::Decline { .. }
            | Action::Withdraw { .. }
            | Action::Suspend { .. }
            | Action::Resume { .. }
            | Action::RequestAssistance { .. }
            | Action::ReplyAssistance { .. }
            | Action::SuperviseAssistance { .. }
            | Action::MediationSession { .. }
            | Action::MediationAgreement { .. }
            | Action::ReferConfirmation { .. }
            | Action::RecordConfirmation { .. }
            | Action::ReturnVisit { .. } => 4,
            _ => 3,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Action::File(_) => "file",
            Action::SignFor => "sign_for",
            Action::Route { .. } => "route",
            Action::Dispatch { .. } => "dispatch",
            Action::Escalate { .. } => "escalate",
            Action::Return { .. } => "return",
            Action::Reroute { .. } => "reroute",
            Action::AddHelpers { .. } => "add_helpers",
            Action::Progress { .. } => "progress",
            Action::RequestExtension { .. } => "request_extension",
            Action::DecideExtension { .. } => "decide_extension",
            Action::Supervise { .. } => "supervise",
            Action::Resolve { .. } => "resolve",
            Action::Feedback { .. } => "feedback",
            Action::Rate { .. } => "rate",
            Action::Reopen { .. } => "reopen",
            Action::Merge { .. } => "merge",
            Action::Archive => "archive",
            Action::Attach { .. } => "attach",
            Action::CitizenRate { .. } => "citizen_rate",
            Action::Appeal { .. } => "appeal",
            Action::DecideAppeal { .. } => "decide_appeal",
            Action::ReplySupervision { .. } => "reply_supervision",
            Action::Decline { .. } => "decline",
            Action::Withdraw { .. } => "withdraw",
            Action::Suspend { .. } => "suspend",
            Action::Resume { .. } => "resume",
            Action::RequestAssistance { .. } => "request_assistance",
            Action::ReplyAssistance { .. } => "reply_assistance",
            Action::SuperviseAssistance { .. } => "supervise_assistance",
            Action::MediationSession { .. } => "mediation_session",
            Action::MediationAgreement { .. } => "mediation_agreement",
            Action::ReferConfirmation { .. } => "refer_confirmation",
            Action::RecordConfirmation { .. } => "record_confirmation",
            Action::ReturnVisit { .. } => "return_visit",
        }
    }

    pub fn zh(&self) -> &'static str {
        match self {
            Action::File(_) => "受理",
            Action::SignFor => "签收",
            Action::Route { .. } => "分流",
            Action::Dispatch { .. } => "下派",
            Action::Escalate { .. } => "上报",
            Action::Return { .. } => "退单",
            Action::Reroute { .. } => "改派",
            Action::AddHelpers { .. } => "协办",
            Action::Progress { .. } => "办理进展",
            Action::RequestExtension { .. } => "延期申请",
            Action::DecideExtension { approve: true, .. } => "延期批准",
            Action::DecideExtension { approve: false, .. } => "延期驳回",
            Action::Supervise { .. } => "督办",
            Action::Resolve { .. } => "办结",
            Action::Feedback { .. } => "反馈",
            Action::Rate { .. } => "评价",
            Action::Reopen { .. } => "重办",
            Action::Merge { .. } => "并单",
            Action::Archive => "归档",
            Action::Attach { .. } => "上传证据",
            Action::CitizenRate { .. } => "群众评价",
            Action::Appeal { .. } => "差评申诉",
            Action::DecideAppeal { upheld: true, .. } => "申诉成立",
            Action::DecideAppeal { upheld: false, .. } => "申诉驳回",
            Action::ReplySupervision { .. } => "督办回复",
            Action::Decline { .. } => "不予受理",
            Action::Withdraw { .. } => "撤回",
            Action::Suspend { .. } => "中止",
            Action::Resume { .. } => "恢复",
            Action::RequestAssistance { .. } => "协办",
            Action::ReplyAssistance { .. } => "协办回复",
            Action::SuperviseAssistance { .. } => "协办督办",
            Action::MediationSession { .. } => "调解",
            Action::MediationAgreement { .. } => "调解协议",
            Action::ReferConfirmation { .. } => "申请司法确认",
            Action::RecordConfirmation { confirmed: true, .. } => "司法确认有效",
            Action::RecordConfirmation { confirmed: false, .. } => "司法确认驳回",
            Action::ReturnVisit { .. } => "回访",
        }
    }
}

/// The body of a `CaseEvent` record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CaseEvent {
    /// The case (id of its filing event); `None` in the filing event itself.
    pub case: Option<RecordId>,
    /// The case's head events the author knew: the causal DAG.
    pub parents: Vec<RecordId>,
    /// The author's center.
    pub unit: DivisionCode,
    /// The operator account that performed the step.
    pub operator: String,
    pub action: Action,
    /// The policy version the author held when it signed the step: the
    /// rules the step is checked against and the deadline table its clocks
    /// take (see `policy::PolicySet`).
    pub policy: u32,
}

impl CaseEvent {
    /// The case this event belongs to, given its own record id.
    pub fn case_id(&self, own_id: RecordId) -> RecordId {
        self.case.unwrap_or(own_id)
    }
}

/// Personal data of a complainant, stored as a separate blob.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct Contact {
    pub name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub address: String,
}

impl Contact {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, 64 * 1024)
    }

    pub fn hash(&self) -> BlobHash {
        BlobHash::of(&self.to_bytes())
    }

    /// The contact as shown to people not handling the case: name reduced to
    /// its first character, phone `138****1234`, ID number keeping 6 + 4
    /// digits, address reduced to its first 6 characters.
    pub fn masked(&self) -> Contact {
        Contact { name: mask_keep(&self.name, 1, 0), phone: mask_keep(&self.phone, 3, 4), id_number: mask_keep(&self.id_number, 6, 4), address: mask_keep(&self.address, 6, 0) }
    }
}

/// A party to a mediation agreement (当事人). Personal data: it lives only
/// in the agreement's blob ([`AgreementDoc`]), never in a signed record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub name: String,
    #[serde(default)]
    pub gender: String,
    #[serde(default)]
    pub ethnicity: String,
    #[serde(default)]
    pub age: String,
    /// 职业或职务.
    #[serde(default)]
    pub occupation: String,
    #[serde(default)]
    pub phone: String,
    /// 单位或住址.
    #[serde(default)]
    pub address: String,
}

/// The text of a 人民调解协议书, stored as a blob whose hash the agreement
/// step signs (format 4): the parties, the matter in dispute, the terms
/// agreed, how and by when they are performed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementDoc {
    /// 编号.
    #[serde(default)]
    pub number: String,
    pub parties: Vec<Party>,
    /// 纠纷主要事实、争议事项.
    pub matter: String,
    /// 经调解，自愿达成如下协议.
    pub terms: String,
    /// 履行方式、时限.
    #[serde(default)]
    pub performance: String,
    /// 本协议一式几份.
    #[serde(default)]
    pub copies: u32,
}

impl AgreementDoc {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, 256 * 1024)
    }

    /// The agreement as shown to people not handling the case: every
    /// party's personal details masked, the text kept.
    pub fn masked(&self) -> AgreementDoc {
        let mut d = self.clone();
        for p in &mut d.parties {
            p.name = mask_keep(&p.name, 1, 0);
            p.phone = mask_keep(&p.phone, 3, 4);
            p.address = mask_keep(&p.address, 6, 0);
            p.age = String::new();
        }
        d
    }
}

/// Keeps the first `head` and last `tail` characters and stars the rest
/// (at least one star when anything is hidden).
pub fn mask_keep(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    if chars.len() <= head + tail {
        // Too short to keep both ends: keep the head only, if anything is left to hide.
        let keep = head.min(chars.len().saturating_sub(1));
        let mut out: String = chars[..keep].iter().collect();
        out.push_str(&"*".repeat(chars.len() - keep));
        return out;
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_centers_do() {
        let c = Contact { name: "张三丰".into(), phone: "13812341234".into(), id_number: "330102199001011234".into(), address: "杭州市西湖区留下街道某小区3幢".into() };
        let m = c.masked();
        assert_eq!(m.phone, "138****1234");
        assert_eq!(m.id_number, "330102********1234");
        assert_eq!(m.name, "张**");
        assert_eq!(m.address, "杭州市西湖区*********");
        assert_eq!(mask_keep("12", 3, 4), "1*");
        assert_eq!(mask_keep("", 3, 4), "");
    }

    #[test]
    fn contact_hash_is_over_canonical_bytes() {
        let c = Contact { name: "李四".into(), ..Default::default() };
        assert_eq!(Contact::from_bytes(&c.to_bytes()).unwrap(), c);
        assert_eq!(c.hash(), BlobHash::of(&c.to_bytes()));
    }
}
