//! The refusals in the operator's words: every rule name a step can be
//! refused with — by the workflow (`workflow::check`, the fold) or by the
//! node before it signs (`ledger::local`, the API's upgrade gates) — with
//! its zh-CN message. The node's API sends the message with each refusal
//! (`error.message_zh`, and `rejected.message_zh` in a case's timeline),
//! and the console shows it: one table, so the two cannot drift.
//! `protocol/tests/rules.rs` finds every rule name in the sources and
//! fails for one without a message here.

/// Rule name → zh-CN message, sorted by name.
pub const RULES: &[(&str, &str)] = &[
    ("appeal-by-rated-unit", "只有被评价的办结单位可以申诉"),
    ("appeal-needs-rating", "案件尚未评价，不能申诉"),
    ("appeal-needs-unsatisfied", "只有“不满意”的评价可以申诉"),
    ("appeal-pending", "差评申诉尚未裁定"),
    ("archive-needs-confirmation", "已申请司法确认，请先记录法院裁定结果再归档"),
    ("archive-needs-return-visit", "有调解协议的案件须回访后才能归档"),
    ("archive-needs-satisfied", "当事人满意后才能归档"),
    ("assistance-length", "协办回复时限超出策略允许范围"),
    ("assistance-not-pending", "这项协办已回复或已结束"),
    ("assistance-pending", "该单位（窗口）尚未回复此前的协办请求"),
    ("assistance-replied", "这项协办已经回复"),
    ("attach-by-handler", "只有承办单位、协办单位或受理中心可以上传证据材料"),
    ("author-revoked", "签署者的密钥已被吊销"),
    ("case-is-closed", "案件已办结归档，不能再办理"),
    ("citizen-invited", "已邀请群众自行评价，评价码有效期内工作人员不能代为录入"),
    ("confirmation-referred", "已申请司法确认"),
    ("confirmation-ruled", "已记录司法确认结果"),
    ("date-before-case", "日期不能早于受理日期"),
    ("date-in-future", "日期不能晚于今天"),
    ("dispatch-to-descendant", "只能下派给本中心的下级单位"),
    ("due-in-future", "手工设定的时限必须晚于当前时间"),
    ("due-within-bound", "手工设定的时限超出策略允许的最长天数"),
    ("event-names-its-case", "记录没有指明所属案件"),
    ("expected-in-future", "预计恢复日期须晚于今天"),
    ("extension-length", "延期的工作日数超出策略允许的范围"),
    ("extension-pending", "有待审批的延期申请，请先审批再中止"),
    ("field-required", "请填写必填内容"),
    ("field-too-long", "填写的内容超出长度限制"),
    ("filed-once", "案件只能受理一次"),
    ("filing-has-no-parents", "受理记录不能有前序步骤"),
    ("first-event-is-filing", "案件的第一步必须是受理"),
    ("helper-below-owner", "协办单位必须是承办单位的下级单位"),
    ("helper-twice", "同一协办单位或窗口不能重复"),
    ("helpers-nonempty", "请至少选择一个协办窗口或协办单位"),
    ("mediating-unit", "只有主持调解的单位可以办理"),
    ("mediators", "请填写1至5名调解员"),
    ("merge-into-other", "案件不能并入自身"),
    ("merge-target-merged", "目标案件已先并入另一案件，请并入那个案件"),
    ("merge-target-open", "只能并入仍在办理中的案件"),
    ("needs-finalization", "此操作需要全市节点升级并由市级中心确认升级后才能使用"),
    ("needs-upgrade", "此案件有本版本无法读取的步骤，请先升级本节点"),
    ("no-agreement", "本案没有调解协议"),
    ("no-appeal-pending", "没有待裁定的申诉"),
    ("no-calendar-for-year", "受理时间所在年份还没有工作日历，请市级中心先导入该年日历"),
    ("no-confirmation-referral", "尚未申请司法确认"),
    ("no-extension-pending", "没有待审批的延期申请"),
    ("no-level-above", "市级中心没有上级，不能上报"),
    ("no-rating-invitation", "反馈时没有邀请群众评价"),
    ("no-self-approval", "延期申请不能由申请人本人审批"),
    ("no-such-assistance", "没有这项协办请求"),
    ("no-such-notice", "没有这份需要回复的督办"),
    ("nothing-to-return", "案件不是分流或下派来的，无处退回"),
    ("notice-replied", "这份督办已经回复"),
    ("one-agreement", "本案已有调解协议（法院裁定不予确认后才能重新签订）"),
    ("one-appeal-per-rating", "每次评价只能申诉一次"),
    ("one-extension-at-a-time", "已有延期申请待审批"),
    ("only-filing-center", "办结后的反馈、评价、重办和归档由受理中心办理"),
    ("only-owner", "只有案件的承办单位可以执行此操作"),
    ("place-coordinates", "发生地坐标超出范围"),
    ("progress-by-handler", "只有承办单位、协办单位或受理中心可以填报进展"),
    ("rating-token", "评价码不正确"),
    ("rating-token-expired", "评价码已过期"),
    ("reopen-needs-unsatisfied", "只有当事人不满意的案件可以重办"),
    ("reply-by-helper", "只有被请求协办的单位（窗口）可以回复"),
    ("reply-by-supervised-unit", "只有被督办的单位可以回复督办"),
    ("retired-category", "该类别已停用，不能受理新案件"),
    ("retired-referral", "这个引导去向已停用"),
    ("retired-suspension-reason", "这个中止事由已停用"),
    ("retired-window", "该窗口已停用"),
    ("signature-not-attached", "签字扫描件须先作为证据附件上传"),
    ("signatures-required", "请上传当事人签字确认的扫描件"),
    ("status", "案件当前的状态不允许此操作"),
    ("supervise-by-requester", "只有请求协办的中心可以协办督办"),
    ("supervising-level-decides", "延期申请由承办单位的直接上级（或本中心对其窗口）审批"),
    ("supervisor-is-ancestor", "只有上级中心可以督办此案件"),
    ("suspension-length", "中止期限超过策略允许的最长天数"),
    ("unit-revoked", "该单位的密钥已被吊销，不能再接收案件"),
    ("unknown-category", "没有这个类别"),
    ("unknown-referral", "策略中没有这个引导去向"),
    ("unknown-suspension-reason", "策略中没有这个中止事由"),
    ("unknown-unit", "没有这个已入网的单位"),
    ("unknown-window", "没有这个窗口"),
];

/// The zh-CN message of `rule`, if the table has it.
pub fn zh(rule: &str) -> Option<&'static str> {
    RULES.binary_search_by(|(name, _)| name.cmp(&rule)).ok().map(|i| RULES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_without_repeats_and_every_message_is_chinese() {
        for pair in RULES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (name, zh) in RULES {
            assert!(zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{name}: {zh}");
        }
        assert_eq!(zh("only-owner"), Some("只有案件的承办单位可以执行此操作"));
        assert_eq!(zh("no-such-rule"), None);
    }
}
