//! `zongzhi`: the operator's command line. Talks to a node over its HTTP
//! API (the same API the console uses) and handles keys and certificates.

// Output goes through `out!`/`outln!` (see `out`): `print!` panics on a closed pipe.
#![deny(clippy::print_stdout)]

#[macro_use]
extern crate zongzhi_tools;

mod commands;
mod policy;

use zongzhi_tools::{client, out, table};

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use client::Client;

#[derive(Parser)]
#[command(name = "zongzhi", version, about = "综治中心 case system: operator command line", after_help = EXIT_CODES)]
struct Cli {
    /// Node API address: a URL, or host:port (http assumed), e.g. 127.0.0.1:7800
    /// (default: the one saved at login, else http://127.0.0.1:7800).
    #[arg(long, env = "ZONGZHI_NODE", global = true)]
    node: Option<String>,
    /// Where the login session is saved (default ~/.config/zongzhi/session.json).
    #[arg(long, env = "ZONGZHI_SESSION", global = true)]
    session: Option<PathBuf>,
    /// PEM certificate to trust for an https:// node (its self-signed
    /// certificate, or the center's CA). Given at login, it is remembered
    /// for that node.
    #[arg(long, env = "ZONGZHI_CACERT", global = true)]
    cacert: Option<PathBuf>,
    /// Print the node's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in and save the session (with --cacert: that certificate is
    /// remembered for this node).
    Login {
        /// The account's user name.
        #[arg(long, short)]
        user: String,
        /// Without it the password is asked for on the terminal (not echoed),
        /// or read from standard input when that is a pipe or a file.
        #[arg(long)]
        password: Option<String>,
        /// The account's recovery code (its admin keeps it): gets in while
        /// guessing from several addresses has locked the account for
        /// clients it does not know.
        #[arg(long)]
        recovery_code: Option<String>,
    },
    /// End the saved session.
    Logout,
    /// Who is logged in, at which unit.
    Whoami,
    /// The node's identity and health.
    Health,
    /// Whether the node takes writes (GET /api/health/ready): exits 0 when
    /// ready, 1 with the reasons (storage fault, restoring, migrating) when not.
    Ready,
    /// The city-signed policy: show, diff, load a working-day calendar, set (default: show).
    Policy {
        #[command(subcommand)]
        command: Option<policy::PolicyCommand>,
    },
    /// File a case (受理).
    File(FileArgs),
    /// The work queue.
    Queue {
        #[command(flatten)]
        filter: ListFilter,
        /// Cases per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The next page: the cursor the previous page printed.
        #[arg(long)]
        after: Option<String>,
    },
    /// Find cases by number, phone, ID number or words of the title and content.
    Search {
        /// A case number (or part of one), a phone or ID number, or words.
        text: String,
        /// Cases per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The next page: the cursor the previous page printed.
        #[arg(long)]
        after: Option<String>,
    },
    /// Case detail and timeline.
    Show {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
    },
    /// 签收: sign for receipt.
    SignFor {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
    },
    /// 分流: route to a department window.
    Route {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The department window's code (`zongzhi policy show` lists them), e.g. justice.
        #[arg(long)]
        window: String,
        /// What the window or center is asked to do.
        #[arg(long, default_value = "")]
        requirements: String,
        /// Deadline, RFC 3339 (e.g. 2026-12-01T18:00:00+08:00).
        #[arg(long)]
        due_at: Option<String>,
    },
    /// 下派: dispatch down to a lower center.
    Dispatch {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The lower center: its 12-digit division code.
        #[arg(long)]
        to: String,
        /// What the window or center is asked to do.
        #[arg(long, default_value = "")]
        requirements: String,
        /// Deadline, RFC 3339 (e.g. 2026-12-01T18:00:00+08:00), at most the policy's max_due_days ahead.
        #[arg(long)]
        due_at: Option<String>,
    },
    /// 上报: escalate to the level above.
    Escalate {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Why this center cannot resolve it (the level above reads it).
        #[arg(long)]
        reason: String,
    },
    /// 退单: return with reasons.
    Return {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Why the case goes back (退单理由).
        #[arg(long)]
        reason: String,
    },
    /// 改派: re-route to another window or unit.
    Reroute {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Re-route to this window of this center.
        #[arg(long, conflicts_with = "to")]
        window: Option<String>,
        /// Re-route to this center: its 12-digit division code.
        #[arg(long)]
        to: Option<String>,
        /// Why it is re-routed.
        #[arg(long)]
        reason: String,
    },
    /// 协办: add helper windows or units.
    Helpers {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// A helper window's code (repeat the option for several).
        #[arg(long = "window")]
        windows: Vec<String>,
        /// A helper center's division code (repeat the option for several).
        #[arg(long = "unit")]
        units: Vec<String>,
    },
    /// Add a progress note.
    Progress {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The progress note.
        #[arg(long)]
        note: String,
        /// The note may be told to the complainant.
        #[arg(long)]
        public: bool,
    },
    /// 延期: request, approve or refuse an extension.
    Extension {
        #[command(subcommand)]
        command: ExtensionCommand,
    },
    /// 督办: issue a supervision notice.
    Supervise {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// normal (普通), yellow (黄牌), red (红牌), interview (约谈).
        #[arg(long, value_enum)]
        grade: Grade,
        /// What the notice demands.
        #[arg(long)]
        note: String,
    },
    /// 督办回复: reply to the 督办 waiting for this unit's reply, with the measures taken.
    ReplySupervision {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The measures taken (整改措施).
        #[arg(long)]
        measures: String,
        /// The 督办 record's id (default: the one waiting for this unit).
        #[arg(long)]
        notice: Option<String>,
    },
    /// 不予受理: decline a matter that is not this center's, referring the
    /// citizen elsewhere (record format 4).
    Decline {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Where the citizen is referred: a code of the policy's list
        /// (e.g. court, labor_arbitration, police).
        #[arg(long)]
        referral: String,
        /// Why it is not this center's matter (told to the citizen).
        #[arg(long)]
        reason: String,
    },
    /// 撤回: the citizen withdrew the request (record format 4).
    Withdraw {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// How it was confirmed: phone (电话确认), in_person (当面确认),
        /// written (书面申请), online (网上申请).
        #[arg(long)]
        confirmation: String,
        /// What the citizen said when withdrawing.
        #[arg(long)]
        reason: String,
    },
    /// 中止: pause the case's clocks while it waits (record format 4).
    Suspend {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// A code of the policy's list (appraisal, litigation, other_authority, party_unavailable).
        #[arg(long)]
        reason: String,
        /// What the case waits for, in words.
        #[arg(long)]
        note: String,
        /// The expected day of 恢复 (YYYY-MM-DD).
        #[arg(long)]
        expected: String,
    },
    /// 恢复: restart the clocks 中止 paused, with the time they had left.
    Resume {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// A note on the 恢复.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// 协办: ask windows of this center or centers below for help, each with
    /// a deadline (record format 4).
    Assist {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// A helping window: CODE or CODE:WORKING_DAYS (default: the policy's).
        #[arg(long = "window")]
        windows: Vec<String>,
        /// A helping center below: DIVISION or DIVISION:WORKING_DAYS.
        #[arg(long = "unit")]
        units: Vec<String>,
        /// What the helpers are asked to do.
        #[arg(long)]
        requirements: String,
    },
    /// 协办回复: answer the 协办 request waiting for this center (or for
    /// --window, one of its windows).
    AssistReply {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The answer to the 协办 request.
        #[arg(long)]
        reply: String,
        /// Answer for this window of the center (its code).
        #[arg(long)]
        window: Option<String>,
        /// The 协办 step's record id (default: the one waiting).
        #[arg(long)]
        request: Option<String>,
    },
    /// 调解: record a mediation session (record format 4).
    Mediate {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The day it was held (YYYY-MM-DD).
        #[arg(long)]
        held_on: String,
        /// A mediator's account (repeat for several).
        #[arg(long = "mediator", required = true)]
        mediators: Vec<String>,
        /// Who attended (the parties present).
        #[arg(long)]
        attendees: String,
        /// What was discussed and agreed at the session.
        #[arg(long)]
        notes: String,
    },
    /// 调解协议书: record the agreement (record format 4): its text from a
    /// JSON file ({parties:[{name,…}], matter, terms, performance?}), the
    /// parties' signed confirmation as scans (uploaded to the case first).
    Agreement {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The agreement's text, a JSON file (see above).
        #[arg(long)]
        file: PathBuf,
        /// A scan of the signed agreement to upload and name (repeat).
        #[arg(long = "scan", required = true)]
        scans: Vec<PathBuf>,
        /// A mediator's account who signed (repeat for several).
        #[arg(long = "mediator", required = true)]
        mediators: Vec<String>,
        /// The day it was signed (YYYY-MM-DD).
        #[arg(long)]
        signed_on: String,
    },
    /// 申请司法确认: refer the agreement to the court.
    ConfirmRefer {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The court asked for 司法确认.
        #[arg(long)]
        court: String,
        /// A note on the referral.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// 司法确认结果: the court's ruling on the agreement.
    ConfirmResult {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The court confirmed the agreement (确认有效).
        #[arg(long, conflicts_with = "refused")]
        confirmed: bool,
        /// The court refused to confirm it (不予确认).
        #[arg(long)]
        refused: bool,
        /// The ruling's number (文书号).
        #[arg(long)]
        ruling: String,
        /// The day of the ruling (YYYY-MM-DD).
        #[arg(long)]
        ruled_on: String,
        /// A note on the ruling.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// 回访: whether the agreement is kept.
    ReturnVisit {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// kept (已履行), in_progress (正在履行), partly (部分履行), not_kept (未履行).
        #[arg(long)]
        fulfilment: String,
        /// How the visit was made (e.g. phone, in_person).
        #[arg(long, default_value = "phone")]
        method: String,
        /// What was found.
        #[arg(long)]
        note: String,
    },
    /// 办结: resolve.
    Resolve {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The reply the complainant gets.
        #[arg(long)]
        reply: String,
        /// A note for staff only, never shown to the complainant.
        #[arg(long, default_value = "")]
        internal_note: String,
    },
    /// 反馈: record feedback given to the complainant.
    Feedback {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// What the complainant was told.
        #[arg(long)]
        note: String,
        /// How they were told: phone, sms, visit, letter or online (free text, at most 40 characters).
        #[arg(long, default_value = "phone")]
        method: String,
        /// Do not invite the citizen to rate on the public page (staff
        /// then enter the rating they were told). By default the node
        /// invites where it knows a public page ([public] in its config).
        #[arg(long)]
        no_rating_invite: bool,
    },
    /// 评价: record the complainant's rating as told to staff (counted as staff-entered).
    Rate {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        #[arg(long, value_enum)]
        rating: Rating,
        /// The rating of the result, the same words.
        #[arg(long, value_enum)]
        result_rating: Option<Rating>,
        /// The complainant's comment, as told to staff.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// 差评申诉: the rated unit appeals an unfair 不满意 to the level above.
    Appeal {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Why the 不满意 is unfair (the level above decides).
        #[arg(long)]
        reason: String,
    },
    /// The level above decides an appeal (admin): --uphold sets the rating aside.
    DecideAppeal {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Uphold the appeal: the rating is set aside (the timeline keeps it).
        #[arg(long)]
        uphold: bool,
        /// Dismiss the appeal: the rating stands.
        #[arg(long)]
        dismiss: bool,
        /// A note on the decision.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Check a citizen's receipt offline, against the city root key and the
    /// tree's certificates (saved from any public page's /api/public/trust).
    VerifyReceipt {
        /// The token printed on the receipt (<number>.<code>).
        token: String,
        /// The city root key (hex) you trust.
        #[arg(long)]
        root: String,
        /// The certificates: a file holding the JSON of GET /api/public/trust.
        #[arg(long)]
        trust: PathBuf,
    },
    /// Let a citizen in again: lift the locks wrong query codes or rating
    /// tokens set on a case number at this node's public page (the client
    /// addresses locked out of it are listed first).
    PublicUnlock {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
    },
    /// 重办: reopen a case rated 不满意.
    Reopen {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Why it is handled again (重办).
        #[arg(long)]
        reason: String,
    },
    /// 并单: merge this case into another (it is a duplicate).
    Merge {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The case this one duplicates: its number or id.
        #[arg(long)]
        into: String,
    },
    /// 归档: archive.
    Archive {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
    },
    /// Attach evidence.
    Attach {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The file to attach (`-`: standard input, then give --name).
        #[arg(long)]
        file: PathBuf,
        /// The attachment's name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// Its type, e.g. image/jpeg, application/pdf (others are served as application/octet-stream).
        #[arg(long, default_value = "application/octet-stream")]
        mime: String,
    },
    /// Download an attachment.
    Download {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// The attachment's hash, as `zongzhi show` lists it.
        blob: String,
        /// Where to write it (`-`: standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Operator accounts (admin).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Check the node's stored records and chain (admin).
    Integrity,
    /// Node keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Node certificates and enrollment requests.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Signed monthly reports.
    Reports {
        #[command(subcommand)]
        command: ReportsCommand,
    },
    /// Replication.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Every center of this node's subtree (the city: the whole tree): its
    /// release, the record formats it reads, its schema, its last report and
    /// how old it is, records held aside, alarms; and whether the tree is
    /// ready for the next record format (`policy finalize`).
    Fleet,
    /// Statistics of a subtree: counters and KPIs beside the plan's targets, ranked.
    Stats {
        /// unit, level, county, township, village, category, channel, window
        /// (a department window's code) or person (unit:username).
        #[arg(long, value_enum, default_value_t = StatsBy::Unit)]
        by: StatsBy,
        /// 2026-10, 2026-Q4 or 2026 (default: this month).
        #[arg(long)]
        period: Option<String>,
        /// KPI codes, comma-separated (default: all); the first ranks the rows.
        #[arg(long)]
        kpi: Option<String>,
        /// A division inside this center's subtree (default: this center).
        #[arg(long)]
        scope: Option<String>,
        /// Write CSV to this file ("-" for standard output).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell to write completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (zongzhi.1 and one per subcommand) into a directory.
    Man {
        /// The directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Export the case list (台账) as CSV or XLSX.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The case list with the queue's filters; personal data masked for viewers.
    Cases(ExportCasesArgs),
}

#[derive(clap::Args)]
struct ExportCasesArgs {
    /// csv or xlsx.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// The file to write (`-`: standard output).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    filter: ListFilter,
}

/// The case list's filters, as `GET /api/cases` and its export take them.
#[derive(clap::Args)]
struct ListFilter {
    /// Owner division code, or `all` (default: this node's unit).
    #[arg(long)]
    owner: Option<String>,
    /// Statuses (comma separated), `open` (default) or `all`.
    #[arg(long, value_enum, value_delimiter = ',')]
    status: Vec<StatusArg>,
    /// Category code prefix, e.g. 02 or 0202.
    #[arg(long)]
    category: Option<String>,
    /// Only urgent cases.
    #[arg(long)]
    urgent: bool,
    /// Only cases with a clock past due.
    #[arg(long)]
    overdue: bool,
    /// A running clock has used most of its time (临期).
    #[arg(long)]
    due_soon: bool,
    /// Only cases with a deadline waiting for a working-day calendar (待定时限).
    #[arg(long)]
    waiting_calendar: bool,
    /// This center's running clocks, whoever owns the case: `any` (我的时限),
    /// or one kind, e.g. `feedback` (待反馈) or `sign_for` (待签收).
    /// --owner and --status do not apply then.
    #[arg(long, value_enum)]
    clock: Option<ClockArg>,
}

impl ListFilter {
    /// No filter given: the plain queue.
    fn is_default(&self) -> bool {
        self.owner.is_none() && self.status.is_empty() && self.category.is_none() && self.clock.is_none() && !self.urgent && !self.overdue && !self.due_soon && !self.waiting_calendar
    }

    /// The query parameters these filters stand for.
    fn query(&self) -> Vec<(&'static str, String)> {
        let status = (!self.status.is_empty()).then(|| self.status.iter().map(value_name).collect::<Vec<_>>().join(","));
        let options = [("owner", self.owner.clone()), ("status", status), ("category", self.category.clone()), ("clock", self.clock.as_ref().map(value_name))];
        let mut q: Vec<(&'static str, String)> = options.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        let flags = [("overdue", self.overdue), ("due_soon", self.due_soon), ("waiting_calendar", self.waiting_calendar)];
        q.extend(flags.into_iter().filter(|(_, on)| *on).map(|(k, _)| (k, "true".to_string())));
        if self.urgent {
            q.push(("urgency", "urgent".into()));
        }
        q
    }
}

/// The name a fixed-value option has on the command line, which is also
/// the word the node's API takes.
fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// Fixed-value options: their names are the API's words; serialised as those words.
macro_rules! api_words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
        enum $name {
            $($(#[$vm])* #[value(name = $word)] #[serde(rename = $word)] $variant),+
        }
    };
}

api_words!(
    /// 督办 grades.
    Grade { /// 普通
    Normal = "normal", /// 黄牌
    Yellow = "yellow", /// 红牌
    Red = "red", /// 约谈
    Interview = "interview" }
);
api_words!(
    /// A complainant's rating.
    Rating { /// 满意
    Satisfied = "satisfied", /// 基本满意
    Basic = "basic", /// 不满意
    Unsatisfied = "unsatisfied" }
);
api_words!(
    /// How statistics are grouped.
    StatsBy { Unit = "unit", Level = "level", County = "county", Township = "township", Village = "village", Category = "category", Channel = "channel", /// a department window (派驻窗口) by its code
    Window = "window", /// a person (unit:username)
    Person = "person" }
);
api_words!(
    /// The case list's file format.
    ExportFormat { Csv = "csv", Xlsx = "xlsx" }
);
api_words!(
    /// 诉求类型.
    RequestTypeArg { /// 咨询
    Inquiry = "inquiry", /// 求助
    Help = "help", /// 投诉
    Complaint = "complaint", /// 举报
    Report = "report", /// 建议
    Suggestion = "suggestion", /// 表扬
    Praise = "praise" }
);
api_words!(
    /// 来源渠道.
    ChannelArg { /// 现场来访
    OnSite = "on_site", /// 电话
    Phone = "phone", /// 网上
    Online = "online" }
);
api_words!(
    /// An account's role.
    Role { Admin = "admin", Operator = "operator", Viewer = "viewer", /// 派驻窗口: a department window's staff (with --window)
    Window = "window" }
);
api_words!(
    /// A case status in the list's filter (`open`: every status still in work; `all`: any).
    StatusArg { Open = "open", All = "all", /// 待签收
    AwaitingReceipt = "awaiting_receipt", /// 已签收
    Accepted = "accepted", /// 办理中
    Handling = "handling", /// 已退回
    Returned = "returned", /// 已办结
    Resolved = "resolved", /// 已反馈
    FedBack = "fed_back", /// 已评价
    Rated = "rated", /// 已归档
    Archived = "archived", /// 已并单
    Merged = "merged", /// 已作废
    Void = "void", /// 不予受理
    Declined = "declined", /// 已撤回
    Withdrawn = "withdrawn", /// 已中止
    Suspended = "suspended" }
);
api_words!(
    /// A running clock of this center (`any`: every kind).
    ClockArg { /// 我的时限
    Any = "any", /// 登记
    Registration = "registration", /// 分流
    Routing = "routing", /// 签收
    SignFor = "sign_for", /// 办理
    Resolution = "resolution", /// 反馈
    Feedback = "feedback", /// 重办
    Rehandle = "rehandle", /// 到场
    OnSite = "on_site", /// 督办回复
    SupervisionReply = "supervision_reply", /// 协办回复
    Assistance = "assistance", /// 中止
    Suspension = "suspension", /// 回访
    ReturnVisit = "return_visit" }
);

#[derive(Subcommand)]
enum ReportsCommand {
    /// Sign this center's own figures for a month (admin).
    Sign {
        /// YYYY-MM (a month that has closed).
        #[arg(long)]
        period: String,
        /// Supersede the report already signed for the month, for this
        /// reason (both stay visible).
        #[arg(long)]
        supersede: Option<String>,
    },
    /// Compare every report in the subtree with the figures recomputed from the events.
    Check {
        /// 2026-10, 2026-Q4 or 2026 (default: this month).
        #[arg(long)]
        period: Option<String>,
        /// A division inside this center's subtree (default: this center).
        #[arg(long)]
        scope: Option<String>,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Per peer: connected, last contact, records behind each way, bytes, errors, alarms.
    Status,
}

#[derive(clap::Args)]
struct FileArgs {
    /// The case's title (at most 200 characters).
    #[arg(long)]
    title: String,
    /// What the complainant said (at most 10,000 characters).
    #[arg(long)]
    content: String,
    /// Leaf category code (see `zongzhi policy`), e.g. 0202.
    #[arg(long)]
    category: String,
    /// inquiry, help, complaint, report, suggestion, praise.
    #[arg(long = "type", value_enum, default_value_t = RequestTypeArg::Complaint)]
    request_type: RequestTypeArg,
    #[arg(long, value_enum, default_value_t = ChannelArg::OnSite)]
    channel: ChannelArg,
    /// An urgent case (紧急): on site within 15 minutes, routed within 1 hour.
    #[arg(long)]
    urgent: bool,
    /// A complex case (复杂): 15 working days to resolve instead of 7.
    #[arg(long)]
    complex: bool,
    /// Where the matter is (at most 200 characters).
    #[arg(long, default_value = "")]
    address: String,
    /// 受理时间: when this center received the matter, RFC 3339 in China time (e.g. 2026-12-05T17:30:00+08:00); at most the node's received_at_max_hours (72) back (a weekend's paper intake), since every deadline runs from it. Default: now.
    #[arg(long)]
    received_at: Option<String>,
    /// People involved.
    #[arg(long, default_value_t = 1)]
    people: u32,
    /// The complainant's name; with it the contact is recorded (personal data: masked for viewers, kept at this center).
    #[arg(long)]
    contact_name: Option<String>,
    /// The complainant's phone (the receipt and progress messages go there).
    #[arg(long, default_value = "")]
    contact_phone: String,
    /// The complainant's resident ID number (18 characters).
    #[arg(long, default_value = "")]
    contact_id: String,
    /// The complainant's address.
    #[arg(long, default_value = "")]
    contact_address: String,
    /// 发生地: the division where the matter arose (default: this center's).
    #[arg(long)]
    arose_in: Option<String>,
}

#[derive(Subcommand)]
enum ExtensionCommand {
    Request {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// Working days to add (at most the policy's max_extension_working_days).
        #[arg(long)]
        days: u32,
        /// Why more time is needed.
        #[arg(long)]
        reason: String,
    },
    Approve {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// A note on the decision.
        #[arg(long, default_value = "")]
        note: String,
    },
    Refuse {
        /// The case: its number (<division>-<year>-<serial>) or id (64 hex digits).
        case: String,
        /// A note on the decision.
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; without --password the password is asked for on
    /// the terminal (not echoed), or read from standard input.
    Add {
        /// User name: 2 to 32 of a-z, 0-9, '.', '_' and '-'.
        #[arg(long)]
        username: String,
        /// admin, operator or viewer.
        #[arg(long, value_enum, default_value_t = Role::Operator)]
        role: Role,
        /// The name shown in the console and in timelines (default: the user name).
        #[arg(long, default_value = "")]
        display_name: String,
        /// The password (visible in process lists; without it, asked for or read from standard input).
        #[arg(long)]
        password: Option<String>,
        /// A window account's department window (repeat; role window).
        #[arg(long = "window")]
        windows: Vec<String>,
        /// The account mediates (调解员).
        #[arg(long)]
        mediator: bool,
    },
    List,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate an ed25519 key as PKCS#8 PEM (mode 0600).
    Generate {
        /// Where to write the key (PEM, mode 0600; `-`: standard output, the key's id on standard error).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (node id) of a PEM key file.
    Show {
        /// The file (`-`: standard input).
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Approve a child center's enrollment request (admin, on the parent's node).
    Issue {
        /// The child's enrollment-request.txt.
        #[arg(long)]
        request: PathBuf,
        /// Where to write the certificate chain for the child to import.
        #[arg(long)]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 3650)]
        valid_days: u32,
        /// Sign without asking (the request is still shown and checked).
        #[arg(long)]
        yes: bool,
    },
    /// Certificates the node knows (revoked ones with --all).
    List {
        /// Also revoked certificates.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a descendant's key; records after the cut-off are void everywhere.
    /// Prints what this center holds of the key and what the cut-off voids.
    Revoke {
        /// The key as `cert list` shows it (at least 8 hex digits, a unique prefix) or all 64 digits.
        #[arg(long)]
        key: String,
        /// The last of the key's records that stays valid (its seq, as `zongzhi sync status` or the alarms show it); later ones are void everywhere. Default: the last this center holds of it (a higher one is refused); `--dry-run` shows it first.
        #[arg(long)]
        cutoff_seq: Option<u64>,
        /// Why (kept in the signed revocation), e.g. 设备丢失.
        #[arg(long)]
        reason: String,
        /// Only show what the revocation would void; sign nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show an enrollment request or a file of certificate records.
    Show {
        /// The file (`-`: standard input).
        path: PathBuf,
    },
    /// Check a certificate chain file against the city root key.
    Verify {
        /// The chain file from `zongzhi cert issue` (`-`: standard input).
        path: PathBuf,
        /// The city root key: all 64 hex digits, or (looked up on the node)
        /// a unique prefix of at least 8, e.g. the issuer `cert list` shows.
        #[arg(long)]
        root: String,
    },
}

/// The exit codes, as `zongzhi --help` and the man page list them.
const EXIT_CODES: &str = "Exit codes:
  0    done
  1    the node refused the request (a rule, bad input, not found), or a local error (a file)
  2    wrong command line (unknown option, missing or invalid value)
  3    the node cannot be reached, or answered with a server error (5xx): try again later
  4    not logged in, session expired, or the account may not do this (401/403)
  5    `ready`: the node answers but does not take writes (storage fault, restoring, migrating)
  141  the reader of standard output went away (`zongzhi queue | head`)";

/// Exit codes (see [`EXIT_CODES`]).
mod exit {
    pub const REFUSED: u8 = 1;
    pub const UNAVAILABLE: u8 = 3;
    pub const AUTH: u8 = 4;
    pub const NOT_READY: u8 = 5;
}

/// `ready` found the node not ready.
#[derive(Debug)]
pub struct NotReady(pub String);

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotReady {}

/// The exit code an error stands for.
fn exit_code(e: &anyhow::Error) -> u8 {
    if out::is_closed_pipe(e) {
        return out::CLOSED_PIPE_EXIT;
    }
    if e.downcast_ref::<NotReady>().is_some() {
        return exit::NOT_READY;
    }
    if e.downcast_ref::<client::NotLoggedIn>().is_some() {
        return exit::AUTH;
    }
    if e.downcast_ref::<client::Unreachable>().is_some() {
        return exit::UNAVAILABLE;
    }
    match e.chain().find_map(|c| c.downcast_ref::<client::ApiError>()).map(|a| a.status) {
        Some(401 | 403) => exit::AUTH,
        Some(500..) => exit::UNAVAILABLE,
        _ => exit::REFUSED,
    }
}

fn main() -> std::process::ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let node_from_env = matches.value_source("node") == Some(clap::parser::ValueSource::EnvVariable);
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, node_from_env).and_then(|()| Ok(out::flush()?)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `… | head`: the reader has what it wanted.
        Err(e) if out::is_closed_pipe(&e) => std::process::ExitCode::from(out::CLOSED_PIPE_EXIT),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            std::process::ExitCode::from(exit_code(&e))
        }
    }
}

/// `completions`: the script clap generates for `shell`.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "zongzhi", &mut buf);
    out::write_bytes(&buf)?;
    Ok(())
}

/// `man`: zongzhi.1 and zongzhi-<subcommand>.1 for every subcommand, nested ones included.
fn man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing the man pages into {}", dir.display()))?;
    let n = std::fs::read_dir(dir)?.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "1")).count();
    outln!("wrote {n} man pages into {}", dir.display())?;
    Ok(())
}

/// The password: `--password`, else typed on the terminal without echo,
/// else the first line of standard input (a pipe or a file).
fn read_password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    use std::io::{IsTerminal, Write};
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password("password: ") {
            Ok(p) => p,
            // Ctrl-D on an empty line: end the prompt's line.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let _ = writeln!(std::io::stderr());
                String::new()
            }
            Err(e) => return Err(anyhow::Error::new(e).context("reading the password from the terminal")),
        }
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        bail!("no password: type it when asked, pipe it on standard input, or give --password");
    }
    Ok(password)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Short time: `MM-DD HH:MM` from an RFC 3339 string.
fn short_time(v: &Value) -> String {
    match v.as_str() {
        Some(t) if t.len() >= 16 => format!("{} {}", &t[5..10], &t[11..16]),
        _ => "-".into(),
    }
}

fn run(cli: Cli, node_from_env: bool) -> anyhow::Result<()> {
    // Neither needs a node (nor a readable session file).
    match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Man { out } => return man_pages(&out),
        _ => {}
    }
    if let Some(pem) = &cli.cacert {
        client::set_ca_cert(pem.clone());
    }
    let cx = &commands::Ctx::new(&cli, node_from_env)?;
    commands::dispatch(cx, cli.command)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The names of the units the node knows; none when it cannot say (the
/// tables then show codes).
fn unit_names(c: &Client) -> table::UnitNames {
    c.get("/api/certs").map(|v| table::UnitNames::from_certs(&v)).unwrap_or_default()
}

/// A unit's code with its official name, for detail lines.
fn unit_full(v: &Value, name: &Value, names: &table::UnitNames) -> String {
    let code = s(v);
    match name.as_str().filter(|n| !n.is_empty()).or_else(|| names.full(&code)) {
        Some(n) => format!("{code} {n}"),
        None => code,
    }
}

/// A unit's short name for table cells (the code when the unit is unknown).
fn unit_short(v: &Value, name: &Value, names: &table::UnitNames) -> String {
    let code = s(v);
    names.short_or(&code, name.as_str().unwrap_or(""))
}

/// A page of case summaries (`/api/cases`, `/api/search`) as a table, with
/// the count and the cursor of the next page. `clock`: (unit, kind) — the
/// 时限 column shows that unit's running clock (of that kind), earliest first.
fn print_cases(v: &Value, names: &table::UnitNames, clock: Option<&(String, Option<String>)>) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = v["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let waiting: Vec<String> = x["waiting_calendar"].as_array().into_iter().flatten().map(s).collect();
            let flag = if x["overdue"] == json!(true) {
                "超期".to_string()
            } else if x["due_soon"] == json!(true) {
                "临期".to_string()
            } else {
                String::new()
            };
            let flag = if waiting.is_empty() {
                flag
            } else {
                let pending = format!("待定:缺{}年日历", waiting.join("、"));
                if flag.is_empty() { pending } else { format!("{flag} {pending}") }
            };
            let due = if x["next_due_at"].is_null() && !waiting.is_empty() { "待定".to_string() } else { short_time(&x["next_due_at"]) };
            let mine = clock.and_then(|(unit, kind)| {
                x["clocks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|k| k["unit"].as_str() == Some(unit.as_str()) && kind.as_deref().is_none_or(|kd| k["kind"].as_str() == Some(kd)))
                    .min_by_key(|k| k["due_at"].as_str().unwrap_or_default().to_string())
            });
            let (due, flag) = match mine {
                Some(k) => (format!("{} {}", s(&k["name"]), short_time(&k["due_at"])), if k["overdue"] == json!(true) { "超期".to_string() } else { flag }),
                None => (due, flag),
            };
            vec![
                s(&x["number"]),
                table::truncate(&s(&x["title"]), 24),
                s(&x["category"]["name"]),
                s(&x["urgency"]["name"]),
                s(&x["status"]["name"]),
                unit_short(&x["owner"], &x["owner_name"], names),
                s(&x["window_name"]),
                due,
                flag,
            ]
        })
        .collect();
    out!("{}", table::render(&["编号", "标题", "类别", "紧急", "状态", "承办", "窗口", "时限", ""], &rows))?;
    let total = if v["total_exact"] == json!(false) { format!("at least {}", s(&v["total"])) } else { s(&v["total"]) };
    if v["total"].is_null() {
        outln!("{} cases", rows.len())?;
    } else {
        outln!("{} of {total} cases", rows.len())?;
    }
    if let Some(next) = v["next"].as_str() {
        outln!("next page: --after {next}")?;
    }
    Ok(())
}

fn show_case(v: &Value, names: &table::UnitNames) -> anyhow::Result<()> {
    outln!("{}  {}", s(&v["number"]), s(&v["title"]))?;
    outln!("状态 {}  承办 {}  窗口 {}", s(&v["status"]["name"]), unit_full(&v["owner"], &v["owner_name"], names), s(&v["window_name"]))?;
    outln!("受理单位 {}", unit_full(&v["filed_by"], &v["filed_by_name"], names))?;
    outln!(
        "类别 {}/{}  {}  {}  {}  渠道 {}",
        s(&v["category"]["parent_name"]),
        s(&v["category"]["name"]),
        s(&v["request_type"]["name"]),
        s(&v["urgency"]["name"]),
        s(&v["complexity"]["name"]),
        s(&v["channel"]["name"])
    )?;
    outln!("内容 {}", s(&v["content"]))?;
    if v["contact"].is_object() {
        let ct = &v["contact"];
        outln!("诉求人 {}  {}  {}", s(&ct["name"]), s(&ct["phone"]), s(&ct["id_number"]))?;
    }
    if let Some(sup) = v["supervision"].as_object() {
        outln!("督办 {} ×{}", s(&sup["name"]), s(&sup["count"]))?;
    }
    if v["overdue"] == json!(true) {
        outln!("!! 超期")?;
    }
    let deadlines: Vec<Vec<String>> = v["deadlines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let waiting = d["clock"] == "waiting_for_calendar";
            let state = if d["cancelled"] == json!(true) {
                "取消".to_string()
            } else if waiting {
                format!("待定:缺{}年日历", s(&d["waiting_year"]))
            } else if d["running"] == json!(true) {
                if d["overdue"] == json!(true) { "超期".into() } else { "计时中".into() }
            } else if d["on_time"] == json!(true) {
                "按时".into()
            } else {
                "超时".into()
            };
            let due = if waiting && d["due_at"].is_null() { "待定".to_string() } else { short_time(&d["due_at"]) };
            vec![s(&d["kind_zh"]), unit_short(&d["unit"], &d["unit_name"], names), due, short_time(&d["met_at"]), state]
        })
        .collect();
    outln!()?;
    out!("{}", table::render(&["时限", "单位", "到期", "完成", "状态"], &deadlines))?;
    let rows: Vec<Vec<String>> = v["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let outcome = match t["rejected"].as_object() {
                Some(r) => format!("驳回: {}", s(&r["rule"].clone())),
                None => "有效".into(),
            };
            let sig = if t["signature_valid"] == json!(true) { "✓" } else { "✗ 签名无效" };
            let operator = t["operator_name"].as_str().filter(|n| !n.is_empty()).map(String::from).unwrap_or_else(|| s(&t["operator"]));
            // Whole replies and notes, wrapped.
            vec![short_time(&t["time"]), unit_short(&t["unit"], &t["unit_name"], names), operator, s(&t["action_zh"]), table::wrap(&detail_text(&t["details"]), 40), outcome, sig.into()]
        })
        .collect();
    outln!()?;
    out!("{}", table::render(&["时间", "单位", "经办人", "操作", "内容", "结果", "签名"], &rows))?;
    for e in v["integrity_errors"].as_array().into_iter().flatten() {
        outln!("!! integrity: {} {}", s(&e["record"]), s(&e["detail"]))?;
    }
    Ok(())
}

/// A step's details, one field a line.
fn detail_text(d: &Value) -> String {
    let Some(obj) = d.as_object() else { return String::new() };
    obj.iter().filter(|(_, v)| !v.is_null() && v.as_str() != Some("")).map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join("\n")
}

fn keys(cmd: KeyCommand) -> anyhow::Result<()> {
    use zongzhi_protocol::NodeKey;
    match cmd {
        KeyCommand::Generate { out } => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key = NodeKey::generate(&mut rand_core::OsRng);
            if out::is_dash(&out) {
                // The key to standard output, its id to standard error.
                out::write_bytes(key.to_pkcs8_pem()?.as_bytes())?;
                eprintln!("{}", key.id());
                return Ok(());
            }
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&out).with_context(|| format!("creating {}", out.display()))?;
            f.write_all(key.to_pkcs8_pem()?.as_bytes())?;
            outln!("{}", key.id())?;
        }
        KeyCommand::Show { path } => {
            let pem = out::read_input_string(&path)?;
            let key = NodeKey::from_pkcs8_pem(&pem)?;
            outln!("{}  ({})", key.id(), key.id().fmt_short())?;
        }
    }
    Ok(())
}

fn certs(cmd: CertCommand) -> anyhow::Result<()> {
    use zongzhi_protocol::Record;
    use zongzhi_protocol::cert::{EnrollmentRequest, NodeCert, RECORDS_ARMOR, dearmor_all};
    let read = |p: &PathBuf| out::read_input_string(p);
    match cmd {
        CertCommand::Show { path } => {
            let text = read(&path)?;
            if text.contains("ZONGZHI ENROLLMENT REQUEST") {
                let req = EnrollmentRequest::from_armored(&text)?;
                outln!("enrollment request (signature valid)")?;
                outln!("  key       {}", req.key)?;
                outln!("  division  {} ({})", req.division, req.division.level().zh())?;
                outln!("  name      {}", req.name)?;
                return Ok(());
            }
            let blocks = dearmor_all(RECORDS_ARMOR, &text);
            if blocks.is_empty() {
                bail!("{} holds no enrollment request and no records", path.display());
            }
            for bytes in blocks {
                let record = Record::decode(&bytes)?;
                let cert = NodeCert::from_record(&record)?;
                outln!("cert #{} {} {} ({})", cert.serial, cert.division, cert.name, cert.level.as_str())?;
                outln!("  key     {}", cert.key)?;
                outln!("  issuer  {}", cert.issuer)?;
            }
        }
        CertCommand::Issue { .. } | CertCommand::List { .. } | CertCommand::Revoke { .. } | CertCommand::Verify { .. } => {
            bail!("this certificate command needs a node")
        }
    }
    Ok(())
}

/// Checks the certificate chain in the file `path` against the city root key.
fn verify_chain_file(path: &std::path::Path, root: &zongzhi_protocol::NodeId) -> anyhow::Result<()> {
    use zongzhi_protocol::Record;
    use zongzhi_protocol::cert::{RECORDS_ARMOR, dearmor_all};
    let text = out::read_input_string(path)?;
    let chain: Vec<Record> = dearmor_all(RECORDS_ARMOR, &text).iter().map(|b| Record::decode(b)).collect::<Result<_, _>>()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let cert = zongzhi_protocol::trust::verify_chain(&chain, root, now)?;
    outln!("valid: {} {} chains to the root", cert.division, cert.name)?;
    Ok(())
}

/// The KPIs the statistics table shows unless `--kpi` names others: the
/// plan's figures. (`--json` and `--csv` carry every KPI.)
pub const TABLE_KPIS: &[&str] = &["satisfaction", "resolution_rate", "local_resolution", "resolution_on_time", "overdue_rate"];

/// A statistics table that fits a terminal: rank, group, the counts, 越级
/// beside its baseline, and the KPIs chosen (by default [`TABLE_KPIS`]),
/// each with its target (✓/✗); then their definitions in Chinese.
fn print_stats(v: &Value, names: &table::UnitNames, chosen: Option<&[String]>) -> anyhow::Result<()> {
    outln!("{} {}  {}  按{}", s(&v["scope"]), s(&v["scope_name"]), s(&v["period"]), by_zh(v["by"].as_str().unwrap_or("")))?;
    let shown = |k: &str| match chosen {
        Some(list) => list.iter().any(|c| c == k || c == "all"),
        None => TABLE_KPIS.contains(&k),
    };
    let defs: Vec<&Value> = v["definitions"].as_array().into_iter().flatten().filter(|d| shown(d["kpi"].as_str().unwrap_or(""))).collect();
    let kpis: Vec<(String, String)> = defs.iter().map(|d| (s(&d["kpi"]), s(&d["name"]))).collect();
    let mut header: Vec<&str> = vec!["排名", "单位/分组", "受理", "办结", "超期未结", "越级(较基期)"];
    header.extend(kpis.iter().map(|(_, n)| n.as_str()));
    let cell = |row: &Value, k: &str| -> String {
        let x = &row["kpis"][k];
        let Some(val) = x["value"].as_f64() else { return "—".into() };
        let shown = if k == "avg_handling_days" { format!("{val:.1}") } else { format!("{:.1}%", val * 100.0) };
        match x["meets"].as_bool() {
            Some(true) => format!("{shown} ✓"),
            Some(false) => format!("{shown} ✗"),
            None => shown,
        }
    };
    let skip = |row: &Value| -> String {
        let x = &row["skip_level"];
        let count = x["count"].as_i64().unwrap_or(0);
        match x["change"].as_f64() {
            Some(c) => format!("{count} ({:+.0}%{})", c * 100.0, if x["meets"] == json!(true) { " ✓" } else { " ✗" }),
            None => count.to_string(),
        }
    };
    // Units by their short names (categories and channels keep theirs).
    let by_unit = matches!(v["by"].as_str(), Some("unit" | "county" | "township" | "village"));
    let line = |rank: String, group: String, name: String, row: &Value| -> Vec<String> {
        let name = if by_unit && group.len() == 12 {
            names.short_or(&group, &name)
        } else if name.is_empty() {
            group
        } else {
            name
        };
        let mut r = vec![rank, table::truncate(&name, 16)];
        for c in ["received", "resolved", "open_overdue"] {
            r.push(s(&row["counts"][c]));
        }
        r.push(skip(row));
        r.extend(kpis.iter().map(|(k, _)| cell(row, k)));
        r
    };
    let mut rows: Vec<Vec<String>> =
        v["rows"].as_array().into_iter().flatten().map(|r| line(r["rank"].as_u64().map(|x| x.to_string()).unwrap_or_default(), s(&r["group"]), s(&r["name"]), r)).collect();
    rows.push(line(String::new(), "合计".into(), "合计".into(), &v["total"]));
    out!("{}", table::render(&header, &rows))?;
    outln!("基期 {}；未列出的指标：--kpi all 或 --kpi <代码,…>（排名按第一个指标）", s(&v["baseline_period"]))?;
    for d in &defs {
        let text = d["definition_zh"].as_str().filter(|t| !t.is_empty()).unwrap_or_else(|| d["definition"].as_str().unwrap_or(""));
        outln!("  {}：{}", s(&d["name"]), table::wrap(text, 76).replace('\n', "\n    "))?;
    }
    if let Some(t) = v["skip_level_definition"].as_str() {
        outln!("  {}", table::wrap(t, 78).replace('\n', "\n    "))?;
    }
    Ok(())
}

/// A grouping's name in the table's title.
fn by_zh(by: &str) -> &str {
    match by {
        "unit" => "单位",
        "level" => "层级",
        "county" => "区县",
        "township" => "乡镇街道",
        "village" => "村社区",
        "category" => "类别",
        "channel" => "渠道",
        other => other,
    }
}
