//! Citizen notifications (短信/回调): the receipt of a filing, public
//! progress notes, the resolution and the invitation to rate, sent to the
//! complainant's phone through an HTTP webhook (an SMS gateway's HTTP
//! interface) or written to the log.
//!
//! A worker tails this node's feed from a cursor kept in `meta`
//! ([`meta::NOTIFY_CURSOR`](crate::store::meta::NOTIFY_CURSOR)). For each
//! step of a case this center filed (it alone holds the complainant's
//! contact) whose contact has a phone number, it renders the message and
//! stores it in the outbox; the entries of a stretch of the feed, the
//! deletion of the secrets the ledger left for those steps
//! ([`Batch::put_notify_secret`](crate::store::Batch::put_notify_secret))
//! and the advanced cursor are **one** write batch, so a crash neither
//! loses nor repeats a message. Delivery then takes the outbox oldest
//! first: delivered on a 2xx answer; otherwise retried after a delay that
//! doubles from `retry_initial_secs` up to `retry_max_secs` (jittered),
//! with the attempts and the last error kept on the entry, until the
//! message is `give_up_after_hours` old and is kept as failed. After a
//! failure the worker waits before trying the next message too (the
//! gateway is likely down), the wait doubling with consecutive failures.
//! Delivered and failed entries keep no phone number or text, only the
//! masked number and what happened; they are pruned after 7 and 30 days.
//!
//! Files: `templates.rs` (the four templates, variables, rendering),
//! `adapter.rs` (webhook and log). `GET /api/notifications` lists the
//! outbox (`api/notifications.rs`).

pub mod adapter;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zongzhi_protocol::case::{Contact, mask_keep};
use zongzhi_protocol::{Action, Record, RecordId, Status};

use crate::context::Context;
use crate::store::{OutboxState, Store};
pub use adapter::{Adapter, Message, Webhook};
pub use templates::{Kind, Template, Templates, Var};

/// `[notify]` in the node's config. Absent: no notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `webhook` (an HTTP POST per message; an SMS gateway is a webhook
    /// with the gateway's URL) or `log` (tests and the demo).
    pub adapter: AdapterKind,
    /// The webhook's URL (`http://host[:port]/path`).
    #[serde(default)]
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default)]
    pub token: Option<Token>,
    /// The public progress page, e.g. `https://city.example/public/`
    /// (`{public_url}`, and the base of `{rating_link}`); `[public] url`
    /// when not set here.
    #[serde(default)]
    pub public_url: Option<String>,
    /// A message not delivered this many hours after its step is given up
    /// and kept as failed (default 72).
    #[serde(default = "default_give_up_hours")]
    pub give_up_after_hours: u64,
    /// Seconds a webhook request may take, connection included (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The wait after a message's first failed attempt (default 5 s),
    /// doubling with each further failure up to `retry_max_secs` (default
    /// 600 s).
    #[serde(default = "default_retry_initial")]
    pub retry_initial_secs: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    /// Texts replacing the default templates.
    #[serde(default)]
    pub templates: TemplateTexts,
}

fn default_give_up_hours() -> u64 {
    72
}

fn default_timeout() -> u64 {
    10
}

fn default_retry_initial() -> u64 {
    5
}

fn default_retry_max() -> u64 {
    600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Webhook,
    Log,
}

/// The webhook's bearer token: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// `[notify.templates]`: any of the four, replacing its default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateTexts {
    pub receipt: Option<String>,
    pub progress: Option<String>,
    pub resolution: Option<String>,
    pub rating_invitation: Option<String>,
    pub declined: Option<String>,
    pub withdrawn: Option<String>,
    pub suspended: Option<String>,
    pub resumed: Option<String>,
}

impl TemplateTexts {
    fn get(&self, kind: Kind) -> Option<String> {
        match kind {
            Kind::Receipt => self.receipt.clone(),
            Kind::Progress => self.progress.clone(),
            Kind::Resolution => self.resolution.clone(),
            Kind::RatingInvitation => self.rating_invitation.clone(),
            Kind::Declined => self.declined.clone(),
            Kind::Withdrawn => self.withdrawn.clone(),
            Kind::Suspended => self.suspended.clone(),
            Kind::Resumed => self.resumed.clone(),
            Kind::Callback => None,
        }
    }
}

/// Delivered entries are kept this long (for `GET /api/notifications`).
const KEEP_DELIVERED_MS: u64 = 7 * 24 * 3600 * 1000;
/// Failed entries are kept this long.
const KEEP_FAILED_MS: u64 = 30 * 24 * 3600 * 1000;
/// Feed records read per write batch of the outbox.
const FEED_CHUNK: usize = 256;
/// The longest the worker sleeps without looking at the outbox.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The notifications of one node: its configuration, checked.
#[derive(Debug)]
pub struct Notifier {
    pub adapter: Adapter,
    pub templates: Templates,
    /// `public_url` ("" when not set).
    pub public_url: String,
    /// This center's name (`{unit}` of its own steps when it holds no
    /// certificate naming it).
    pub name: String,
    pub give_up_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Systems that filed cases here and want status callbacks.
    pub integrations: Arc<crate::integration::Integrations>,
    /// How long a callback request may take.
    pub timeout: Duration,
}

impl Notifier {
    /// Checks `[notify]`: the adapter's settings, the templates (unknown
    /// variables are refused), the delays. The message says what to fix.
    /// `public_page` is the public page's address from `[public]`, the
    /// default of `public_url`.
    pub fn from_config(cfg: &NotifyConfig, name: &str, public_page: Option<&str>) -> Result<Notifier, String> {
        let adapter = match cfg.adapter {
            AdapterKind::Webhook => {
                let url = cfg.url.as_deref().filter(|u| !u.trim().is_empty()).ok_or("[notify] adapter = \"webhook\" needs url (the gateway's or receiver's http:// address)")?;
                Adapter::Webhook(Webhook::new(url.trim(), cfg.token.as_ref().map(|t| t.0.clone()), Duration::from_secs(cfg.timeout_secs))?)
            }
            AdapterKind::Log => {
                if cfg.url.is_some() {
                    tracing::warn!("[notify] adapter = \"log\": url is not used");
                }
                Adapter::Log
            }
        };
        if cfg.timeout_secs == 0 || cfg.retry_initial_secs == 0 {
            return Err("[notify] timeout_secs and retry_initial_secs must be at least 1".into());
        }
        if cfg.retry_max_secs < cfg.retry_initial_secs {
            return Err("[notify] retry_max_secs must not be less than retry_initial_secs".into());
        }
        if cfg.give_up_after_hours == 0 {
            return Err("[notify] give_up_after_hours must be at least 1".into());
        }
        let public_url = cfg.public_url.as_deref().or(public_page).unwrap_or_default().trim().to_string();
        let web = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        if !public_url.is_empty() && !web(&public_url) {
            return Err(format!("[notify] public_url = \"{public_url}\" must start with https:// (or http://)"));
        }
        let templates = Templates::new(|k| cfg.templates.get(k)).map_err(|e| format!("[notify.templates] {e}"))?;
        Ok(Notifier {
            adapter,
            templates,
            public_url,
            name: name.to_string(),
            give_up_ms: cfg.give_up_after_hours.saturating_mul(3_600_000),
            retry_initial_ms: cfg.retry_initial_secs.saturating_mul(1000),
            retry_max_ms: cfg.retry_max_secs.saturating_mul(1000),
            integrations: Arc::default(),
            timeout: Duration::from_secs(cfg.timeout_secs),
        })
    }

    /// Without `[notify]`: the worker only queues and delivers integration
    /// callbacks, with the default delays (5 s doubling to 600 s, given up
    /// after 72 h).
    pub fn callbacks_only(name: &str) -> Result<Notifier, String> {
        Ok(Notifier {
            adapter: Adapter::Off,
            templates: Templates::new(|_| None)?,
            public_url: String::new(),
            name: name.to_string(),
            give_up_ms: default_give_up_hours() * 3_600_000,
            retry_initial_ms: default_retry_initial() * 1000,
            retry_max_ms: default_retry_max() * 1000,
            integrations: Arc::default(),
            timeout: Duration::from_secs(default_timeout()),
        })
    }

    /// The same with the systems that get callbacks.
    pub fn with_integrations(self, integrations: Arc<crate::integration::Integrations>) -> Notifier {
        Notifier { integrations, ..self }
    }

    /// The adapter's name, as the API shows it.
    pub fn adapter_name(&self) -> &'static str {
        match self.adapter {
            Adapter::Webhook(_) => "webhook",
            Adapter::Log => "log",
            Adapter::Off => "off",
        }
    }

    /// The wait after the `attempts`-th failed attempt: `retry_initial`
    /// doubled per earlier failure, capped at `retry_max`, times a jitter
    /// factor in [0.75, 1.25) (`jitter` in [0, 1)) so that messages that
    /// failed together do not retry together.
    pub fn delay_ms(&self, attempts: u32, jitter: f64) -> u64 {
        let doublings = attempts.saturating_sub(1).min(40);
        let base = self.retry_initial_ms.saturating_mul(1u64 << doublings).min(self.retry_max_ms);
        ((base as f64) * (0.75 + jitter.clamp(0.0, 1.0) / 2.0)) as u64
    }
}

/// A random number in [0, 1) for the jitter.
fn jitter() -> f64 {
    (rand_core::RngCore::next_u32(&mut rand_core::OsRng) as f64) / (u32::MAX as f64 + 1.0)
}

/// One message in the outbox (JSON in `notify_outbox`, keyed by the
/// step's feed position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The step's record id (hex): the message's id for the gateway.
    pub id: String,
    pub template: Kind,
    /// The case id (hex) and number.
    pub case: String,
    pub case_number: String,
    /// The phone number (digits); emptied once delivered or given up.
    pub to: String,
    /// The phone number as shown (`138****1234`).
    pub to_masked: String,
    /// The rendered message; emptied once delivered or given up.
    pub text: String,
    pub created_ms: u64,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub done_ms: Option<u64>,
}

/// The message `template` of a step, with the values its variables take.
struct Values<'a> {
    number: &'a str,
    title: &'a str,
    unit: String,
    note: &'a str,
    reply: &'a str,
    public_url: &'a str,
    secrets: &'a [(String, String)],
    /// The decisions' values (referral, guidance, reason, date).
    extra: Vec<(Var, String)>,
}

impl Values<'_> {
    fn secret(&self, name: &str) -> String {
        self.secrets.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    fn get(&self, v: Var) -> String {
        match v {
            Var::Number => self.number.into(),
            Var::Title => self.title.into(),
            Var::Unit => self.unit.clone(),
            Var::Note => self.note.into(),
            Var::Reply => self.reply.into(),
            Var::PublicUrl => self.public_url.into(),
            Var::Referral | Var::Guidance | Var::Reason | Var::Date => self.extra.iter().find(|(x, _)| *x == v).map(|(_, s)| s.clone()).unwrap_or_default(),
            Var::QueryCode => self.secret("query_code"),
            Var::RatingToken => self.secret("rating_token"),
            Var::RatingLink => {
                let given = self.secret("rating_link");
                let token = self.secret("rating_token");
                if !given.is_empty() {
                    given
                } else if !token.is_empty() && !self.public_url.is_empty() {
                    format!("{}#n={}&r={token}", self.public_url.trim_end_matches('#'), self.number)
                } else {
                    String::new()
                }
            }
        }
    }
}

impl Notifier {
    /// The outbox entry a stored record calls for, if any: a filing, a
    /// public progress note, a resolution or a feedback on a case this
    /// center filed, whose complainant left a phone number.
    pub fn entry_for(&self, ctx: &Context, id: &RecordId, bytes: &[u8], secrets: &[(String, String)], now: u64) -> crate::store::Result<Option<Entry>> {
        let Ok(record) = Record::decode_unverified(bytes) else { return Ok(None) };
        let Some(event) = record.case_event() else { return Ok(None) };
        let case = event.case_id(*id);
        // A case another system filed is told to that system (which speaks
        // to its citizen), never by SMS from here.
        if let Some(source) = crate::integration::source_of(&ctx.store, &case)? {
            return self.callback_entry(ctx, id, &record, case, source, now);
        }
        if matches!(self.adapter, Adapter::Off) {
            return Ok(None);
        }
        let (kind, note, reply) = match &event.action {
            Action::File(_) => (Kind::Receipt, "", ""),
            Action::Progress { note, public: true } => (Kind::Progress, note.as_str(), ""),
            Action::Resolve { public_reply, .. } => (Kind::Resolution, "", public_reply.as_str()),
            Action::Feedback { .. } => (Kind::RatingInvitation, "", ""),
            Action::Decline { .. } => (Kind::Declined, "", ""),
            Action::Withdraw { confirmation, .. } => (Kind::Withdrawn, confirmation.zh(), ""),
            Action::Suspend { .. } => (Kind::Suspended, "", ""),
            Action::Resume { .. } => (Kind::Resumed, "", ""),
            _ => return Ok(None),
        };
        let Some(summary) = ctx.store.case_summary(&case)? else { return Ok(None) };
        let extra = decision_values(ctx, &event.action, event.policy, &summary);
        if summary.filed_by != ctx.unit || summary.status == Status::Void {
            return Ok(None);
        }
        let Some(phone) = phone_of(&ctx.store, summary.contact)? else { return Ok(None) };
        let unit = match ctx.trust().member(&record.author) {
            Some(m) => m.cert.name.clone(),
            None if event.unit == ctx.unit => self.name.clone(),
            None => event.unit.to_string(),
        };
        let values = Values { number: &summary.number, title: &summary.title, unit, note, reply, public_url: &self.public_url, secrets, extra };
        let text = self.templates.get(kind).render(|v| values.get(v));
        Ok(Some(Entry {
            id: id.to_string(),
            template: kind,
            case: case.to_string(),
            case_number: summary.number.clone(),
            to_masked: mask_keep(&phone, 3, 4),
            to: phone,
            text,
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
            done_ms: None,
        }))
    }
}

/// The values a decision's message names: the referral and its guidance,
/// the reason, the day (of the policy version the step named).
fn decision_values(ctx: &Context, action: &Action, version: u32, summary: &crate::summary::CaseSummary) -> Vec<(Var, String)> {
    let policies = ctx.policies();
    let d = &policies.rules(version).policy.decisions;
    let day = |ms: u64| zongzhi_protocol::policy::format_china(ms).get(..10).unwrap_or_default().to_string();
    match action {
        Action::Decline { referral, reason } => {
            let r = d.referral(referral);
            vec![(Var::Reason, reason.clone()), (Var::Referral, r.map(|r| r.name.clone()).unwrap_or_else(|| referral.clone())), (Var::Guidance, r.map(|r| r.guidance.clone()).unwrap_or_default())]
        }
        Action::Suspend { reason, expected_ms, .. } => {
            vec![(Var::Reason, d.suspension_reason(reason).map(|r| r.name.clone()).unwrap_or_else(|| reason.clone())), (Var::Date, day(*expected_ms))]
        }
        Action::Resume { .. } => summary
            .running
            .iter()
            .find(|r| matches!(r.kind, zongzhi_protocol::workflow::DeadlineKind::Resolution | zongzhi_protocol::workflow::DeadlineKind::Rehandle))
            .map(|r| vec![(Var::Date, day(r.due_ms))])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl Notifier {
    /// The callback a step of a case filed by another system calls for,
    /// if that system has a `callback_url`: the step and the case's status
    /// as JSON (`Entry::text`), addressed to the system (`Entry::to`).
    fn callback_entry(&self, ctx: &Context, id: &RecordId, record: &Record, case: RecordId, source: (String, String), now: u64) -> crate::store::Result<Option<Entry>> {
        let (system, reference) = source;
        if self.integrations.by_name(&system).and_then(|s| s.callback.as_ref()).is_none() {
            return Ok(None);
        }
        let Some(event) = record.case_event() else { return Ok(None) };
        let Some(summary) = ctx.store.case_summary(&case)? else { return Ok(None) };
        let unit_name = ctx.trust().member(&record.author).map(|m| m.cert.name.clone()).unwrap_or_default();
        let mut body = serde_json::json!({
            "id": id.to_string(),
            "system": system,
            "external_ref": reference,
            "case_id": case.to_string(),
            "number": summary.number,
            "action": event.action.as_str(),
            "action_zh": event.action.zh(),
            "status": summary.status.as_str(),
            "status_zh": summary.status.zh(),
            "unit": event.unit.to_string(),
            "unit_name": unit_name,
            "time": crate::api::time(record.header.hlc.wall_ms),
        });
        match &event.action {
            Action::Resolve { public_reply, .. } => body["public_reply"] = serde_json::json!(public_reply),
            Action::Progress { note, public: true } => body["note"] = serde_json::json!(note),
            _ => {}
        }
        Ok(Some(Entry {
            id: id.to_string(),
            template: Kind::Callback,
            case: case.to_string(),
            case_number: summary.number.clone(),
            to_masked: system.clone(),
            to: system,
            text: body.to_string(),
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
            done_ms: None,
        }))
    }

    /// Delivers one entry: a callback to its system, else a message through the adapter.
    async fn deliver(&self, e: &Entry, now: u64) -> Result<(), String> {
        if e.template == Kind::Callback {
            let callback = self.integrations.by_name(&e.to).and_then(|s| s.callback.as_ref()).ok_or_else(|| format!("no [[integration]] {} with a callback_url any more", e.to))?;
            return callback.deliver(&e.id, e.text.as_bytes(), now, self.timeout).await;
        }
        let created_at = crate::api::time(e.created_ms);
        let message = Message { id: &e.id, template: e.template.as_str(), to: &e.to, text: &e.text, case_number: &e.case_number, created_at: &created_at };
        self.adapter.deliver(&message).await
    }
}

/// The complainant's phone number (digits), if the contact is held and has one.
fn phone_of(store: &Store, contact: Option<zongzhi_protocol::BlobHash>) -> crate::store::Result<Option<String>> {
    let Some(hash) = contact else { return Ok(None) };
    let Some(bytes) = store.blob(&hash.0)? else { return Ok(None) };
    let Ok(contact) = Contact::from_bytes(&bytes) else { return Ok(None) };
    Ok(crate::index::normalize_phone(&contact.phone))
}

/// Passes the feed from the cursor to its head: queues the messages its
/// steps call for, deletes the secrets left for them and moves the cursor,
/// one write batch per stretch of the feed. Returns how many were queued.
pub fn enqueue(ctx: &Context, n: &Notifier, now: u64) -> crate::store::Result<usize> {
    let store = &ctx.store;
    let mut cursor = store.notify_cursor()?.unwrap_or(0);
    let mut queued = 0;
    loop {
        let records = store.feed_records(cursor + 1, FEED_CHUNK)?;
        let Some((last, _, _)) = records.last() else { return Ok(queued) };
        let last = *last;
        let mut b = store.batch();
        for (seq, id, bytes) in &records {
            let secrets = store.notify_secrets(id)?;
            for (name, _) in &secrets {
                b.delete_notify_secret(id, name);
            }
            if let Some(entry) = n.entry_for(ctx, id, bytes, &secrets, now)? {
                b.put_notify_entry(OutboxState::Pending, *seq, &entry);
                queued += 1;
            }
        }
        b.put_notify_cursor(last);
        store.commit(b)?;
        if queued > 0 {
            tracing::debug!(target: "zongzhi::notify", queued, upto = last, "messages queued");
        }
        cursor = last;
    }
}

/// Moves a pending entry to `state` (delivered or failed), keeping no
/// phone number or text.
fn finish(store: &Store, seq: u64, mut e: Entry, state: OutboxState, now: u64) -> crate::store::Result<()> {
    e.to.clear();
    e.text.clear();
    e.done_ms = Some(now);
    let mut b = store.batch();
    b.delete_notify_entry(OutboxState::Pending, seq);
    b.put_notify_entry(state, seq, &e);
    store.commit(b)
}

/// Gives up the pending messages older than `give_up_after_hours` and
/// returns the rest (oldest first).
pub fn give_up_old(ctx: &Context, n: &Notifier, now: u64) -> crate::store::Result<Vec<(u64, Entry)>> {
    let pending: Vec<(u64, Entry)> = ctx.store.notify_entries(OutboxState::Pending, usize::MAX)?;
    let mut kept = Vec::with_capacity(pending.len());
    for (seq, mut e) in pending {
        if now >= e.created_ms.saturating_add(n.give_up_ms) {
            let why = e.last_error.take().unwrap_or_else(|| "not attempted".into());
            e.last_error = Some(format!("gave up after {} attempts in {} hours; last: {why}", e.attempts, n.give_up_ms / 3_600_000));
            tracing::warn!(target: "zongzhi::notify", case = %e.case_number, template = %e.template, attempts = e.attempts, "message given up: {}", e.last_error.as_deref().unwrap_or(""));
            finish(&ctx.store, seq, e, OutboxState::Failed, now)?;
            ctx.metrics.notify_failed();
        } else {
            kept.push((seq, e));
        }
    }
    Ok(kept)
}

/// Deletes delivered entries older than 7 days and failed ones older than 30.
pub fn prune(store: &Store, now: u64) -> crate::store::Result<usize> {
    let mut b = store.batch();
    let mut n = 0;
    for (state, keep) in [(OutboxState::Delivered, KEEP_DELIVERED_MS), (OutboxState::Failed, KEEP_FAILED_MS)] {
        for (seq, e) in store.notify_entries::<Entry>(state, usize::MAX)? {
            if e.done_ms.unwrap_or(e.created_ms).saturating_add(keep) < now {
                b.delete_notify_entry(state, seq);
                n += 1;
            }
        }
    }
    if n > 0 {
        store.commit(b)?;
    }
    Ok(n)
}

/// After a failure the next message waits too: the gateway is likely down.
#[derive(Debug, Default)]
struct Gate {
    failures: u32,
    closed_until_ms: u64,
}

/// Tries the due messages of `pending` (oldest first) until one fails;
/// returns when to look again (none: nothing is pending).
async fn deliver_due(ctx: &Context, n: &Arc<Notifier>, pending: Vec<(u64, Entry)>, gate: &mut Gate) -> Option<u64> {
    let mut wake: Option<u64> = None;
    let mut left = pending.len() as u64;
    let mut stopped = false;
    // Systems whose earlier callback still waits: their later ones wait
    // behind it, so a system hears a case's steps in order.
    let mut held: std::collections::HashSet<String> = Default::default();
    for (seq, mut e) in pending {
        let now = ctx.clock.now_ms();
        let callback = e.template == Kind::Callback;
        if stopped || e.next_attempt_ms > now || gate.closed_until_ms > now || (callback && held.contains(&e.to)) {
            wake = Some(wake.map_or(e.next_attempt_ms, |w| w.min(e.next_attempt_ms)).max(gate.closed_until_ms));
            if callback {
                held.insert(e.to.clone());
            }
            continue;
        }
        let result = n.deliver(&e, now).await;
        let now = ctx.clock.now_ms();
        e.attempts += 1;
        let store = ctx.store.clone();
        let outcome = match result {
            Ok(()) => {
                gate.failures = 0;
                gate.closed_until_ms = 0;
                left -= 1;
                tracing::info!(target: "zongzhi::notify", case = %e.case_number, template = %e.template, attempts = e.attempts, "message delivered");
                ctx.metrics.notify_delivered();
                tokio::task::spawn_blocking(move || finish(&store, seq, e, OutboxState::Delivered, now)).await
            }
            Err(why) => {
                gate.failures += 1;
                gate.closed_until_ms = now + n.delay_ms(gate.failures, jitter());
                e.next_attempt_ms = now + n.delay_ms(e.attempts, jitter());
                wake = Some(wake.map_or(e.next_attempt_ms, |w| w.min(e.next_attempt_ms)).max(gate.closed_until_ms));
                stopped = true;
                tracing::warn!(target: "zongzhi::notify", case = %e.case_number, template = %e.template, attempts = e.attempts, "message not delivered, will retry: {why}");
                e.last_error = Some(why);
                ctx.metrics.notify_retry();
                tokio::task::spawn_blocking(move || {
                    let mut b = store.batch();
                    b.put_notify_entry(OutboxState::Pending, seq, &e);
                    store.commit(b)
                })
                .await
            }
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(target: "zongzhi::notify", "storing a delivery's outcome failed: {err}"),
            Err(err) => tracing::error!(target: "zongzhi::notify", "storing a delivery's outcome failed: {err}"),
        }
    }
    ctx.metrics.notify_queued(left);
    wake
}

/// Where a node that turns notifications on starts: the feed head at the
/// first start (steps taken before are not told), else the stored cursor.
/// Without `[notify]` the cursor and the secrets are dropped
/// ([`Store::notify_off`]).
pub fn prepare(store: &Store, on: bool) -> crate::store::Result<()> {
    if !on {
        return store.notify_off();
    }
    if store.notify_cursor()?.is_none() {
        let head = store.feed_len()?;
        let mut b = store.batch();
        b.put_notify_cursor(head);
        store.commit(b)?;
        tracing::info!(target: "zongzhi::notify", "notifications start at feed position {head}: earlier steps are not notified");
    }
    Ok(())
}

/// Runs the worker until the node stops: on every new record and whenever
/// a retry falls due.
pub async fn run(ctx: Context, n: Arc<Notifier>) {
    let mut feed = ctx.feed.subscribe();
    let mut gate = Gate::default();
    let mut pruned_at = 0u64;
    loop {
        // Seen before the store is read: a record stored meanwhile wakes the next wait.
        feed.borrow_and_update();
        let now = ctx.clock.now_ms();
        let prune_now = now >= pruned_at + 3_600_000;
        let (c, nn) = (ctx.clone(), n.clone());
        let pass = tokio::task::spawn_blocking(move || -> crate::store::Result<Vec<(u64, Entry)>> {
            enqueue(&c, &nn, now)?;
            if prune_now {
                prune(&c.store, now)?;
            }
            give_up_old(&c, &nn, now)
        })
        .await;
        let pending = match pass {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(target: "zongzhi::notify", "notification pass failed (retrying in 5 s): {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => {
                tracing::error!(target: "zongzhi::notify", "notification pass panicked (retrying in 5 s): {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if prune_now {
            pruned_at = now;
        }
        let wake = deliver_due(&ctx, &n, pending, &mut gate).await;
        let now = ctx.clock.now_ms();
        let wait = wake.map_or(MAX_SLEEP, |at| Duration::from_millis(at.saturating_sub(now)).min(MAX_SLEEP));
        tokio::select! {
            changed = feed.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(wait).await;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests;
