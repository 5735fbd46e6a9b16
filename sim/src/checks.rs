//! What must hold once every link has been healed and replication has
//! settled. The city holds every case event of the tree, so its view is
//! the reference.

use std::collections::BTreeMap;

use anyhow::bail;
use zongzhi_node::summary::CaseSummary;
use zongzhi_protocol::RecordId;
use zongzhi_protocol::sync::scope;

use crate::world::World;

/// Every check; the first failure is returned.
pub fn all(world: &World) -> anyhow::Result<()> {
    nothing_waits(world)?;
    acknowledged_steps_survive(world)?;
    each_node_holds_its_scope_in_the_citys_state(world)?;
    integrity(world)?;
    honest_nodes_never_overrule_each_other(world)?;
    the_policy_reached_every_node(world)?;
    records_above_the_cutoff_are_void_everywhere(world)?;
    alarms_only_for_the_equivocation(world)?;
    the_restored_township_got_its_chain_back(world)?;
    crate::upgrades::check(world)?;
    // Last: it rewrites the derived state of every store.
    reindex_changes_nothing(world)?;
    Ok(())
}

/// The township restored from a backup was confirmed by its county, and
/// its own chain reaches past where it was when its store was lost: it
/// got back what it signed after the backup and went on from there (a
/// node that signed from the backup's head would have raised an
/// equivocation alarm above, and lost acknowledged steps).
pub fn the_restored_township_got_its_chain_back(world: &World) -> anyhow::Result<()> {
    let Some((t, _, at_loss)) = world.happened.restored else { return Ok(()) };
    let n = &world.nodes[t];
    let status = n.shared().recovery.status();
    if status.restoring {
        bail!("{} is still waiting for its restore to be confirmed: {status:?}", n.division);
    }
    let head = n.shared().store.chain_last(&n.id)?.map_or(0, |(s, _)| s);
    if head < at_loss {
        bail!("{}: its own chain ends at seq {head}, below the {at_loss} it had before the restore", n.division);
    }
    Ok(())
}

/// Rebuilding every node's derived state (queue, indexes, statistics,
/// summaries) from its records gives exactly what the incremental writes
/// built. Rewrites the stores, so it runs last. It found two defects: a
/// contact that came with a local filing did not file an earlier,
/// replicated case of the same person under the phone; and an earlier
/// filing that arrived after a later one left the later unmarked as a
/// repeat (the settling read one filing time of the span).
pub fn reindex_changes_nothing(world: &World) -> anyhow::Result<()> {
    for n in &world.nodes {
        if let Some(diff) = reindex_diff(n.shared())? {
            bail!("{}: reindex changed the derived state:\n{diff}", n.division);
        }
    }
    Ok(())
}

/// Rebuilds a node's derived state and describes what the rebuild changed
/// (`None`: nothing). Leaves the rebuilt state.
pub fn reindex_diff(shared: &zongzhi_node::context::Context) -> anyhow::Result<Option<String>> {
    let before = shared.store.derived_dump()?;
    zongzhi_node::ledger::reindex_reading(&shared.store, &shared.policies(), &shared.trust(), shared.caps.formats.1)?;
    let after = shared.store.derived_dump()?;
    if before == after {
        return Ok(None);
    }
    let only = |a: &[(String, Vec<u8>, Vec<u8>)], b: &[(String, Vec<u8>, Vec<u8>)]| {
        let b: std::collections::HashSet<_> = b.iter().collect();
        let lines: Vec<String> = a.iter().filter(|x| !b.contains(x)).map(|(cf, k, v)| format!("    {cf} {} = {}", hex::encode(k), hex::encode(v))).collect();
        let n = lines.len();
        let mut shown = lines.into_iter().take(12).collect::<Vec<_>>().join("\n");
        if n > 12 {
            shown.push_str(&format!("\n    … and {} more", n - 12));
        }
        shown
    };
    Ok(Some(format!("  {} entries as written, {} after reindex\n  only as written:\n{}\n  only after reindex:\n{}", before.len(), after.len(), only(&before, &after), only(&after, &before))))
}

/// Each step that moves a case on has one authority at a time (the owner;
/// after resolution the filing center; for an extension one decider), so
/// no honest node's acknowledged exclusive step is overruled by another's
/// (被覆盖), even across cuts and offline days. Steps that only add to a
/// case (a 督办 crossing the archiving) may be; they are counted.
pub fn honest_nodes_never_overrule_each_other(world: &World) -> anyhow::Result<usize> {
    let mut compatible = 0;
    for (id, _) in summaries(world, 0)? {
        let state = fold(world, 0, &id)?;
        for t in &state.timeline {
            let Some(winner) = t.overruled_by else { continue };
            if !t.action.is_exclusive() {
                compatible += 1;
                continue;
            }
            let w = state.timeline.iter().find(|x| x.id == winner).map(|x| format!("{}@{}", x.action.as_str(), x.unit)).unwrap_or_default();
            bail!("case {}: {}@{} was overruled (被覆盖) by {w}: two authorities took exclusive steps at once\n  {}", state.filing.number, t.action.as_str(), t.unit, timeline(world, 0, &id));
        }
    }
    Ok(compatible)
}

/// No record waits for a parent: every parent a record names was sent
/// (or could be asked for) and arrived.
pub fn nothing_waits(world: &World) -> anyhow::Result<()> {
    for n in &world.nodes {
        let waiting = n.shared().store.pending()?;
        if let Some((_, bytes)) = waiting.first() {
            bail!("{} still holds {} records waiting for their parents; the first: {}", n.division, waiting.len(), describe_waiting(world, bytes));
        }
    }
    Ok(())
}

/// A waiting record, what it waits for, and which nodes hold that.
fn describe_waiting(world: &World, bytes: &[u8]) -> String {
    let Ok(r) = zongzhi_protocol::Record::decode_unverified(bytes) else { return "(undecodable)".into() };
    let zongzhi_protocol::Body::CaseEvent(e) = &r.body else { return format!("a {:?} record", r.body) };
    let mut needed: Vec<RecordId> = e.parents.clone();
    needed.extend(e.case);
    // Each holder with the record's feed position there, and where the
    // holder's parent has read that feed up to.
    let holders = |id: &RecordId| -> Vec<String> {
        world
            .nodes
            .iter()
            .filter(|n| n.shared().store.has_record(id).unwrap_or(false))
            .map(|n| {
                let at = n.shared().store.record_seq(id).ok().flatten();
                let read = n.parent.and_then(|p| world.nodes[p].shared().store.cursor(&n.id, zongzhi_protocol::sync::Direction::Up as u8).ok().flatten()).map(|c| c.1);
                format!("{} (feed {at:?}, parent read up to {read:?})", n.division)
            })
            .collect()
    };
    let mut wants: Vec<String> = needed.iter().map(|id| format!("{} held by {:?}", id.fmt_short(), holders(id))).collect();
    // Who knows the certificate of the first missing record's author, and
    // where that certificate sits in each holder's feed.
    if let Some(missing) = needed.iter().find(|id| !world.city().shared().store.has_record(id).unwrap_or(true))
        && let Some(bytes) = world.nodes.iter().find_map(|n| n.shared().store.record_bytes(missing).ok().flatten())
        && let Ok(m) = zongzhi_protocol::Record::decode_unverified(&bytes)
    {
        let certs: Vec<String> = world
            .nodes
            .iter()
            .map(|n| {
                let chain = n.shared().trust().chain(&m.author).unwrap_or_default();
                let at: Vec<String> = chain.iter().map(|c| format!("{}@{:?}", c.fmt_short(), n.shared().store.record_seq(c).ok().flatten())).collect();
                format!("{}: {}", n.division, if chain.is_empty() { "unknown".into() } else { at.join("/") })
            })
            .collect();
        wants.push(format!("author {} certificate chain per node: {}", m.author.fmt_short(), certs.join("; ")));
    }
    format!("{} by {} (seq {}), needs [{}]", e.action.as_str(), e.unit, r.header.seq, wants.join(", "))
}

/// A step answered 2xx (here: `Ok`) is stored, across every crash.
pub fn acknowledged_steps_survive(world: &World) -> anyhow::Result<()> {
    for n in &world.nodes {
        for id in &n.acked {
            if !n.shared().store.has_record(id)? {
                bail!("{} acknowledged record {} and no longer holds it", n.division, id.fmt_short());
            }
        }
    }
    Ok(())
}

fn summaries(world: &World, n: usize) -> anyhow::Result<BTreeMap<RecordId, CaseSummary>> {
    let mut out = BTreeMap::new();
    world.nodes[n].shared().store.all_summaries(|s| {
        out.insert(s.id, s);
        true
    })?;
    Ok(out)
}

/// Whether an event of case `id` (as the city holds it) took the case
/// into `unit`'s subtree: the case may be held there even if the city's
/// fold no longer counts that step.
fn entered_by_a_voided_step(world: &World, id: &RecordId, unit: zongzhi_protocol::DivisionCode) -> anyhow::Result<bool> {
    for (_, bytes) in world.nodes[0].shared().store.case_records(id)? {
        let r = zongzhi_protocol::Record::decode_unverified(&bytes)?;
        if let zongzhi_protocol::Body::CaseEvent(ev) = &r.body
            && zongzhi_protocol::sync::enters_subtree(&ev.action, unit)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A node holds exactly the cases that entered its subtree (filed, owned or
/// helped there), each with every event and the same derived state as at
/// the city.
pub fn each_node_holds_its_scope_in_the_citys_state(world: &World) -> anyhow::Result<()> {
    let city = summaries(world, 0)?;
    for (i, n) in world.nodes.iter().enumerate().skip(1) {
        if world.is_revoked(i) {
            continue;
        }
        let held = summaries(world, i)?;
        for (id, c) in &city {
            let expected = scope::case_in_subtree(&c.units, n.division) || n.division.contains(c.filed_by);
            match (expected, held.get(id)) {
                (true, None) => bail!("{} lacks case {} ({}, units {:?})", n.division, c.number, c.status.as_str(), c.units),
                // A step that brought the case into this subtree and that a
                // revocation voided later (an escalation above the cut-off,
                // and the dispatch down that followed it) leaves the case
                // where it went: it was in scope when it was sent (seed 24).
                (false, Some(_)) if entered_by_a_voided_step(world, id, n.division)? => {}
                (false, Some(_)) => bail!("{} holds case {} outside its scope", n.division, c.number),
                (true, Some(h)) => same_state(n.division, c, h).map_err(|e| anyhow::anyhow!("{e}\n  there: {}\n  city:  {}", timeline(world, i, id), timeline(world, 0, id)))?,
                (false, None) => {}
            }
        }
        if let Some((_, extra)) = held.iter().find(|(id, _)| !city.contains_key(id)) {
            bail!("{} holds case {} that the city does not", n.division, extra.number);
        }
    }
    Ok(())
}

/// Every node on the tree holds the newest policy the city signed, and it
/// is the one in force there.
pub fn the_policy_reached_every_node(world: &World) -> anyhow::Result<()> {
    let Some(pushed) = world.happened.policy_version else { return Ok(()) };
    // The newest the city signed: the incident's, or the finalizing one of
    // an upgrade run after it.
    let version = world.city().shared().policy().version;
    if version < pushed {
        bail!("the city's policy version {version} is older than the {pushed} it signed");
    }
    for (i, n) in world.nodes.iter().enumerate() {
        let here = n.shared().policy().version;
        if !world.is_revoked(i) && here != version {
            bail!("{} has policy version {here} in force, the city signed {version}", n.division);
        }
    }
    Ok(())
}

/// Every node on the tree holds the revocation, and each record the revoked
/// key signed above the cut-off that a node holds is void in that node's
/// fold of its case (stored, rejected as `author-revoked`), so the case
/// reads the same everywhere whichever records arrived before the
/// revocation did.
pub fn records_above_the_cutoff_are_void_everywhere(world: &World) -> anyhow::Result<()> {
    let Some((_, key, cutoff)) = world.happened.revoked else { return Ok(()) };
    for (i, n) in world.nodes.iter().enumerate() {
        if world.is_revoked(i) {
            continue;
        }
        let shared = n.shared();
        match shared.trust().revocation(&key) {
            Some(r) if r.cutoff_seq == cutoff => {}
            other => bail!("{} holds {other:?} for the revoked key, not the revocation with cut-off {cutoff}", n.division),
        }
        let head = shared.store.chain_last(&key)?.map_or(0, |(seq, _)| seq);
        for seq in cutoff + 1..=head {
            let Some(id) = shared.store.chain_entry(&key, seq)? else { continue };
            let bytes = shared.store.record_bytes(&id)?.ok_or_else(|| anyhow::anyhow!("{}: chain entry {seq} without its record", n.division))?;
            let record = zongzhi_protocol::Record::decode_unverified(&bytes)?;
            let Some(event) = record.case_event() else { continue };
            let case = event.case.unwrap_or(id);
            let state = fold(world, i, &case)?;
            let stored = shared.store.case_summary(&case)?;
            if stored.as_ref() != Some(&CaseSummary::of(&state)) {
                bail!("{}: case {} holds a record of the revoked key above the cut-off, and its stored summary is not the fold of its records\n  stored: {stored:?}", n.division, state.filing.number);
            }
            match state.timeline.iter().find(|t| t.id == id) {
                Some(t) if t.outcome.is_err() => {}
                Some(_) => bail!("{}: record {} (seq {seq} above the cut-off {cutoff}) of the revoked key still applies to case {}", n.division, id.fmt_short(), state.filing.number),
                None => {} // the case's filing itself is void: nothing folds
            }
        }
    }
    Ok(())
}

/// The equivocation raised one alarm, at the node it was sent to, naming
/// its author and seq; nothing else anywhere raised an integrity alarm.
/// The notice a revocation leaves where it voided stored records
/// (`revoked_records`, naming the revoked key and its cut-off) is the
/// revocation's own effect, not an integrity failure, and is allowed.
pub fn alarms_only_for_the_equivocation(world: &World) -> anyhow::Result<()> {
    let revoked = world.happened.revoked.map(|(_, key, cutoff)| (key.to_string(), cutoff));
    for (i, n) in world.nodes.iter().enumerate() {
        let alarms: Vec<zongzhi_node::ledger::Alarm> = n.shared().store.alarms()?;
        let expected = match world.happened.equivocation {
            // Caught after the backup of a township later restored from it:
            // the alarm went with its disk (the runbook says so).
            Some((at, _, _)) if at == i && world.happened.alarm_lost_with_disk => vec![],
            Some((at, key, seq)) if at == i => vec![("equivocation".to_string(), key.to_string(), seq)],
            _ => vec![],
        };
        let integrity: Vec<&zongzhi_node::ledger::Alarm> = alarms.iter().filter(|a| !(a.kind == "revoked_records" && revoked.as_ref().is_some_and(|(k, c)| a.author == *k && a.seq == *c))).collect();
        let got: Vec<(String, String, u64)> = integrity.iter().map(|a| (a.kind.clone(), a.author.clone(), a.seq)).collect();
        if got != expected {
            let who = |author: &str| world.nodes.iter().find(|n| n.id.to_string() == author).map_or_else(|| author.to_string(), |n| n.division.to_string());
            bail!(
                "{} raised alarms {:?}, expected {expected:?}",
                n.division,
                integrity.iter().map(|a| format!("{} by {} (from peer {:?}): {}", a.kind, who(&a.author), a.peer, a.detail)).collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

fn same_state(at: zongzhi_protocol::DivisionCode, city: &CaseSummary, here: &CaseSummary) -> anyhow::Result<()> {
    let view = |s: &CaseSummary| (s.status, s.owner, s.events, s.supervision, s.escalations, s.returns, s.units.clone());
    if view(city) != view(here) {
        bail!("case {} differs at {at}: {:?} there, {:?} at the city", city.number, view(here), view(city));
    }
    Ok(())
}

/// Every stored record hashes to its id and is validly signed; each node's
/// own chain has no gap.
pub fn integrity(world: &World) -> anyhow::Result<()> {
    for n in &world.nodes {
        let report = zongzhi_node::integrity::check(&n.shared().store, &n.id)?;
        if !report.ok() {
            bail!("{} fails its integrity check: {:?}", n.division, report.problems.first());
        }
    }
    Ok(())
}

/// A case as node `n` folds it from its stored records.
fn fold(world: &World, n: usize, case: &RecordId) -> anyhow::Result<zongzhi_protocol::CaseState> {
    let shared = world.nodes[n].shared();
    let records = zongzhi_node::ledger::load_case_records(&shared.store, case)?;
    Ok(zongzhi_node::ledger::fold_records(&shared.store, &shared.policies(), &shared.trust(), &records)?)
}

/// A case's timeline as a node folds it from its stored records (for the
/// failure message): each step with its outcome.
fn timeline(world: &World, n: usize, case: &RecordId) -> String {
    let show = || -> anyhow::Result<String> {
        let state = fold(world, n, case)?;
        let refolded = zongzhi_node::summary::CaseSummary::of(&state);
        Ok(format!("[refolded: supervision {:?}, status {:?}] ", refolded.supervision, refolded.status)
            + &state
                .timeline
                .iter()
                .map(|e| {
                    let action = format!("{:?}", e.action);
                    let name: String = action.chars().take_while(|c| c.is_alphanumeric()).collect();
                    match &e.outcome {
                        Ok(()) => format!("{name}@{}", e.unit),
                        Err(r) => format!("{name}@{} REJECTED({})", e.unit, r.rule),
                    }
                })
                .collect::<Vec<_>>()
                .join(" → "))
    };
    show().unwrap_or_else(|e| format!("(fold failed: {e})"))
}
