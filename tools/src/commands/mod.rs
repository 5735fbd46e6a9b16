//! The commands of `zongzhi`, one function each: `main.rs` parses the
//! command line, [`dispatch`] picks the function, and each function talks to
//! the node through [`Ctx`].

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::client::{self, Client, SavedSession};
use crate::{
    CertCommand, Cli, Command, ExportCasesArgs, ExportCommand, ExtensionCommand, FileArgs, ListFilter, ReportsCommand, SyncCommand, UserCommand, certs, keys, policy, print_cases, print_stats,
    read_password, s, short_time, show_case, table, unit_names, urlencode, verify_chain_file,
};

mod admin;
mod cases;
mod figures;
mod session;

/// What every command needs: the client for the node (with the saved
/// session's token if it was issued by that node), the output mode, and
/// where the session is saved.
pub struct Ctx {
    pub c: Client,
    pub json: bool,
    pub node: String,
    pub session_file: PathBuf,
    /// The session file as read.
    pub saved: Option<SavedSession>,
    /// The certificate trusted for an https:// node: `--cacert`, else the
    /// one saved at login to this node.
    pub cacert: Option<PathBuf>,
}

impl Ctx {
    /// `node_from_env`: `--node` came from ZONGZHI_NODE (the error names it).
    pub fn new(cli: &Cli, node_from_env: bool) -> anyhow::Result<Ctx> {
        let session_file = client::session_path(cli.session.clone());
        let saved = client::load_session(&session_file);
        let node = match &cli.node {
            Some(given) => client::node_url(given).with_context(|| {
                let option = if node_from_env { "ZONGZHI_NODE (--node)" } else { "--node" };
                format!("{option} {given:?} is not a node address: give host:port (e.g. 127.0.0.1:7800) or a URL (e.g. http://127.0.0.1:7800)")
            })?,
            None => saved.as_ref().map(|s| s.node.clone()).unwrap_or_else(|| client::DEFAULT_NODE.to_string()),
        };
        // A saved token (and the certificate trusted at login) only for
        // the node it was issued by.
        let same = saved.as_ref().filter(|s| s.node == node);
        let token = same.and_then(|s| s.token.clone());
        let cacert = cli.cacert.clone().or_else(|| same.and_then(|s| s.cacert.clone()));
        if let Some(pem) = &cacert {
            client::set_ca_cert(pem.clone());
        }
        Ok(Ctx { c: Client::new(&node, token)?, json: cli.json, node, session_file, saved, cacert })
    }

    pub fn print(&self, v: &Value) -> anyhow::Result<()> {
        outln!("{}", serde_json::to_string_pretty(v)?)?;
        Ok(())
    }

    /// A workflow step on a case: the case's new state, or one line.
    pub fn act(&self, case: &str, body: Value) -> anyhow::Result<()> {
        self.c.require_login()?;
        let v = self.c.post(&format!("/api/cases/{}/actions", urlencode(case)), &body)?;
        if self.json {
            self.print(&v)
        } else {
            let last = v["timeline"].as_array().and_then(|t| t.last()).cloned().unwrap_or(Value::Null);
            outln!("{} {}: {} → {}", s(&v["number"]), s(&last["action_zh"]), s(&v["title"]), s(&v["status"]["name"]))?;
            Ok(())
        }
    }
}

/// One arm per command.
pub fn dispatch(cx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Login { user, password, recovery_code } => session::login(cx, user, password, recovery_code),
        Command::Logout => session::logout(cx),
        Command::Whoami => session::whoami(cx),
        Command::Health => session::health(cx),
        Command::Ready => session::ready(cx),
        Command::Policy { command } => policy::run(&cx.c, command, cx.json),
        Command::File(a) => cases::file(cx, a),
        Command::Queue { filter, limit, after } => cases::queue(cx, filter, limit, after),
        Command::Search { text, limit, after } => cases::search(cx, text, limit, after),
        Command::Show { case } => cases::show(cx, case),
        Command::SignFor { case } => cx.act(&case, json!({"action": "sign_for"})),
        Command::Route { case, window, requirements, due_at } => cx.act(&case, json!({"action": "route", "window": window, "requirements": requirements, "due_at": due_at})),
        Command::Dispatch { case, to, requirements, due_at } => cx.act(&case, json!({"action": "dispatch", "to": to, "requirements": requirements, "due_at": due_at})),
        Command::Escalate { case, reason } => cx.act(&case, json!({"action": "escalate", "reason": reason})),
        Command::Return { case, reason } => cx.act(&case, json!({"action": "return", "reason": reason})),
        Command::Reroute { case, window, to, reason } => {
            if window.is_none() && to.is_none() {
                bail!("give --window or --to");
            }
            cx.act(&case, json!({"action": "reroute", "window": window, "to": to, "reason": reason}))
        }
        Command::Helpers { case, windows, units } => cx.act(&case, json!({"action": "add_helpers", "windows": windows, "units": units})),
        Command::Progress { case, note, public } => cx.act(&case, json!({"action": "progress", "note": note, "public": public})),
        Command::Extension { command } => match command {
            ExtensionCommand::Request { case, days, reason } => cx.act(&case, json!({"action": "request_extension", "working_days": days, "reason": reason})),
            ExtensionCommand::Approve { case, note } => cx.act(&case, json!({"action": "approve_extension", "note": note})),
            ExtensionCommand::Refuse { case, note } => cx.act(&case, json!({"action": "refuse_extension", "note": note})),
        },
        Command::Supervise { case, grade, note } => cx.act(&case, json!({"action": "supervise", "grade": grade, "note": note})),
        Command::ReplySupervision { case, measures, notice } => cx.act(&case, json!({"action": "reply_supervision", "measures": measures, "notice": notice})),
        Command::Decline { case, referral, reason } => cx.act(&case, json!({"action": "decline", "referral": referral, "reason": reason})),
        Command::Withdraw { case, confirmation, reason } => cx.act(&case, json!({"action": "withdraw", "confirmation": confirmation, "reason": reason})),
        Command::Suspend { case, reason, note, expected } => cx.act(&case, json!({"action": "suspend", "reason": reason, "note": note, "expected_on": expected})),
        Command::Resume { case, note } => cx.act(&case, json!({"action": "resume", "note": note})),
        Command::Assist { case, windows, units, requirements } => cases::assist(cx, &case, &windows, &units, requirements),
        Command::AssistReply { case, reply, window, request } => cx.act(&case, json!({"action": "reply_assistance", "reply": reply, "window": window, "request": request})),
        Command::Mediate { case, held_on, mediators, attendees, notes } => {
            cx.act(&case, json!({"action": "mediation_session", "held_on": held_on, "mediators": mediators, "attendees": attendees, "notes": notes}))
        }
        Command::Agreement { case, file, scans, mediators, signed_on } => cases::agreement(cx, &case, &file, &scans, mediators, signed_on),
        Command::ConfirmRefer { case, court, note } => cx.act(&case, json!({"action": "refer_confirmation", "court": court, "note": note})),
        Command::ConfirmResult { case, confirmed, refused, ruling, ruled_on, note } => {
            if confirmed == refused {
                bail!("give exactly one of --confirmed or --refused");
            }
            cx.act(&case, json!({"action": "record_confirmation", "confirmed": confirmed, "ruling": ruling, "ruled_on": ruled_on, "note": note}))
        }
        Command::ReturnVisit { case, fulfilment, method, note } => cx.act(&case, json!({"action": "return_visit", "fulfilment": fulfilment, "method": method, "note": note})),
        Command::Resolve { case, reply, internal_note } => cx.act(&case, json!({"action": "resolve", "public_reply": reply, "internal_note": internal_note})),
        Command::Feedback { case, note, method, no_rating_invite } => {
            let mut body = json!({"action": "feedback", "note": note, "method": method});
            if no_rating_invite {
                body["invite_rating"] = json!(false);
            }
            cases::feedback(cx, &case, body)
        }
        Command::Rate { case, rating, result_rating, comment } => cx.act(&case, json!({"action": "rate", "rating": rating, "result_rating": result_rating, "comment": comment})),
        Command::Appeal { case, reason } => cx.act(&case, json!({"action": "appeal", "reason": reason})),
        Command::DecideAppeal { case, uphold, dismiss, note } => match (uphold, dismiss) {
            (true, false) => cx.act(&case, json!({"action": "uphold_appeal", "note": note})),
            (false, true) => cx.act(&case, json!({"action": "dismiss_appeal", "note": note})),
            _ => anyhow::bail!("give exactly one of --uphold or --dismiss"),
        },
        Command::VerifyReceipt { token, root, trust } => cases::verify_receipt(cx, &token, &root, &trust),
        Command::PublicUnlock { case } => cases::public_unlock(cx, &case),
        Command::Reopen { case, reason } => cx.act(&case, json!({"action": "reopen", "reason": reason})),
        Command::Merge { case, into } => cx.act(&case, json!({"action": "merge", "into": into})),
        Command::Archive { case } => cx.act(&case, json!({"action": "archive"})),
        Command::Attach { case, file, name, mime } => cases::attach(cx, case, file, name, mime),
        Command::Download { case, blob, out } => cases::download(cx, case, blob, out),
        Command::User { command } => admin::user(cx, command),
        Command::Integrity => admin::integrity(cx),
        Command::Key { command } => keys(command),
        Command::Cert { command: CertCommand::Issue { request, out, valid_days, yes } } => admin::cert_issue(cx, request, out, valid_days, yes),
        Command::Cert { command: CertCommand::List { all } } => admin::cert_list(cx, all),
        Command::Cert { command: CertCommand::Revoke { key, cutoff_seq, reason, dry_run } } => admin::cert_revoke(cx, key, cutoff_seq, reason, dry_run),
        Command::Cert { command: CertCommand::Verify { path, root } } => admin::cert_verify(cx, path, root),
        Command::Cert { command } => certs(command),
        Command::Stats { by, period, kpi, scope, csv } => figures::stats(cx, by, period, kpi, scope, csv),
        Command::Reports { command: ReportsCommand::Sign { period, supersede } } => figures::report_sign(cx, period, supersede),
        Command::Reports { command: ReportsCommand::Check { period, scope } } => figures::report_check(cx, period, scope),
        Command::Sync { command: SyncCommand::Status } => figures::sync_status(cx),
        Command::Fleet => figures::fleet(cx),
        Command::Export { command: ExportCommand::Cases(a) } => figures::export_cases(cx, a),
        Command::Completions { shell } => crate::completions(shell),
        Command::Man { out } => crate::man_pages(&out),
    }
}
