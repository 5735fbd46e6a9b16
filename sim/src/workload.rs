//! What the operators do: file cases, and move the cases their center owns
//! through the workflow (sign for, resolve, escalate, dispatch down,
//! feedback, rating, archive), and supervise cases below them. Steps are
//! chosen from each node's own view, so some are refused by the workflow
//! rules there (counted, not failures) and some conflict with steps other
//! nodes took meanwhile (settled by the fold once both are known).

use zongzhi_node::ledger::{Op, Outcome};
use zongzhi_node::summary::CaseSummary;
use zongzhi_protocol::case::{Channel, Complexity, Place, Rating, RequestType, SuperviseGrade, Urgency};
use zongzhi_protocol::{Action, Contact, Filing, Level, Status};

use crate::rng::Rng;
use crate::world::World;

const CATEGORIES: [&str; 4] = ["0202", "0101", "0301", "0702"];

/// One operator step somewhere in the tree.
pub fn step(world: &mut World, rng: &mut Rng) -> anyhow::Result<()> {
    let n = rng.below(world.nodes.len());
    let roll = rng.below(100);
    if world.is_revoked(n) {
        return Ok(());
    }
    let op = if roll < 30 {
        if !matches!(world.nodes[n].division.level(), Level::Township | Level::Village) {
            return Ok(());
        }
        Some(filing(rng, world.nodes[n].clock.now_ms()))
    } else if roll < 85 {
        advance(world, n, rng)?
    } else {
        supervise(world, n, rng)?
    };
    let Some(op) = op else { return Ok(()) };
    run(world, n, vec![op])
}

/// Runs steps at node `n` and counts what they did.
pub(crate) fn run(world: &mut World, n: usize, ops: Vec<Op>) -> anyhow::Result<()> {
    let citizen: Vec<bool> = ops.iter().map(|o| matches!(o, Op::Act { action: Action::CitizenRate { .. }, .. })).collect();
    let format4: Vec<bool> = ops.iter().map(|o| matches!(o, Op::Act { action, .. } if action.format_needed() >= 4)).collect();
    for (i, r) in world.nodes[n].process(ops).into_iter().enumerate() {
        match r {
            Ok(Outcome::Step(ack)) => {
                world.nodes[n].acked.push(ack.event);
                world.stats.steps_ok += 1;
                world.stats.citizen_ratings += u64::from(citizen.get(i).copied().unwrap_or(false));
                world.stats.format4_steps += u64::from(format4.get(i).copied().unwrap_or(false));
            }
            Ok(other) => anyhow::bail!("a step answered {other:?}"),
            Err(_) => world.stats.steps_refused += 1,
        }
    }
    Ok(())
}

pub(crate) fn filing(rng: &mut Rng, now: u64) -> Op {
    // A few complainants, so some filings repeat an earlier one.
    let who = rng.below(6);
    let contact = rng.chance(70).then(|| Contact { name: format!("居民{who}"), phone: format!("1381234{:04}", who), id_number: String::new(), address: format!("模拟小区{who}号") });
    let urgent = rng.chance(10);
    let filing = Filing {
        number: String::new(),
        title: format!("模拟案件{}", rng.below(1000)),
        content: "邻里纠纷，请求调解".into(),
        category: CATEGORIES[rng.below(CATEGORIES.len())].into(),
        request_type: RequestType::Complaint,
        channel: Channel::Phone,
        urgency: if urgent { Urgency::Urgent } else { Urgency::Normal },
        complexity: Complexity::General,
        place: Place::default(),
        occurred_at_ms: None,
        received_at_ms: now,
        people_involved: 1,
        amount_fen: None,
        contact: None,
        intake: Default::default(),
    };
    Op::File { filing: Box::new(filing), contact, query_code: None, operator: "模拟受理员".into() }
}

/// The node's supervision worker: the notices owed at the simulated time
/// (overdue clocks of cases it supervises), issued as the worker does.
pub fn auto_supervise(world: &mut World, n: usize) -> anyhow::Result<()> {
    let due = zongzhi_node::supervisor::scan(world.nodes[n].shared(), world.nodes[n].clock.now_ms())?;
    world.stats.auto_notices += due.len() as u64;
    for d in &due {
        run(world, n, vec![zongzhi_node::supervisor::notice(d)])?;
    }
    Ok(())
}

/// Cases a node holds that match `keep`.
fn held(world: &World, n: usize, keep: impl Fn(&CaseSummary) -> bool) -> anyhow::Result<Vec<CaseSummary>> {
    let mut out = Vec::new();
    world.nodes[n].shared().store.all_summaries(|s| {
        if keep(&s) {
            out.push(s);
        }
        true
    })?;
    Ok(out)
}

/// The next step on a case this node owns, or on a resolved case it holds:
/// every center that holds one tries to close the loop (feedback, rating,
/// re-handling, archiving), and the rules must leave exactly one of them
/// (the filing center) able to, so that two centers never both take the
/// step across a cut (checked by `honest_nodes_never_overrule_each_other`).
fn advance(world: &World, n: usize, rng: &mut Rng) -> anyhow::Result<Option<Op>> {
    let me = world.nodes[n].division;
    let format4 = world.nodes[n].shared().write_format() >= 4;
    let mine = held(world, n, |s| s.owner == me || matches!(s.status, Status::Resolved | Status::FedBack | Status::Rated) || (format4 && s.assists_owed.iter().any(|(_, u, _, _)| *u == me)))?;
    let Some(case) = rng.pick(&mine) else { return Ok(None) };
    let children: Vec<usize> = world.nodes[n].children.iter().copied().filter(|&c| !world.is_revoked(c)).collect();
    // The decisions of format 4, once the city finalized it: now and then.
    if format4 && let Some(action) = decision(world, case, me, &children, world.nodes[n].clock.now_ms(), rng) {
        return Ok(Some(Op::Act { case: case.id, action, operator: "模拟办理员".into() }));
    }
    // A 督办 waiting for this unit's reply (format 4, once the city
    // finalized): answered now and then.
    if let Some((notice, _)) = case.replies_owed.iter().find(|(_, to)| *to == me)
        && world.nodes[n].shared().write_format() >= 4
        && rng.chance(50)
    {
        let action = Action::ReplySupervision { notice: *notice, measures: "已落实整改措施".into() };
        return Ok(Some(Op::Act { case: case.id, action, operator: "模拟办理员".into() }));
    }
    let action = match case.status {
        Status::AwaitingReceipt => Action::SignFor,
        Status::Accepted | Status::Handling => {
            let r = rng.below(100);
            if r < 45 {
                Action::Resolve { public_reply: "已调解处理".into(), internal_note: String::new() }
            } else if r < 70 && world.nodes[n].parent.is_some() {
                Action::Escalate { reason: "本级无法解决".into() }
            } else if let Some(&c) = rng.pick(&children) {
                Action::Dispatch { to: world.nodes[c].division, requirements: "属地处置".into(), due_ms: None }
            } else {
                Action::Progress { note: "正在协调".into(), public: true }
            }
        }
        // Half the cases invite the citizen to rate; the citizen then rates
        // on the city's public page (the city signs it), and staff never
        // do. The token is derived from the case so the city can play the
        // citizen.
        Status::Resolved => Action::Feedback {
            method: "电话".into(),
            note: "已告知".into(),
            invite: citizen_invited(&case.id).then(|| zongzhi_protocol::case::RatingInvite { token_hash: zongzhi_protocol::case::rating_token_hash(&citizen_token(&case.id)), expires_ms: u64::MAX }),
        },
        Status::FedBack if citizen_invited(&case.id) => {
            if world.nodes[n].parent.is_some() {
                return Ok(None);
            }
            let rating = if rng.chance(85) { Rating::Satisfied } else { Rating::Unsatisfied };
            let action = Action::CitizenRate { token: citizen_token(&case.id), rating, result_rating: rating, comment: String::new() };
            return Ok(Some(Op::Act { case: case.id, action, operator: "群众".into() }));
        }
        Status::FedBack => Action::Rate { rating: if rng.chance(85) { Rating::Satisfied } else { Rating::Unsatisfied }, comment: String::new(), result_rating: None },
        Status::Rated if rng.chance(30) => Action::Reopen { reason: "当事人不满意，重新办理".into() },
        Status::Rated => Action::Archive,
        _ => return Ok(None),
    };
    Ok(Some(Op::Act { case: case.id, action, operator: "模拟办理员".into() }))
}

/// A step of format 4 on a case this node holds, sometimes: a helper
/// answers its 协办 request; the owner resumes a 中止 case, or (rarely)
/// declines, withdraws, pauses, asks a village below for help or records
/// a mediation session.
fn decision(world: &World, case: &CaseSummary, me: zongzhi_protocol::DivisionCode, children: &[usize], now: u64, rng: &mut Rng) -> Option<Action> {
    use zongzhi_protocol::case::{AssistTarget, Mediator, RouteTarget, WithdrawalConfirmation};
    if let Some((request, unit, _, _)) = case.assists_owed.iter().find(|(_, u, w, _)| *u == me && w.is_none())
        && rng.chance(60)
    {
        return Some(Action::ReplyAssistance { request: *request, helper: RouteTarget::Unit(*unit), reply: "已协助核实".into() });
    }
    if case.owner != me {
        return None;
    }
    let roll = rng.below(100);
    match case.status {
        Status::Suspended => (roll < 60).then(|| Action::Resume { note: "鉴定已完成".into() }),
        Status::AwaitingReceipt | Status::Accepted if roll < 3 => Some(Action::Decline { referral: "court".into(), reason: "属于法院受理范围".into() }),
        Status::Accepted | Status::Handling if roll < 5 => Some(Action::Withdraw { confirmation: WithdrawalConfirmation::Phone, reason: "当事人已和解".into() }),
        Status::Accepted | Status::Handling if roll < 10 => Some(Action::Suspend { reason: "appraisal".into(), note: "等待鉴定".into(), expected_ms: now + 10 * 86_400_000 }),
        Status::Accepted | Status::Handling if roll < 22 => {
            let &c = rng.pick(children)?;
            let helper = RouteTarget::Unit(world.nodes[c].division);
            Some(Action::RequestAssistance { helpers: vec![AssistTarget { helper, working_days: 3 }], requirements: "请协助核实".into() })
        }
        Status::Accepted | Status::Handling if roll < 26 => Some(Action::MediationSession {
            held_ms: now,
            mediators: vec![Mediator { account: "mediator".into(), name: "模拟调解员".into() }],
            attendees: "双方当事人".into(),
            notes: "双方陈述意见".into(),
        }),
        _ => None,
    }
}

/// Whether the simulated feedback on a case invites the citizen to rate.
fn citizen_invited(case: &zongzhi_protocol::RecordId) -> bool {
    case.0[0].is_multiple_of(2)
}

/// The simulated citizen's rating token of a case.
fn citizen_token(case: &zongzhi_protocol::RecordId) -> [u8; 16] {
    let mut t = [0u8; 16];
    t.copy_from_slice(&blake3::hash(&case.0).as_bytes()[..16]);
    t
}

/// An ancestor supervises an open case owned below it.
fn supervise(world: &World, n: usize, rng: &mut Rng) -> anyhow::Result<Option<Op>> {
    let me = world.nodes[n].division;
    if world.nodes[n].children.is_empty() {
        return Ok(None);
    }
    let below = held(world, n, |s| s.owner != me && me.contains(s.owner) && s.status.is_open())?;
    let Some(case) = rng.pick(&below) else { return Ok(None) };
    let grade = [SuperviseGrade::Normal, SuperviseGrade::Yellow, SuperviseGrade::Red][rng.below(3)];
    Ok(Some(Op::Act { case: case.id, action: Action::Supervise { grade, note: "请抓紧办理".into() }, operator: "模拟督办员".into() }))
}
