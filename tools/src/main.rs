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

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

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
    /// certificate, or the center's CA).
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
    /// Log in and save the session.
    Login {
        #[arg(long, short)]
        user: String,
        /// Without it the password is asked for on the terminal (not echoed),
        /// or read from standard input when that is a pipe or a file.
        #[arg(long)]
        password: Option<String>,
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
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The next page: the cursor the previous page printed.
        #[arg(long)]
        after: Option<String>,
    },
    /// Case detail and timeline.
    Show { case: String },
    /// 签收: sign for receipt.
    SignFor { case: String },
    /// 分流: route to a department window.
    Route {
        case: String,
        #[arg(long)]
        window: String,
        #[arg(long, default_value = "")]
        requirements: String,
        /// Deadline, RFC 3339 (e.g. 2026-12-01T18:00:00+08:00).
        #[arg(long)]
        due_at: Option<String>,
    },
    /// 下派: dispatch down to a lower center.
    Dispatch {
        case: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "")]
        requirements: String,
        #[arg(long)]
        due_at: Option<String>,
    },
    /// 上报: escalate to the level above.
    Escalate {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// 退单: return with reasons.
    Return {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// 改派: re-route to another window or unit.
    Reroute {
        case: String,
        #[arg(long, conflicts_with = "to")]
        window: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// 协办: add helper windows or units.
    Helpers {
        case: String,
        #[arg(long = "window")]
        windows: Vec<String>,
        #[arg(long = "unit")]
        units: Vec<String>,
    },
    /// Add a progress note.
    Progress {
        case: String,
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
        case: String,
        #[arg(long, value_enum)]
        grade: Grade,
        #[arg(long)]
        note: String,
    },
    /// 督办回复: reply to the 督办 waiting for this unit's reply, with the measures taken.
    ReplySupervision {
        case: String,
        /// The measures taken (整改措施).
        #[arg(long)]
        measures: String,
        /// The 督办 record's id (default: the one waiting for this unit).
        #[arg(long)]
        notice: Option<String>,
    },
    /// 办结: resolve.
    Resolve {
        case: String,
        /// The reply the complainant gets.
        #[arg(long)]
        reply: String,
        #[arg(long, default_value = "")]
        internal_note: String,
    },
    /// 反馈: record feedback given to the complainant.
    Feedback {
        case: String,
        #[arg(long)]
        note: String,
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
        case: String,
        #[arg(long, value_enum)]
        rating: Rating,
        /// The rating of the result, the same words.
        #[arg(long, value_enum)]
        result_rating: Option<Rating>,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// 差评申诉: the rated unit appeals an unfair 不满意 to the level above.
    Appeal {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// The level above decides an appeal (admin): --uphold sets the rating aside.
    DecideAppeal {
        case: String,
        #[arg(long)]
        uphold: bool,
        #[arg(long)]
        dismiss: bool,
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
    /// 重办: reopen a case rated 不满意.
    Reopen {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// 并单: merge this case into another (it is a duplicate).
    Merge {
        case: String,
        #[arg(long)]
        into: String,
    },
    /// 归档: archive.
    Archive { case: String },
    /// Attach evidence.
    Attach {
        case: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "application/octet-stream")]
        mime: String,
    },
    /// Download an attachment.
    Download {
        case: String,
        blob: String,
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
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    format: ExportFormat,
    /// The file to write.
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
    #[arg(long)]
    urgent: bool,
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
    StatsBy { Unit = "unit", Level = "level", County = "county", Township = "township", Village = "village", Category = "category", Channel = "channel" }
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
    Role { Admin = "admin", Operator = "operator", Viewer = "viewer" }
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
    Void = "void" }
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
    SupervisionReply = "supervision_reply" }
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
    #[arg(long)]
    title: String,
    #[arg(long)]
    content: String,
    /// Leaf category code (see `zongzhi policy`), e.g. 0202.
    #[arg(long)]
    category: String,
    #[arg(long = "type", value_enum, default_value_t = RequestTypeArg::Complaint)]
    request_type: RequestTypeArg,
    #[arg(long, value_enum, default_value_t = ChannelArg::OnSite)]
    channel: ChannelArg,
    #[arg(long)]
    urgent: bool,
    #[arg(long)]
    complex: bool,
    #[arg(long, default_value = "")]
    address: String,
    #[arg(long)]
    received_at: Option<String>,
    #[arg(long, default_value_t = 1)]
    people: u32,
    #[arg(long)]
    contact_name: Option<String>,
    #[arg(long, default_value = "")]
    contact_phone: String,
    #[arg(long, default_value = "")]
    contact_id: String,
    #[arg(long, default_value = "")]
    contact_address: String,
    /// 发生地: the division where the matter arose (default: this center's).
    #[arg(long)]
    arose_in: Option<String>,
}

#[derive(Subcommand)]
enum ExtensionCommand {
    Request {
        case: String,
        #[arg(long)]
        days: u32,
        #[arg(long)]
        reason: String,
    },
    Approve {
        case: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    Refuse {
        case: String,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; without --password the password is asked for on
    /// the terminal (not echoed), or read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum, default_value_t = Role::Operator)]
        role: Role,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long)]
        password: Option<String>,
    },
    List,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate an ed25519 key as PKCS#8 PEM (mode 0600).
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (node id) of a PEM key file.
    Show { path: PathBuf },
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
        #[arg(long, default_value_t = 3650)]
        valid_days: u32,
        /// Sign without asking (the request is still shown and checked).
        #[arg(long)]
        yes: bool,
    },
    /// Certificates the node knows (revoked ones with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Revoke a descendant's key; records after the cut-off are void everywhere.
    /// Prints what this center holds of the key and what the cut-off voids.
    Revoke {
        /// The key as `cert list` shows it (at least 8 hex digits, a unique prefix) or all 64 digits.
        #[arg(long)]
        key: String,
        /// Records of the key above this seq are void everywhere (default:
        /// the last this center holds of it; a higher one is refused).
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
    Show { path: PathBuf },
    /// Check a certificate chain file against the city root key.
    Verify {
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
    outln!(
        "状态 {}  承办 {}  窗口 {}",
        s(&v["status"]["name"]),
        unit_full(&v["owner"], &v["owner_name"], names),
        s(&v["window_name"])
    )?;
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
    obj.iter()
        .filter(|(_, v)| !v.is_null() && v.as_str() != Some(""))
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn keys(cmd: KeyCommand) -> anyhow::Result<()> {
    use zongzhi_protocol::NodeKey;
    match cmd {
        KeyCommand::Generate { out } => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key = NodeKey::generate(&mut rand_core::OsRng);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            f.write_all(key.to_pkcs8_pem()?.as_bytes())?;
            outln!("{}", key.id())?;
        }
        KeyCommand::Show { path } => {
            let pem = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let key = NodeKey::from_pkcs8_pem(&pem)?;
            outln!("{}  ({})", key.id(), key.id().fmt_short())?;
        }
    }
    Ok(())
}

fn certs(cmd: CertCommand) -> anyhow::Result<()> {
    use zongzhi_protocol::cert::{dearmor_all, EnrollmentRequest, NodeCert, RECORDS_ARMOR};
    use zongzhi_protocol::Record;
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
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
    use zongzhi_protocol::cert::{dearmor_all, RECORDS_ARMOR};
    use zongzhi_protocol::Record;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let chain: Vec<Record> = dearmor_all(RECORDS_ARMOR, &text)
        .iter()
        .map(|b| Record::decode(b))
        .collect::<Result<_, _>>()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let cert = zongzhi_protocol::trust::verify_chain(&chain, root, now)?;
    outln!("valid: {} {} chains to the root", cert.division, cert.name)?;
    Ok(())
}

/// A statistics table: counts, then each KPI with its target (✓/✗).
fn print_stats(v: &Value, names: &table::UnitNames) -> anyhow::Result<()> {
    outln!("{} {}  {}  按{}", s(&v["scope"]), s(&v["scope_name"]), s(&v["period"]), s(&v["by"]))?;
    let kpis: Vec<(String, String)> = v["definitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (s(&d["kpi"]), s(&d["name"])))
        .collect();
    let mut header: Vec<&str> = vec!["排名", "分组", "名称", "受理", "办结", "超期未结", "评价"];
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
    // Units by their short names (categories and channels keep theirs).
    let by_unit = matches!(v["by"].as_str(), Some("unit" | "county" | "township" | "village"));
    let line = |rank: String, group: String, name: String, row: &Value| -> Vec<String> {
        let name = if by_unit && group.len() == 12 { names.short_or(&group, &name) } else { name };
        let mut r = vec![rank, group, name];
        for c in ["received", "resolved", "open_overdue", "rated"] {
            r.push(s(&row["counts"][c]));
        }
        r.extend(kpis.iter().map(|(k, _)| cell(row, k)));
        r
    };
    let mut rows: Vec<Vec<String>> = v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| line(r["rank"].as_u64().map(|x| x.to_string()).unwrap_or_default(), s(&r["group"]), s(&r["name"]), r))
        .collect();
    rows.push(line(String::new(), "合计".into(), names.short_or(&s(&v["scope"]), v["scope_name"].as_str().unwrap_or("")), &v["total"]));
    out!("{}", table::render(&header, &rows))?;
    for d in v["definitions"].as_array().into_iter().flatten() {
        outln!("  {}: {}", s(&d["name"]), s(&d["definition"]))?;
    }
    Ok(())
}
