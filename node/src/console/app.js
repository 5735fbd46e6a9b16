// zongzhi operator console: a small single-page app over the node's HTTP API
// (the same API the CLI uses). No build step, no dependencies.
"use strict";

// ---------- i18n (zh-CN first) ----------
const DICT = {
  zh: {
    export_list: "导出台账", alert_sound: "新案件提示音", new_work: "有 {n} 件新案件待签收", preview_file: "预览",
    print_forms: "打印", print_assign: "打印交办单", print_supervise: "打印督办单", print_now: "打印",
    queue: "工作台", file: "受理登记", board: "督办台账", stats: "统计分析", reports: "月度报告", sync: "同步状态", tree: "组织机构",
    login: "登录", username: "用户名", password: "密码", logout: "退出", loading: "加载中…", none: "暂无",
    number: "编号", title: "标题", category: "类别", urgency: "紧急程度", status: "状态", deadline: "时限", supervision: "督办", owner: "承办单位",
    open: "待办", overdue_only: "已超期", urgent_only: "紧急", all_status: "全部", due_in: "剩余", overdue_by: "超期",
    channel: "来源渠道", request_type: "诉求类型", big: "大类", small: "小类", complexity: "复杂程度", normal: "一般", urgent: "紧急",
    general: "一般", complex: "复杂", content: "内容", place: "地点", people: "涉及人数", received_at: "受理时间（可选，北京时间，最早72小时前）", received_label: "受理时间", public_locks: "公众查询锁定", public_locked: "{n} 个网络地址因多次输错查询码，被锁定查询本案：", public_unlock: "解除查询锁定", recovery_code: "恢复码（账户被锁定时，向管理员索取）",
    complainant: "当事人信息", name: "姓名", phone: "电话", id_number: "身份证号", address: "住址", submit: "提交", cancel: "取消",
    required: "必填", bad_phone: "请输入有效的电话号码", filed: "已受理", timeline: "办理过程", deadlines: "时限",
    actions: "可执行操作", no_actions: "当前无可执行操作", unit: "单位", operator: "经办人", time: "时间", action: "操作", result: "结果",
    signature: "签名", verified: "已验证", failed: "验证失败", rejected: "已驳回", overruled: "被覆盖（另一中心的同时操作在先）", accepted: "有效",
    period: "统计期间", by: "分组", month: "月", quarter: "季度", year: "年", kpi: "指标", target: "目标", rank: "排名",
    received: "受理", resolved: "办结", open_overdue: "超期未结", rated: "评价", trend: "月度趋势", ranking: "单位排名", by_category: "按类别",
    kpi_vs_target: "指标与目标", download_csv: "导出 CSV", check: "核对", consistent: "一致", inconsistent: "不一致", reported: "上报值", recomputed: "重算值",
    sign_report: "签署本月报告", peers: "上下级节点", connected: "在线", offline: "离线", last_contact: "最后联系", behind_out: "待发给对方（条）", behind_in: "本方待收（位置）",
    errors: "错误", alarms: "完整性告警", parent: "上级", child: "下级", revoked: "已吊销", masked_note: "个人信息按角色脱敏显示",
    reason: "原因", note: "说明", window: "窗口", to_unit: "下派单位", days: "工作日", grade: "督办等级", public_reply: "答复内容", internal_note: "内部备注",
    method: "方式", rating: "评价", comment: "意见", public: "公开", confirm: "确认", saved: "已保存", ok: "成功", by_unit: "按单位", by_level: "按层级",
    by_county: "按县区", by_township: "按乡镇", by_cat: "按类别", by_channel: "按渠道", by_window: "按窗口", by_person: "按人员", col_window: "窗口", col_person: "人员", actors_note: "按窗口、按人员：受理计入登记的人员和分流（改派）到的窗口，办结、按时办结和评价计入办结的人员及其所代表的窗口；在市、县级按窗口汇总各中心同一窗口（如各级公安窗口）。", total: "合计", lang: "English",
    allowed_none: "只读账号不能办理案件", signed: "已签署", deadline_running: "进行中", deadline_met: "已完成",
    attachments: "证据附件", upload: "上传",
    policy: "策略", policy_version: "当前版本", version_n: "第 {n} 版", signed_at: "签发时间", signed_by: "签发者", versions: "版本记录",
    view: "查看", changes: "变更", no_changes: "没有变更", calendars: "工作日历", calendar_years: "已有日历年份", calendar_missing: "缺少日历",
    categories: "类别", windows: "部门窗口", deadline_table: "时限标准", supervision_thresholds: "督办升级", other_settings: "其他设置",
    retired: "已停用", in_use: "在用", code: "代码", default_window: "默认窗口", source: "来源",
    holidays: "法定节假日", makeup: "调休上班", weekend: "周末", workday: "工作日", legend: "图例", holiday_days: "节假日 {n} 天", makeup_days: "调休上班 {m} 天",
    load_calendar: "载入年度工作日历", calendar_json: "日历文件内容（JSON，格式同 cn-2026.json）", calendar_file: "或选择日历文件",
    preview: "预览变更", sign_policy: "签发新版本", add_window: "新增或修改部门窗口", add_subcategory: "新增或修改小类", retire: "停用",
    readonly_policy: "策略由市级中心的管理员签发；本节点只读。", viewing_old: "正在查看历史版本", back_current: "返回当前版本",
    preview_note: "预览，尚未签发：签发后为第 {n} 版。", preview_stale: "内容已修改，请重新预览。", signed_version: "已签发第 {n} 版策略",
    waiting_filter: "待定时限", waiting_cases: "等待工作日历的案件", waiting_col: "待定时限", waiting_badge: "待定：缺少{y}年工作日历",
    storage_fault: "存储故障：数据无法写入，新的登记和办理步骤暂时不能保存（已保存的数据不受影响）。请清理服务器数据盘空间，空间恢复后系统自动恢复写入，无需重启。",
    storage_low: (free, reserve) => `存储空间不足：数据盘剩余 ${free} MiB，低于预留的 ${reserve} MiB。请尽快清理磁盘空间，否则将无法保存新的数据。`,
    storage_detail: "原因", since: "开始于",
    restoring: "本节点已由备份恢复，正在从上级和下级中心取回本节点此前签署的记录；取回之前不能登记或办理（可以查询）。",
    restored_from: "备份时间", own_waiting: "本节点有 {n} 条记录在等待下级补传", restoring_what_to_do: "查看同步状态与处理办法",
    backup: "备份", backup_now: "立即备份", backup_done: "备份已写入", backup_hint: "备份写入服务器的备份目录（不含节点密钥）；请再复制到其他磁盘或机器。",
    override: "不再等待，恢复办理", override_reason: "原因（将记入日志）", override_warn: "仅在上级或下级中心长时间无法连接时使用：如果本节点在备份之后签署的记录仍保存在其他中心，恢复办理后会产生完整性告警。",
    override_without: "逐一勾选不再等待的中心（它们可能持有本节点备份之后签署的记录）：", waiting_for_centers: "等待以下中心交回记录：",
    show_revoked: "显示已吊销的证书", hide_revoked: "隐藏已吊销的证书",
    load_calendar_link: "前往策略页载入工作日历", calendar_city_only: "请市级中心载入工作日历", today: "今天", warning: "提醒",
    kind_added: "新增", kind_removed: "删除", kind_changed: "修改", setting: "项目", value: "取值", calendar_warning_from: "缺少次年日历时提醒起始",
    repeat_window: "重复诉求判定期", report_grace: "月报签署宽限", pending: "待定", version_col: "版本", bad_format: "格式不正确", label_name: "名称",
    tab_feedback: "待反馈", tab_sign_for: "待签收", tab_mine: "我的时限", by_village: "按村社",
    close: "关闭", arose_in: "发生地", arose_here: "本中心辖区", skip_level: "越级", receipt: "受理回执", query_code: "查询码", receipt_token: "核验码",
    receipt_note: "查询码只显示这一次，请交给群众并提醒妥善保管；凭编号和查询码可在公众查询页查看办理进度。", print: "打印回执", to_case: "查看案件",
    similar: "同一当事人的案件", similar_note: "按电话或身份证号的指纹比对（不传输个人信息）；同类且在办的可能为重复诉求，可在案件页并单。",
    likely_duplicate: "可能重复", confirmed: "已核实同一人", into: "并入案件编号", result_rating: "结果评价", invite_rating: "邀请群众在公众页评价（发送一次性评价码）",
    rating_token: "评价码", rating_token_sent: "评价码已通过短信发送给群众", rating_token_note: "评价码只显示这一次：请通过短信告知群众，群众凭编号和评价码在公众查询页评价。",
    ratings: "评价记录", by_citizen: "群众评价", by_staff: "工作人员录入", appeal_pending: "申诉中", appeal_upheld: "申诉成立（不计入满意率）", appeal_dismissed: "申诉驳回",
    skip_col: "越级", skip_baseline: "基期", repeats: "重复诉求与越级重复", several_centers: "多处重复", over_open_case: "越级重复（下级在办时向上反映）",
    report_month: "报告月份", supersede_reason: "重签原因（已签署时必填）", sign_closed: "签署已结束月份的报告", superseded: "已被替代",
    tab_overruled: "被覆盖", overruled_note: "本中心的操作被另一中心同时进行的操作覆盖（离线期间难免），不论案件现由谁承办、处于何种状态；打开案件可见覆盖它的操作。",
    clock_note: "本中心负责的进行中时限，不论案件现由哪个单位承办；按到期先后排列。",
    rows_shown_of: "已显示排名前 {n} 个，共 {total} 个（下载 CSV 含全部）",
    load_more: "加载更多", shown_of: "已显示 {n} 件，共 {total} 件", shown_of_more: "已显示 {n} 件，共 {total} 件以上",
    search: "搜索", search_placeholder: "搜索编号、电话、身份证号或关键词", search_results: "搜索结果",
    kind_number: "按编号查找", kind_phone: "按电话查找", kind_id_number: "按身份证号查找", kind_words: "按关键词查找", no_results: "没有找到符合条件的案件",
    download_xlsx: "导出 Excel", account: "账户", users: "用户管理", display_name: "显示名", role: "角色", role_admin: "管理员", role_operator: "经办人员", role_viewer: "只读",
    account_state: "状态", state_ok: "正常", state_disabled: "已停用", state_locked: "已锁定至 {t}", state_wait: "{t} 前不能登录", failed_logins: "近15分钟登录失败",
    unlock: "解锁", disable: "停用", enable: "启用", reset_password: "重置密码", unlocked: "已解锁", disabled_done: "已停用，该用户的会话已结束", enabled_done: "已启用",
    new_password: "新密码", current_password: "当前密码", change_password: "修改密码", password_changed: "密码已修改，其他会话已结束", password_reset_done: "密码已重置，该用户的会话已结束",
    password_rule: "8 至 256 个字符，不能全是空格，不能与用户名相同", confirm_disable: "停用 {u}？该用户将立即退出并不能登录。",
    login_audit: "登录记录", login_kind: "类型", login_result: "结果", client_address: "客户端地址", blocked_addresses: "暂停登录的地址", until: "直至",
    kind_login: "登录", kind_password_change: "修改密码", kind_admin: "管理操作", times: "次", audit_detail: "说明",
    outcome_lockout: "触发锁定", outcome_unlock: "解锁", outcome_password_reset: "重置密码", outcome_enabled: "启用账户",
    outcome_user_created: "新建账户", outcome_recovery_code: "生成恢复码", outcome_public_unlock: "解除查询锁定",
    recovery_code_made: "恢复码（只显示这一次，请抄写后锁入保险柜）：", make_recovery_code: "生成恢复码", locked_everywhere: "对陌生设备锁定",
    outcome_ok: "成功", outcome_wrong_password: "密码错误", outcome_unknown_user: "用户不存在", outcome_disabled: "账户已停用", outcome_locked: "账户已锁定",
    outcome_account_throttled: "账户失败过多，暂缓", outcome_address_throttled: "地址失败过多，暂缓", outcome_busy: "系统繁忙",
    fleet: "节点", release: "版本", formats_read: "可读格式", write_format: "写入格式", schema: "存储版本", reported_at: "报告时间", age: "距今",
    behind_up: "待上报", parked: "暂存记录", node_state: "状态", gate: "全市写入格式", finalize: "确认升级", finalize_format: "确认升级到记录格式 {f}",
    ready_to_finalize: "全部节点均已报告可读取格式 {f}，可以确认升级。", not_ready: "尚有 {n} 个节点未报告可读取格式 {f}：",
    finalize_confirm: "确认升级后，全市节点开始以格式 {f} 签署记录，旧版本将不能再打开各节点的数据目录，也不能回退。确定吗？",
    finalized: "已确认升级，签发第 {v} 版策略", nothing_to_finalize: "全市写入格式已是本版本可写的最新格式。", upgrade_alarm: "升级提醒",
    replies_owed: "待回复的督办", reply_by: "须回复单位", no_replies_owed: "本辖区没有待回复的督办", notices: "督办与回复", notice_grade: "督办等级", notice_to: "被督办单位", reply_due: "回复期限", replied: "已回复", not_replied: "未回复", late: "逾期",
    superseded_by: "已被后续督办替代", measures: "整改措施", read_only: "只读",
    referral: "引导去向", confirmation: "确认方式", suspension_reason: "中止事由", expected_on: "预计恢复日期", helpers: "协办单位或窗口",
    requirements_assist: "协办要求", reply: "回复意见", held_on: "调解日期", mediators: "调解员账号（多个以逗号分隔）", attendees: "到场当事人", notes: "调解记录",
    court: "受理法院", ruling: "裁定书文号", ruled_on: "裁定日期", confirmed_flag: "确认调解协议有效", fulfilment: "履行情况", visit_method: "回访方式",
    tab_assist: "待协办", tab_suspended: "已中止", tab_window: "本窗口", assists: "协办", assist_helper: "协办单位", assist_due: "回复期限", assist_reply: "回复",
    assist_ended: "已结束（案件已转出或办结）", assist_pending: "待回复", declined_title: "不予受理", withdrawn_title: "已撤回", suspended_title: "已中止",
    suspension_expected: "预计恢复", resumed_at: "恢复于", mediation: "调解", sessions: "调解记录", agreement: "调解协议书", print_agreement: "打印调解协议书",
    confirmation_title: "司法确认", visits: "回访", parties: "当事人", party_name: "姓名", gender: "性别", ethnicity: "民族", age: "年龄", occupation: "职业或职务",
    matter: "纠纷主要事实、争议事项", terms: "经调解，自愿达成如下协议", performance: "履行方式、时限", copies: "协议份数", signed_on: "签订日期",
    scans: "当事人签字确认（扫描件）", add_party: "增加当事人", window_account: "派驻窗口", windows_of: "本账号窗口", paused: "已暂停",
    window_queue_note: "派驻窗口账号：只显示并办理本窗口承办或协办的案件。", assist_note: "本单位（或本中心窗口）被请求协办、尚未回复的案件。",
    working_days_each: "回复时限（工作日）", choose_helper: "请至少选择一个协办单位或窗口", to_or_window: "改派到", mediator_label: "人民调解员",
  },
  en: {
    export_list: "Export list", alert_sound: "Sound on new cases", new_work: "{n} new case(s) to sign for", preview_file: "Preview",
    print_forms: "Print", print_assign: "Print assignment sheet", print_supervise: "Print supervision sheet", print_now: "Print",
    queue: "Queue", file: "File a case", board: "Supervision", stats: "Statistics", reports: "Reports", sync: "Sync", tree: "Units",
    login: "Log in", username: "User name", password: "Password", logout: "Log out", loading: "Loading…", none: "None",
    number: "Number", title: "Title", category: "Category", urgency: "Urgency", status: "Status", deadline: "Deadline", supervision: "Supervision", owner: "Owner",
    open: "Open", overdue_only: "Overdue", urgent_only: "Urgent", all_status: "All", due_in: "left", overdue_by: "overdue",
    channel: "Channel", request_type: "Request type", big: "Class", small: "Subclass", complexity: "Complexity", normal: "Normal", urgent: "Urgent",
    general: "General", complex: "Complex", content: "Content", place: "Place", people: "People involved", received_at: "Received at (optional, China time, at most 72 h back)", received_label: "Received at", public_locks: "Public page locks", public_locked: "{n} client addresses are locked out of this case after wrong query codes: ", public_unlock: "Lift the locks", recovery_code: "Recovery code (when the account is locked; ask its admin)",
    complainant: "Complainant", name: "Name", phone: "Phone", id_number: "ID number", address: "Address", submit: "Submit", cancel: "Cancel",
    required: "Required", bad_phone: "Enter a valid phone number", filed: "Filed", timeline: "Timeline", deadlines: "Deadlines",
    actions: "Actions", no_actions: "No action available now", unit: "Unit", operator: "Operator", time: "Time", action: "Action", result: "Result",
    signature: "Signature", verified: "verified", failed: "FAILED", rejected: "rejected", overruled: "overruled (a concurrent step elsewhere came first)", accepted: "valid",
    period: "Period", by: "Group by", month: "Month", quarter: "Quarter", year: "Year", kpi: "KPI", target: "Target", rank: "Rank",
    received: "Received", resolved: "Resolved", open_overdue: "Open overdue", rated: "Rated", trend: "Monthly trend", ranking: "Unit ranking", by_category: "By category",
    kpi_vs_target: "KPIs vs targets", download_csv: "Export CSV", check: "Check", consistent: "consistent", inconsistent: "DIFFERS", reported: "Reported", recomputed: "Recomputed",
    sign_report: "Sign this month's report", peers: "Peers", connected: "online", offline: "offline", last_contact: "Last contact", behind_out: "Waiting for the peer (records)", behind_in: "Behind (from peer, positions)",
    errors: "Errors", alarms: "Integrity alarms", parent: "parent", child: "child", revoked: "revoked", masked_note: "Personal data is masked by role",
    reason: "Reason", note: "Note", window: "Window", to_unit: "To unit", days: "Working days", grade: "Grade", public_reply: "Public reply", internal_note: "Internal note",
    method: "Method", rating: "Rating", comment: "Comment", public: "Public", confirm: "Confirm", saved: "Saved", ok: "Done", by_unit: "By unit", by_level: "By level",
    by_county: "By county", by_township: "By township", by_cat: "By category", by_channel: "By channel", by_window: "By window", by_person: "By person", col_window: "Window", col_person: "Person", actors_note: "By window and by person: a case is received by the person who filed it and by the window it was routed (or rerouted) to; resolved, on time and its ratings count for the person who resolved it and the window they acted for. At a county or the city a window sums every center's window of that code (every police window, say).", total: "Total", lang: "中文",
    allowed_none: "Read-only accounts cannot act on cases", signed: "Signed", deadline_running: "running", deadline_met: "met",
    attachments: "Evidence", upload: "Upload",
    policy: "Policy", policy_version: "Current version", version_n: "version {n}", signed_at: "Signed at", signed_by: "Signed by", versions: "Versions",
    view: "View", changes: "Changes", no_changes: "No changes", calendars: "Working-day calendars", calendar_years: "Calendar years", calendar_missing: "Missing calendars",
    categories: "Categories", windows: "Department windows", deadline_table: "Deadlines", supervision_thresholds: "Supervision grades", other_settings: "Other settings",
    retired: "retired", in_use: "in use", code: "Code", default_window: "Default window", source: "Source",
    holidays: "Public holiday", makeup: "Make-up workday", weekend: "Weekend", workday: "Workday", legend: "Legend", holiday_days: "{n} holidays", makeup_days: "{m} make-up workdays",
    load_calendar: "Load a year's working-day calendar", calendar_json: "Calendar file (JSON, shaped like cn-2026.json)", calendar_file: "or choose a calendar file",
    preview: "Preview changes", sign_policy: "Sign new version", add_window: "Add or change a department window", add_subcategory: "Add or change a subclass", retire: "Retire",
    readonly_policy: "The policy is signed by the city center's admin; read-only here.", viewing_old: "Viewing an earlier version", back_current: "Back to the current version",
    preview_note: "Preview, nothing signed: signing makes version {n}.", preview_stale: "Changed since the preview: preview again.", signed_version: "Signed policy version {n}",
    waiting_filter: "Pending deadlines", waiting_cases: "Cases waiting for a working-day calendar", waiting_col: "Pending deadlines", waiting_badge: "Pending: no {y} working-day calendar",
    storage_fault: "Storage fault: writes fail, new filings and steps cannot be saved now (saved data is safe). Free space on the server's data disk; writing resumes by itself, no restart needed.",
    storage_low: (free, reserve) => `Low disk space: ${free} MiB free on the data disk, below the ${reserve} MiB reserve. Free space soon or new data cannot be saved.`,
    storage_detail: "Cause", since: "since",
    restoring: "This node was restored from a backup and is getting back from its parent the records it signed before; until then nothing can be filed or handled (reading works).",
    restored_from: "backup taken", own_waiting: "{n} of this node's records wait for a child to send their parents", restoring_what_to_do: "Sync status and what to do",
    backup: "Backup", backup_now: "Back up now", backup_done: "Backup written to", backup_hint: "The backup goes to the server's backup directory (without the node key); copy it to another disk or machine.",
    override: "Stop waiting and resume", override_reason: "Reason (logged)", override_warn: "Only when the parent or a child has been unreachable for long: records this node signed after the backup that other centers hold will raise integrity alarms.",
    override_without: "Tick each center no longer waited for (it may hold records this node signed after its backup):", waiting_for_centers: "waiting for records from: ",
    show_revoked: "Show revoked certificates", hide_revoked: "Hide revoked certificates",
    load_calendar_link: "Load the calendar on the policy page", calendar_city_only: "The city center loads calendars", today: "today", warning: "Warning",
    kind_added: "added", kind_removed: "removed", kind_changed: "changed", setting: "Setting", value: "Value", calendar_warning_from: "Warn about next year's calendar from",
    repeat_window: "Repeat-request window", report_grace: "Monthly report grace", pending: "pending", version_col: "Version", bad_format: "Wrong format", label_name: "Name",
    tab_feedback: "Feedback due", tab_sign_for: "To sign for", tab_mine: "My deadlines", by_village: "By village",
    close: "Close", arose_in: "Where it arose", arose_here: "This center's own area", skip_level: "Skip-level", receipt: "Receipt", query_code: "Query code", receipt_token: "Receipt token",
    receipt_note: "The query code is shown this once: give it to the citizen, who follows the case on the public page with the number and the code.", print: "Print receipt", to_case: "Open the case",
    similar: "The same complainant's cases", similar_note: "Matched by the fingerprint of the phone or ID number (no personal data travels); open cases of the same category may be duplicates to merge.",
    likely_duplicate: "Likely duplicate", confirmed: "Same person (checked)", into: "Merge into case number", result_rating: "Result rating", invite_rating: "Invite the citizen to rate on the public page (one-time token)",
    rating_token: "Rating token", rating_token_sent: "The rating token was sent to the citizen by message", rating_token_note: "Shown this once: send it to the citizen, who rates on the public page with the number and this token.",
    ratings: "Ratings", by_citizen: "Citizen", by_staff: "Staff-entered", appeal_pending: "Appeal pending", appeal_upheld: "Appeal upheld (not counted)", appeal_dismissed: "Appeal dismissed",
    skip_col: "Skip-level", skip_baseline: "Baseline", repeats: "Repeats and skip-level repeats", several_centers: "At several centers", over_open_case: "Filed above while open below",
    report_month: "Month", supersede_reason: "Reason to supersede (when already signed)", sign_closed: "Sign a closed month's report", superseded: "Superseded",
    tab_overruled: "Overruled", overruled_note: "Cases in which a step of this center was overruled by a concurrent step elsewhere (unavoidable while offline), whoever owns them and whatever their status; open a case to see the step that won.",
    clock_note: "Running deadlines this center is responsible for, whoever owns the case now; earliest due first.",
    rows_shown_of: "Top {n} of {total} shown (the CSV has all)",
    load_more: "Load more", shown_of: "{n} of {total} cases shown", shown_of_more: "{n} of more than {total} cases shown",
    search: "Search", search_placeholder: "Search by number, phone, ID number or words", search_results: "Search results",
    kind_number: "by case number", kind_phone: "by phone", kind_id_number: "by ID number", kind_words: "by words", no_results: "No case matches",
    download_xlsx: "Export Excel", account: "Account", users: "Users", display_name: "Display name", role: "Role", role_admin: "admin", role_operator: "operator", role_viewer: "viewer",
    account_state: "State", state_ok: "active", state_disabled: "disabled", state_locked: "locked until {t}", state_wait: "may not log in before {t}", failed_logins: "Failed logins (15 min)",
    unlock: "Unlock", disable: "Disable", enable: "Enable", reset_password: "Reset password", unlocked: "Unlocked", disabled_done: "Disabled; the user's sessions ended", enabled_done: "Enabled",
    new_password: "New password", current_password: "Current password", change_password: "Change password", password_changed: "Password changed; other sessions ended", password_reset_done: "Password reset; the user's sessions ended",
    password_rule: "8 to 256 characters, not all blank, not the user name", confirm_disable: "Disable {u}? They are logged out at once and cannot log in.",
    login_audit: "Login audit", login_kind: "Kind", login_result: "Outcome", client_address: "Client address", blocked_addresses: "Addresses held up", until: "Until",
    kind_login: "login", kind_password_change: "password change", kind_admin: "admin action", times: "×", audit_detail: "detail",
    outcome_lockout: "lockout", outcome_unlock: "unlocked", outcome_password_reset: "password reset", outcome_enabled: "enabled",
    outcome_user_created: "account created", outcome_recovery_code: "recovery code made", outcome_public_unlock: "public-page lock lifted",
    recovery_code_made: "Recovery code (shown once: write it down and keep it in the safe): ", make_recovery_code: "Make recovery code", locked_everywhere: "locked for unknown devices",
    outcome_ok: "ok", outcome_wrong_password: "wrong password", outcome_unknown_user: "unknown user", outcome_disabled: "disabled", outcome_locked: "locked",
    outcome_account_throttled: "account held up", outcome_address_throttled: "address held up", outcome_busy: "busy",
    fleet: "Nodes", release: "Release", formats_read: "Formats read", write_format: "Writes", schema: "Schema", reported_at: "Reported", age: "Age",
    behind_up: "Not yet up", parked: "Held aside", node_state: "State", gate: "Write format (city)", finalize: "Finalize", finalize_format: "Finalize record format {f}",
    ready_to_finalize: "Every center reported reading format {f}: the release can be finalized.", not_ready: "{n} centers have not reported reading format {f}:",
    finalize_confirm: "After finalizing, every center signs format {f}; older releases can no longer open the data directories and there is no way back. Finalize?",
    finalized: "Finalized: policy version {v} signed", nothing_to_finalize: "The write format is the newest this release writes.", upgrade_alarm: "Upgrade",
    replies_owed: "Supervision notices awaiting a reply", reply_by: "To reply", no_replies_owed: "No notice in this area awaits a reply", notices: "Supervision and replies", notice_grade: "Grade", notice_to: "Supervised unit", reply_due: "Reply due", replied: "Replied", not_replied: "No reply yet", late: "late",
    superseded_by: "superseded by a later notice", measures: "Measures taken", read_only: "read-only",
    referral: "Refer to", confirmation: "Confirmed by", suspension_reason: "Reason", expected_on: "Expected to resume on", helpers: "Helpers",
    requirements_assist: "What is asked", reply: "Reply", held_on: "Held on", mediators: "Mediator accounts (comma-separated)", attendees: "Parties present", notes: "Notes",
    court: "Court", ruling: "Ruling number", ruled_on: "Ruled on", confirmed_flag: "The court confirmed the agreement", fulfilment: "Kept?", visit_method: "Method",
    tab_assist: "Help asked", tab_suspended: "Suspended", tab_window: "My window", assists: "Assistance (协办)", assist_helper: "Helper", assist_due: "Reply due", assist_reply: "Reply",
    assist_ended: "ended (the case moved on or was resolved)", assist_pending: "waiting", declined_title: "Declined (不予受理)", withdrawn_title: "Withdrawn (撤回)", suspended_title: "Suspended (中止)",
    suspension_expected: "Expected to resume", resumed_at: "Resumed", mediation: "Mediation", sessions: "Sessions", agreement: "Mediation agreement", print_agreement: "Print the agreement",
    confirmation_title: "Judicial confirmation", visits: "Return visits", parties: "Parties", party_name: "Name", gender: "Sex", ethnicity: "Ethnicity", age: "Age", occupation: "Occupation",
    matter: "Facts and matters in dispute", terms: "Terms agreed", performance: "How and by when", copies: "Copies", signed_on: "Signed on",
    scans: "Signed confirmation (scans)", add_party: "Add a party", window_account: "Window", windows_of: "Windows", paused: "paused",
    window_queue_note: "Window account: only the cases your windows handle or help with.", assist_note: "Cases whose help this center (or one of its windows) was asked for and has not given yet.",
    working_days_each: "Working days to reply", choose_helper: "Choose at least one helper", to_or_window: "Re-route to", mediator_label: "Mediator",
  },
};
const tf = (k, vars) => Object.entries(vars || {}).reduce((s, [name, v]) => s.split("{" + name + "}").join(String(v)), t(k));
let lang = localStorage.getItem("zz-lang") || "zh";
const t = (k) => (DICT[lang] && DICT[lang][k]) || DICT.zh[k] || k;

// The API's errors, in the operator's language: by rule first, then by code.
// Rule refusals come with their Chinese text from the node (error.message_zh,
// rejected.message_zh: protocol/src/rules.rs), the one table both use.
const CODES_ZH = {
  laggards: "尚有节点未升级，不能确认升级",
  override_refused: "未报告版本的节点不能越过：请先升级或吊销其密钥",
  nothing_to_finalize: "全市写入格式已是最新",
  cutoff_above_held: "截止序号高于本中心持有的记录：请不超过持有的序号",
  unauthenticated: "请先登录（或登录已过期）",
  bad_credentials: "用户名或密码错误",
  forbidden: "当前账号的角色无权执行此操作",
  not_found: "没有找到该案件",
  bad_request: "填写的内容有误",
  exists: "已经存在",
  outside_subtree: "不在本中心的管辖范围内",
  too_large: "内容太大",
  not_root: "只有市级中心可以签发策略",
  unknown_key: "策略中没有这一项，或该项不能修改",
  no_change: "这些修改与当前策略相同，无需签发",
  invalid_policy: "策略内容不符合规则",
  bad_json: "JSON 格式错误",
  year_mismatch: "年份不一致",
  query_too_short: "搜索内容太短，请多输入几个字",
  locked: "该账户因多次登录失败已被锁定，请在 {s} 秒后重试，或请管理员解锁",
  too_many_attempts: "登录失败次数过多，请在 {s} 秒后重试",
  busy: "系统繁忙，请在 {s} 秒后重试",
  disabled: "该账户已停用，请联系管理员启用",
  wrong_password: "当前密码不正确",
  conflict: "操作冲突",
  outside_windows: "派驻窗口账号只能查看和办理本窗口的案件",
  not_a_mediator: "不是本中心的调解员账号",
  needs_finalization: "此操作需要全市节点升级并由市级中心确认升级后才能使用",
};
function errorText(e) {
  if (lang !== "zh") return e.message || String(e);
  if (e.message_zh) return e.message_zh + "（" + e.message + "）";
  // Refusals that say when to try again: the wait in the operator's words.
  if (e.retry_after && CODES_ZH[e.code] && CODES_ZH[e.code].includes("{s}")) return CODES_ZH[e.code].split("{s}").join(e.retry_after);
  if (e.code && CODES_ZH[e.code]) return CODES_ZH[e.code] + (e.message ? "：" + e.message : "");
  return "操作失败：" + (e.message || String(e));
}

// ---------- API ----------
const api = {
  token: () => localStorage.getItem("zz-token"),
  async call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    const tok = api.token();
    if (tok) headers.Authorization = "Bearer " + tok;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw { code: "network", message: lang === "zh" ? "无法连接本节点" : "cannot reach the node" };
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!res.ok) {
      const err = (data && data.error) || { code: "http_" + res.status, message: text };
      const retry = res.headers.get("Retry-After");
      if (retry) err.retry_after = retry;
      if (res.status === 401 && path !== "/api/login") { localStorage.removeItem("zz-token"); }
      throw err;
    }
    return data;
  },
  get: (p) => api.call("GET", p),
  post: (p, b) => api.call("POST", p, b),
};

// ---------- DOM helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const view = () => document.getElementById("view");
function show(...nodes) { const v = view(); v.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false)); }
// A page renders only if it is still the one asked for: a slow answer for a
// page the user already left must not overwrite the current one.
function showPage(page, ...nodes) {
  if ((location.hash.split("/")[1] || "queue") !== page || !api.token()) return;
  show(...nodes);
}
function toast(msg) {
  const el = document.getElementById("toast");
  el.textContent = msg; el.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}
function errorBox(e) { return h("div", { class: "error-box", "data-test": "error" }, errorText(e)); }
// Times are China time (Asia/Shanghai, UTC+8, no daylight saving) whatever
// the browser's zone, as the CLI, the public page and the deadlines are:
// a PC set to UTC must not show a deadline eight hours early.
const CHINA_MS = 8 * 3600000;
function chinaDate(ms) { return new Date(ms + CHINA_MS); }
function fmtTime(s) {
  if (!s) return "—";
  const ms = Date.parse(s);
  if (isNaN(ms)) return s;
  const d = chinaDate(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}
// "YYYY-MM" of the China month `back` months before this one.
function chinaMonth(back) {
  const d = chinaDate(Date.now());
  const m = d.getUTCFullYear() * 12 + d.getUTCMonth() - back;
  return `${Math.floor(m / 12)}-${String((m % 12) + 1).padStart(2, "0")}`;
}
function countdown(due) {
  if (!due) return "—";
  let ms = new Date(due) - Date.now();
  const late = ms < 0; ms = Math.abs(ms);
  const d = Math.floor(ms / 86400000), hh = Math.floor(ms / 3600000) % 24, mm = Math.floor(ms / 60000) % 60;
  const span = (d ? d + (lang === "zh" ? "天" : "d ") : "") + hh + (lang === "zh" ? "小时" : "h ") + mm + (lang === "zh" ? "分" : "m");
  return late ? t("overdue_by") + " " + span : t("due_in") + " " + span;
}
function clockClass(c) { return c.overdue ? "clock overdue" : c.due_soon ? "clock due-soon" : "clock"; }
function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }

// ---------- unit names ----------
// Official names are long (成都市锦江区春熙路街道社会治安综合治理中心); where
// space is short the console shows the short name — the part below the
// parent's name, without the center suffix (春熙路街道) — with the full name
// on hover. Names come from the certificates the node holds (/api/certs).
const UNIT_SUFFIXES = ["社会治安综合治理工作站", "社会治安综合治理中心", "综治工作站", "综治中心"];
function stripUnitSuffix(name) {
  const n = String(name || "").trim();
  for (const sfx of UNIT_SUFFIXES) if (n.endsWith(sfx) && n.length > sfx.length) return n.slice(0, -sfx.length);
  return n;
}
// ancestors: their full names, closest first.
function shortUnitName(name, ancestors) {
  const full = String(name || "").trim();
  const base = stripUnitSuffix(full);
  for (const a of ancestors || []) {
    const prefix = stripUnitSuffix(a);
    if (prefix && base.startsWith(prefix) && base.slice(prefix.length).trim()) return base.slice(prefix.length).trim();
  }
  return base || full;
}
let unitNames = {}, unitNamesAt = 0;
async function loadUnitNames(force) {
  if (!force && Date.now() - unitNamesAt < 60000) return unitNames;
  const certs = await knownUnits(true);
  const names = {};
  // A division re-keyed after a revocation: the unrevoked certificate's name.
  for (const c of certs) if (!names[c.division] || (!c.revoked && names[c.division].revoked)) names[c.division] = { name: c.name, revoked: !!c.revoked };
  unitNames = Object.fromEntries(Object.entries(names).map(([d, x]) => [d, x.name]));
  unitNamesAt = Date.now();
  return unitNames;
}
function unitFull(code, given) { return (code && unitNames[code]) || given || ""; }
function unitShort(code, given) {
  const full = unitFull(code, given);
  if (!full) return code || "—";
  const ancestors = [];
  for (let p = /^\d{12}$/.test(code || "") ? parentOf(code) : ""; p; p = parentOf(p)) if (unitNames[p]) ancestors.push(unitNames[p]);
  return shortUnitName(full, ancestors);
}
// A unit as its short name, the full name and code on hover.
function unitLabel(code, given, attrs) {
  const full = unitFull(code, given);
  return h("span", Object.assign({ class: "unit", "data-unit": code || "", title: full ? `${full}（${code}）` : code || "" }, attrs || {}), unitShort(code, given));
}

// ---------- session and layout ----------
let me = null, policy = null, health = null;
const NAV = [["queue", "#/queue"], ["file", "#/file"], ["board", "#/board"], ["stats", "#/stats"], ["reports", "#/reports"], ["sync", "#/sync"], ["fleet", "#/fleet"], ["tree", "#/tree"], ["policy", "#/policy"], ["account", "#/account"]];

// The policy's categories (and their children) and windows are objects keyed
// by code. Retired entries stay in the document so old cases keep their
// names, but forms for new steps offer only the ones in use.
function byCode(x) {
  if (!x) return {};
  if (Array.isArray(x)) return Object.fromEntries(x.map((e) => [e.code, e]));
  return x;
}
function normalizePolicy(p) {
  p.categories = byCode(p.categories);
  for (const c of Object.values(p.categories)) c.children = byCode(c.children);
  p.windows = byCode(p.windows);
  p.calendars = p.calendars || {};
  return p;
}
const byKey = ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0);
const categoryEntries = (p) => Object.entries((p || policy).categories).sort(byKey);
const childEntries = (c) => Object.entries((c && c.children) || {}).sort(byKey);
const activeCategories = () => categoryEntries().filter(([, c]) => !c.retired);
const activeChildren = (c) => childEntries(c).filter(([, x]) => !x.retired);
const activeWindows = () => Object.entries(policy.windows).filter(([, w]) => !w.retired);
function windowName(code, p) { const w = ((p || policy) && (p || policy).windows[code]) || null; return (w && w.name) || code; }
function waitingBadge(years) {
  return h("span", { class: "badge waiting", "data-test": "waiting-calendar" }, tf("waiting_badge", { y: years.join(lang === "zh" ? "、" : ", ") }));
}
function renderChrome() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("unit-name").textContent = health ? health.name : "综治中心案件系统";
  const nav = document.getElementById("nav");
  const here = location.hash.split("/")[1] || "queue";
  // A window account works in its queue only (every other page is refused to it).
  const navFor = me && me.role === "window" ? NAV.filter(([k]) => k === "queue" || k === "account") : NAV;
  nav.replaceChildren(...(me ? navFor.map(([k, href]) => h("a", { href, class: here === k ? "active" : "", "data-nav": k }, t(k), k === "queue" ? newWork.badge : null)) : []));
  document.getElementById("me").textContent = me ? `${me.display_name || me.username}（${me.role}）` : "";
  document.getElementById("logout").hidden = !me;
  document.getElementById("logout").textContent = t("logout");
  const search = document.getElementById("search-form");
  search.hidden = !me || me.role === "window";
  const input = document.getElementById("search-input");
  input.placeholder = t("search_placeholder");
  input.setAttribute("aria-label", t("search"));
  document.getElementById("search-submit").textContent = t("search");
  renderBanner();
}
// Admins are told on every page when next year's working-day calendar is
// missing (deadlines reaching into that year cannot be computed); at the city,
// where it is loaded, with a link to the policy page.
function renderBanner() {
  renderStorageBanner();
  const banner = document.getElementById("calendar-banner");
  const cal = health && health.calendar;
  if (!me || me.role !== "admin" || !cal || !cal.warning) { banner.hidden = true; banner.replaceChildren(); return; }
  const missing = cal.missing || [];
  const text = lang === "zh" ? cal.warning : `Working-day calendar missing for ${missing.join(", ")} (${cal.warning})`;
  banner.className = "banner " + (missing.includes(cal.current_year) ? "red" : "amber");
  banner.replaceChildren(h("strong", {}, "⚠ " + t("warning") + "："), h("span", { "data-test": "calendar-warning" }, text),
    health.level === "city" ? h("a", { href: "#/policy", "data-test": "calendar-banner-link" }, t("load_calendar_link")) : h("span", { class: "hint" }, t("calendar_city_only")));
  banner.hidden = false;
}
// Everyone is told when the node cannot store anything (their steps would
// fail) or is about to run out of disk.
function renderStorageBanner() {
  const banner = document.getElementById("storage-banner");
  const st = health && health.storage;
  const rec = health && health.recovery;
  if (rec && rec.restoring) {
    // Restored from a backup: nothing can be signed until the parent gave
    // this node's own records back.
    banner.replaceChildren(h("strong", { "data-test": "restoring" }, "⚠ " + t("restoring")),
      h("span", { class: "hint" }, `${t("restored_from")} ${rec.backup_taken_at || ""}` + (rec.own_waiting ? ` · ${tf("own_waiting", { n: rec.own_waiting })}` : "")
        + ((rec.waiting_for || []).length ? ` · ${t("waiting_for_centers")}${rec.waiting_for.map((d) => `${unitFull(d) || d}（${d}）`).join("、")}` : "")),
      me && me.role === "admin" ? h("a", { href: "#/sync", "data-test": "restoring-link" }, t("restoring_what_to_do")) : null);
    banner.hidden = false;
    return;
  }
  const upgrade = health && health.upgrade && (health.upgrade.alarms || []);
  if ((!st || st.status === "ok") && upgrade && upgrade.length) {
    // Records held aside for a newer format, or a parent or child with no
    // protocol in common: the release to install is named.
    banner.replaceChildren(h("strong", {}, "⚠ " + t("upgrade_alarm") + "："), ...upgrade.map((a) => h("span", { "data-test": "upgrade-alarm", "data-kind": a.kind }, a.message)),
      me && me.role === "admin" ? h("a", { href: "#/fleet" }, t("fleet")) : null);
    banner.hidden = false;
    return;
  }
  if (!st || st.status === "ok") { banner.hidden = true; banner.replaceChildren(); return; }
  const mib = (b) => Math.floor((b || 0) / 1048576);
  const parts = st.status === "unavailable"
    ? [h("strong", { "data-test": "storage-fault" }, "⚠ " + t("storage_fault")),
       st.fault ? h("span", { class: "hint" }, `${t("storage_detail")}：${st.fault}` + (st.fault_since ? ` · ${t("since")} ${st.fault_since}` : "")) : null]
    : [h("strong", { "data-test": "storage-low" }, "⚠ " + t("storage_low")(mib(st.free_bytes), mib(st.reserve_target_bytes)))];
  banner.replaceChildren(...parts.filter(Boolean));
  banner.hidden = false;
}
async function ensureSession(page) {
  // Health is read on every page change: the calendar warning and the
  // number of cases waiting for a calendar change while the console is open.
  health = await api.get("/api/health").catch(() => health);
  if (!api.token()) return false;
  if (!me) {
    try { me = await api.get("/api/me"); } catch (_) { me = null; return false; }
  }
  // The forms use the current policy: read again where they are built (a new
  // version may have arrived from the city since).
  if (!policy || page === "file" || page === "case") policy = normalizePolicy(await api.get("/api/policy"));
  return true;
}

// ---------- pages ----------
function loginPage() {
  const err = h("div");
  const user = h("input", { name: "username", required: true, autocomplete: "username" });
  const pass = h("input", { name: "password", type: "password", required: true, autocomplete: "current-password" });
  // The account's recovery code (its admin keeps it): asked for only when
  // guessing from elsewhere has locked the account for unknown clients.
  const code = h("input", { name: "recovery_code", autocomplete: "off", size: 24 });
  const codeRow = h("label", { hidden: true, "data-test": "recovery-code" }, t("recovery_code"), code);
  const form = h("form", { class: "card login", id: "login-form", onsubmit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    if (!form.reportValidity()) return;
    // This browser's device token from an earlier login: a known client
    // gets in while the account is locked for unknown ones.
    const body = { username: user.value.trim(), password: pass.value };
    const device = localStorage.getItem("zz-device");
    if (device) body.device = device;
    if (code.value.trim()) body.recovery_code = code.value.trim();
    try {
      const r = await api.post("/api/login", body);
      localStorage.setItem("zz-token", r.token);
      if (r.device) localStorage.setItem("zz-device", r.device);
      me = null; policy = null;
      location.hash = "#/queue";
      route();
    } catch (e) {
      if (e.code === "locked") codeRow.hidden = false;
      err.replaceChildren(errorBox(e));
    }
  } },
    h("h1", {}, (health ? health.name : "") + " · " + t("login")),
    h("label", {}, t("username"), user), h("label", {}, t("password"), pass), codeRow, err,
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, t("login"))));
  show(form);
}

let queueFilter = "open", queueWaiting = false;
const PAGE_SIZE = 100;
// The queue's tabs: the cases this center owns by status, and (待反馈,
// 待签收, 我的时限) the running clocks this center answers for, whoever owns
// the case — a village's feedback after the township resolved its
// escalated case, for one.
function queueFilters() {
  // A window account: its windows' cases (the node narrows every list to them).
  if (me && me.role === "window") {
    return [
      ["open", t("open"), "status=open"], ["overdue", t("overdue_only"), "status=open&overdue=true"], ["assist", t("tab_assist"), "clock=assistance"],
      ["suspended", t("tab_suspended"), "status=suspended"], ["all", t("all_status"), "status=all"],
    ];
  }
  return [
    ["open", t("open"), "status=open"], ["overdue", t("overdue_only"), "status=open&overdue=true"], ["urgent", t("urgent_only"), "status=open&urgency=urgent"],
    ["feedback", t("tab_feedback"), "clock=feedback"], ["sign_for", t("tab_sign_for"), "clock=sign_for"], ["assist", t("tab_assist"), "clock=assistance"],
    ["suspended", t("tab_suspended"), "status=suspended"], ["mine", t("tab_mine"), "clock=any"],
    ["overruled", t("tab_overruled"), "overruled=true"], ["all", t("all_status"), "status=all"],
  ];
}
// The running clock of the case a clock tab is about: this center's
// (of the tab's kind), earliest due first.
function clockOf(c, sel) {
  if (!sel || !Array.isArray(c.clocks)) return null;
  const mine = c.clocks.filter((k) => k.unit === sel.unit && (!sel.kind || k.kind === sel.kind));
  mine.sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  return mine[0] || null;
}
// One case summary (as /api/cases and /api/search give them) as a table
// row; a click opens it. `sel` (clock tabs): show that clock's due time.
function caseRow(c, sel) {
  const k = clockOf(c, sel);
  // The number is a real link (keyboard, open in a new tab); the rest of the row opens it too.
  return h("tr", { class: "clickable", "data-case": c.number, "data-id": c.id, onclick: (ev) => { if (!ev.target.closest("a")) location.hash = "#/case/" + c.id; } },
    h("td", {}, h("a", { href: "#/case/" + c.id, class: "case-link" }, c.number)), h("td", {}, c.title), h("td", { class: "hide-narrow" }, c.category.name || c.category.code),
    h("td", {}, c.urgency.code === "urgent" ? h("span", { class: "badge urgent" }, c.urgency.name) : c.urgency.name),
    h("td", {}, c.status.name),
    h("td", { class: "hide-narrow" }, unitLabel(c.owner, c.owner_name)),
    k ? h("td", { "data-clock-kind": k.kind }, h("span", { class: "muted" }, (lang === "zh" ? k.name : k.kind) + " "), h("span", { class: k.overdue ? "clock overdue" : "clock", "data-due": k.due_at }, countdown(k.due_at)))
      : h("td", {}, c.next_due_at || !(c.waiting_calendar || []).length ? h("span", { class: clockClass(c), "data-due": c.next_due_at || "" }, countdown(c.next_due_at)) : null,
        (c.waiting_calendar || []).length ? [" ", waitingBadge(c.waiting_calendar)] : null),
    h("td", { class: "hide-narrow" }, c.supervision ? h("span", { class: "badge " + c.supervision }, gradeName(c.supervision)) : ""));
}
// A table of case summaries, paged: the first page is `first`; 加载更多
// asks `more(next)` for the page after the cursor `next` and appends it.
function caseTable(id, first, more, emptyText, sel) {
  const tbody = h("tbody", {});
  const count = h("span", { class: "muted", "data-test": "shown-count" });
  const btn = h("button", { class: "secondary", type: "button", "data-test": "load-more", id: id + "-more" }, t("load_more"));
  const err = h("div");
  let shown = 0, next = null;
  const add = (page) => {
    if (!shown && !page.cases.length) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "muted" }, emptyText || t("none"))));
    else tbody.append(...page.cases.map((c) => caseRow(c, sel)));
    shown += page.cases.length;
    next = page.next || null;
    const total = page.total === undefined || page.total === null ? null : page.total;
    count.textContent = total === null ? "" : tf(page.total_exact === false ? "shown_of_more" : "shown_of", { n: shown, total: Math.max(total, shown) });
    count.dataset.shown = shown;
    btn.hidden = !next;
  };
  btn.addEventListener("click", async () => {
    if (!next) return;
    btn.disabled = true; err.replaceChildren();
    try { add(await more(next)); } catch (e) { err.replaceChildren(errorBox(e)); } finally { btn.disabled = false; }
  });
  add(first);
  return h("div", { class: "case-list" },
    h("div", { class: "table-wrap" }, h("table", { id },
      h("thead", {}, h("tr", {}, h("th", {}, t("number")), h("th", {}, t("title")), h("th", { class: "hide-narrow" }, t("category")), h("th", {}, t("urgency")), h("th", {}, t("status")), h("th", { class: "hide-narrow" }, t("owner")), h("th", {}, t("deadline")), h("th", { class: "hide-narrow" }, t("supervision")))),
      tbody)),
    h("div", { class: "actions pager" }, count, btn), err);
}
async function queuePage() {
  newWork.seen();
  const filters = queueFilters();
  const q = filters.find((f) => f[0] === queueFilter) || filters[0];
  const base = "/api/cases?limit=" + PAGE_SIZE + "&" + q[2] + (queueWaiting ? "&waiting_calendar=true" : "");
  const data = await api.get(base);
  const waitingBox = h("input", { type: "checkbox", id: "queue-waiting", name: "waiting_calendar", onchange: () => { queueWaiting = waitingBox.checked; queuePage(); } });
  waitingBox.checked = queueWaiting;
  const isClock = q[2].startsWith("clock=");
  const kind = isClock ? q[2].slice("clock=".length) : null;
  const sel = isClock ? { unit: me.unit, kind: kind === "any" ? null : kind } : null;
  showPage("queue", h("h1", {}, t("queue") + (health ? " · " + health.name : "")),
    h("div", { class: "actions tabs", role: "tablist" }, filters.map(([k, label]) => h("button", { class: k === q[0] ? "primary" : "secondary", type: "button", role: "tab", "aria-selected": k === q[0] ? "true" : "false", "data-filter": k, onclick: () => { queueFilter = k; queuePage(); } }, label)),
      h("label", { class: "check filter" }, waitingBox, t("waiting_filter"))),
    me.role === "window" ? h("p", { class: "muted", "data-test": "window-note" }, t("window_queue_note") + "（" + (me.windows || []).map((w) => windowName(w)).join("、") + "）") : null,
    h("div", { class: "actions tools" }, exportButtons(q[2] + (queueWaiting ? "&waiting_calendar=true" : "")), alertToggle()),
    q[0] === "assist" ? h("p", { class: "muted", "data-test": "assist-note" }, t("assist_note")) : isClock ? h("p", { class: "muted", "data-test": "clock-note" }, t("clock_note")) : null,
    q[0] === "overruled" ? h("p", { class: "muted", "data-test": "overruled-note" }, t("overruled_note")) : null,
    h("div", { "data-filter": q[0], id: "queue-list" }, caseTable("queue", data, (next) => api.get(base + "&after=" + encodeURIComponent(next)), null, sel)));
}
// Search (the box in the header, on every page): by case number, phone,
// ID number or words of the title and content; the node says which it took.
async function searchPage(arg) {
  let q = "";
  try { q = decodeURIComponent(arg || "").trim(); } catch (_) { q = String(arg || "").trim(); }
  const input = document.getElementById("search-input");
  if (input && document.activeElement !== input) input.value = q;
  const title = h("h1", {}, t("search_results") + (q ? "：" + q : ""));
  if (!q) { showPage("search", title, h("p", { class: "muted" }, t("search_placeholder"))); return; }
  const base = "/api/search?limit=" + PAGE_SIZE + "&q=" + encodeURIComponent(q);
  let data;
  try { data = await api.get(base); } catch (e) {
    if (!api.token()) throw e;
    showPage("search", title, h("div", { "data-test": "search-error", "data-code": e.code || "" }, errorBox(e)));
    return;
  }
  showPage("search", title,
    data.kind ? h("p", { class: "muted", "data-test": "search-kind", "data-kind": data.kind }, t("kind_" + data.kind)) : null,
    caseTable("search-results", data, (next) => api.get(base + "&after=" + encodeURIComponent(next)), t("no_results")),
    data.hint ? h("p", { class: "muted", "data-test": "search-hint" }, lang === "zh" ? data.hint.split(" (")[0] : data.hint) : null);
}
function gradeName(g) { return { normal: "普通", yellow: "黄牌", red: "红牌", interview: "约谈" }[g] || g; }

function field(label, input, wide) {
  const errEl = h("div", { class: "field-error" });
  input.addEventListener("invalid", () => { errEl.textContent = input.validity.patternMismatch ? (input.name === "contact_phone" ? t("bad_phone") : t("bad_format")) : t("required"); });
  input.addEventListener("input", () => { errEl.textContent = ""; });
  return h("label", { class: wide ? "wide" : "" }, label, input, errEl);
}
function select(name, options, value) {
  return h("select", { name, required: true }, options.map(([v, label]) => { const o = h("option", { value: v }, label); if (v === value) o.selected = true; return o; }));
}
function filePage() {
  const big = select("big", activeCategories().map(([code, c]) => [code, code + " " + c.name]));
  const small = h("select", { name: "category", required: true });
  const fillSmall = () => {
    const c = policy.categories[big.value];
    small.replaceChildren(...activeChildren(c).map(([code, x]) => h("option", { value: code }, code + " " + x.name)));
  };
  big.addEventListener("change", fillSmall); fillSmall();
  const f = {
    title: h("input", { name: "title", required: true, maxlength: 200 }),
    content: h("textarea", { name: "content", required: true }),
    channel: select("channel", policy.channels.map((c) => [c.code, c.name])),
    request_type: select("request_type", policy.request_types.map((c) => [c.code, c.name]), "complaint"),
    urgency: select("urgency", [["normal", t("normal")], ["urgent", t("urgent")]]),
    complexity: select("complexity", [["general", t("general")], ["complex", t("complex")]]),
    address: h("input", { name: "address" }),
    people: h("input", { name: "people", type: "number", min: 1, value: 1 }),
    received: h("input", { name: "received_at", type: "datetime-local" }),
    cname: h("input", { name: "contact_name" }),
    cphone: h("input", { name: "contact_phone", pattern: "[0-9+\\- ]{5,20}", inputmode: "tel" }),
    cid: h("input", { name: "contact_id" }),
    caddr: h("input", { name: "contact_address" }),
    arose: select("arose_in", [[me.unit, t("arose_here")]]),
  };
  // 发生地: this center or any center below it.
  knownUnits().then((us) => {
    const below = us.filter((u) => !u.revoked && u.division !== me.unit && subtreePrefix(me.unit) && u.division.startsWith(subtreePrefix(me.unit)));
    below.forEach((u) => f.arose.append(h("option", { value: u.division }, u.division + " " + u.name)));
  }).catch(() => {});
  // The same complainant's cases, by fingerprint, as the operator types.
  const similarBox = h("div", { class: "wide", id: "similar" });
  const lookSimilar = async () => {
    const phone = f.cphone.value.trim(), id = f.cid.value.trim();
    if (!phone && !id) { similarBox.replaceChildren(); return; }
    try {
      const r = await api.get(`/api/cases/similar?phone=${encodeURIComponent(phone)}&id_number=${encodeURIComponent(id)}&category=${encodeURIComponent(small.value)}`);
      similarBox.replaceChildren(r.cases.length ? h("div", { class: "card" }, h("h2", {}, t("similar")), h("p", { class: "muted" }, t("similar_note")),
        h("ul", {}, r.cases.map((c) => h("li", { "data-number": c.number }, h("a", { href: "#/case/" + c.id }, c.number), " · ", c.title, " · ", c.status.name,
          c.likely_duplicate ? h("span", { class: "badge urgent" }, t("likely_duplicate")) : "", c.confirmed ? h("span", { class: "badge ok" }, t("confirmed")) : "")))) : "");
    } catch (e) { similarBox.replaceChildren(); }
  };
  f.cphone.addEventListener("change", lookSimilar); f.cid.addEventListener("change", lookSimilar); small.addEventListener("change", lookSimilar);
  const err = h("div");
  const submit = h("button", { class: "primary", type: "submit" }, t("submit"));
  const form = h("form", { class: "grid card", id: "file-form", novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    if (!form.checkValidity()) { form.querySelectorAll("input,select,textarea").forEach((i) => i.checkValidity()); return; }
    const body = {
      title: f.title.value.trim(), content: f.content.value.trim(), category: small.value, channel: f.channel.value,
      request_type: f.request_type.value, urgency: f.urgency.value, complexity: f.complexity.value,
      place: { address: f.address.value.trim() }, people_involved: Number(f.people.value || 1),
    };
    // The field is China time (as every time the console shows).
    if (f.received.value) body.received_at = f.received.value + (f.received.value.length === 16 ? ":00" : "") + "+08:00";
    if (f.cname.value || f.cphone.value || f.cid.value || f.caddr.value) {
      body.contact = { name: f.cname.value.trim(), phone: f.cphone.value.trim(), id_number: f.cid.value.trim(), address: f.caddr.value.trim() };
    }
    if (f.arose.value && f.arose.value !== me.unit) body.arose_in = f.arose.value;
    submit.disabled = true;
    try {
      const c = await api.post("/api/cases", body);
      toast(t("filed") + " " + c.number);
      // The case page opens with the receipt on top (shown this once).
      pendingReceipt = c.receipt ? c : null;
      location.hash = "#/case/" + c.id;
    } catch (e) { err.replaceChildren(errorBox(e)); } finally { submit.disabled = false; }
  } },
    field(t("title"), f.title, true), field(t("content"), f.content, true),
    field(t("channel"), f.channel), field(t("request_type"), f.request_type),
    field(t("big"), big), field(t("small"), small),
    field(t("urgency"), f.urgency), field(t("complexity"), f.complexity),
    field(t("place"), f.address), field(t("arose_in"), f.arose), field(t("people"), f.people), field(t("received_at"), f.received),
    h("h2", { class: "wide" }, t("complainant")),
    field(t("name"), f.cname), field(t("phone"), f.cphone), field(t("id_number"), f.cid), field(t("address"), f.caddr), similarBox,
    h("div", { class: "wide" }, err, h("div", { class: "actions" }, submit)));
  showPage("file", h("h1", {}, t("file")), form);
}

// The printable receipt, on the new case's page right after filing: the
// query code is shown this once.
let pendingReceipt = null;
function receiptCard(c) {
  const r = c.receipt;
  const qr = h("div", { class: "qr", id: "receipt-qr" });
  // The SVG comes from this node (the qrcode crate), not from user input.
  qr.innerHTML = r.qr_svg;
  document.body.classList.add("has-receipt");
  const card = h("div", { class: "card receipt", id: "receipt" },
    h("h1", {}, [(health && health.name) || unitFull(me.unit), t("receipt")].filter(Boolean).join(" · ")),
    h("dl", { class: "kv" },
      h("dt", {}, t("number")), h("dd", { id: "receipt-number" }, r.number),
      h("dt", {}, t("title")), h("dd", {}, c.title),
      h("dt", {}, t("received_label")), h("dd", {}, fmtTime(c.received_at)),
      h("dt", {}, t("query_code")), h("dd", { id: "receipt-code", class: "code" }, r.query_code),
      h("dt", {}, t("receipt_token")), h("dd", { id: "receipt-token", class: "token" }, r.token),
      c.skip_level ? h("dt", {}, t("skip_level")) : null, c.skip_level ? h("dd", {}, c.arose_in_name || c.arose_in) : null),
    qr, r.link ? h("p", { class: "muted" }, r.link) : null,
    h("p", { class: "muted" }, t("receipt_note")),
    h("div", { class: "actions no-print" }, h("button", { class: "primary", type: "button", id: "receipt-print", onclick: () => window.print() }, t("print")),
      h("button", { class: "secondary", type: "button", id: "receipt-done", onclick: () => { card.remove(); document.body.classList.remove("has-receipt"); } }, t("close"))));
  return card;
}

// Fields each action's form asks for.
const ACTION_FIELDS = {
  sign_for: [], archive: [],
  route: [["window", "window"], ["requirements", "text", "note"]],
  dispatch: [["to", "child"], ["requirements", "text", "note"]],
  escalate: [["reason", "text!"]], return: [["reason", "text!"]],
  reroute: [["target", "window_or_unit", "to_or_window"], ["reason", "text!"]],
  add_helpers: [["helpers", "helpers_plain", "helpers"]],
  progress: [["note", "text!"], ["public", "bool"]],
  request_extension: [["working_days", "days"], ["reason", "text!"]],
  approve_extension: [["note", "text", "note"]], refuse_extension: [["note", "text", "note"]],
  supervise: [["grade", "grade"], ["note", "text!"]],
  resolve: [["public_reply", "text!"], ["internal_note", "text"]],
  feedback: [["method", "method"], ["note", "text!"], ["invite_rating", "bool_on"]],
  rate: [["rating", "rating"], ["result_rating", "rating"], ["comment", "text"]],
  reopen: [["reason", "text!"]],
  appeal: [["reason", "text!"]], uphold_appeal: [["note", "text", "note"]], dismiss_appeal: [["note", "text", "note"]],
  merge: [["into", "line!"]],
  reply_supervision: [["measures", "text!"]],
  decline: [["referral", "referral"], ["reason", "text!"]],
  withdraw: [["confirmation", "confirmation"], ["reason", "text!"]],
  suspend: [["reason", "suspension_reason", "suspension_reason"], ["expected_on", "date!"], ["note", "text!"]],
  resume: [["note", "text", "note"]],
  request_assistance: [["helpers", "helpers"], ["requirements", "text!", "requirements_assist"]],
  reply_assistance: [["reply", "text!"]],
  supervise_assistance: [["grade", "grade"], ["note", "text!"]],
  mediation_session: [["held_on", "date!"], ["mediators", "mediators"], ["attendees", "line!"], ["notes", "text!"]],
  mediation_agreement: [],
  refer_confirmation: [["court", "line!"], ["note", "text", "note"]],
  record_confirmation: [["confirmed", "bool_on", "confirmed_flag"], ["ruling", "line!"], ["ruled_on", "date!"], ["note", "text", "note"]],
  return_visit: [["fulfilment", "fulfilment"], ["method", "method", "visit_method"], ["note", "text!"]],
};
const ACTION_ZH = {
  sign_for: "签收", route: "分流", dispatch: "下派", escalate: "上报", return: "退回", reroute: "改派", add_helpers: "协办",
  progress: "进展", request_extension: "申请延期", approve_extension: "同意延期", refuse_extension: "不同意延期", supervise: "督办",
  resolve: "办结", feedback: "反馈", rate: "评价", reopen: "重办", archive: "归档",
  appeal: "差评申诉", uphold_appeal: "申诉成立", dismiss_appeal: "申诉驳回", merge: "并单", reply_supervision: "督办回复",
  decline: "不予受理", withdraw: "撤回", suspend: "中止", resume: "恢复", request_assistance: "协办", reply_assistance: "协办回复",
  supervise_assistance: "协办督办", mediation_session: "调解", mediation_agreement: "调解协议", refer_confirmation: "申请司法确认",
  record_confirmation: "司法确认结果", return_visit: "回访",
};
let units = null;
async function knownUnits(fresh) {
  // Revoked units too: old cases name them.
  if (!units || fresh) units = (await api.get("/api/certs?revoked=include")).certs;
  return units;
}
// Select options of the policy's decision lists (only those in use).
const activeList = (obj) => Object.entries((policy.decisions && policy.decisions[obj]) || {}).filter(([, x]) => !x.retired);
// The 协办 helpers: every window of this center and every unit below,
// each ticked with its working days to reply (the policy's default).
async function helpersInput(withDays) {
  const kids = (await knownUnits()).filter((u) => isChild(u.division, me.unit) && !u.revoked);
  const days = (policy.decisions && policy.decisions.assistance_working_days) || 5;
  const rows = [...activeWindows().map(([code, w]) => ["window", code, w.name]), ...kids.map((u) => ["unit", u.division, u.division + " " + u.name])];
  const box = h("div", { class: "helpers", "data-test": "helpers" }, rows.map(([kind, code, label]) => h("div", { class: "helper-row" },
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "helper", "data-kind": kind, value: code }), label),
    withDays ? h("input", { type: "number", name: "helper_days", "data-for": kind + ":" + code, min: 1, max: (policy.decisions && policy.decisions.max_assistance_working_days) || 20, value: days, "aria-label": t("working_days_each") }) : null)));
  box.checkValidity = () => !!box.querySelector("input[name=helper]:checked");
  return box;
}
function pickedHelpers(box, withDays) {
  return [...box.querySelectorAll("input[name=helper]:checked")].map((i) => {
    const kind = i.dataset.kind, x = { [kind]: i.value };
    if (withDays) x.working_days = Number(box.querySelector(`input[data-for="${kind}:${i.value}"]`).value);
    return x;
  });
}
async function fieldInput(name, kind, c) {
  if (kind === "window" || kind === "windows") return select(name, activeWindows().map(([code, w]) => [code, w.name]));
  if (kind === "child") {
    const us = (await knownUnits()).filter((u) => isChild(u.division, me.unit) && !u.revoked);
    return select(name, us.map((u) => [u.division, u.division + " " + u.name]));
  }
  if (kind === "window_or_unit") {
    // 改派: a window of this center or a center below.
    const us = (await knownUnits()).filter((u) => isChild(u.division, me.unit) && !u.revoked);
    return select(name, [...activeWindows().map(([code, w]) => ["w:" + code, t("window") + " · " + w.name]), ...us.map((u) => ["u:" + u.division, u.division + " " + u.name])]);
  }
  if (kind === "helpers" || kind === "helpers_plain") return helpersInput(kind === "helpers");
  if (kind === "grade") return select(name, [["normal", "普通"], ["yellow", "黄牌"], ["red", "红牌"], ["interview", "约谈"]]);
  if (kind === "rating") return select(name, [["satisfied", "满意"], ["basic", "基本满意"], ["unsatisfied", "不满意"]]);
  if (kind === "method") return select(name, [["phone", "电话"], ["visit", "上门"], ["sms", "短信"]]);
  if (kind === "referral") return select(name, activeList("referrals").map(([code, r]) => [code, r.name]));
  if (kind === "suspension_reason") return select(name, activeList("suspension_reasons").map(([code, r]) => [code, r.name]));
  if (kind === "confirmation") return select(name, [["phone", "电话确认"], ["in_person", "当面确认"], ["written", "书面申请"], ["online", "网上申请"]]);
  if (kind === "fulfilment") return select(name, [["kept", "已履行"], ["in_progress", "正在履行"], ["partly", "部分履行"], ["not_kept", "未履行"]]);
  if (kind === "days") return h("input", { name, type: "number", min: 1, max: policy.deadlines.max_extension_working_days, value: 3, required: true });
  if (kind === "date!") return h("input", { name, type: "date", required: true });
  if (kind === "mediators") return h("input", { name, required: true, maxlength: 200, value: me.mediator ? me.username : "" });
  if (kind === "bool" || kind === "bool_on") { const i = h("input", { name, type: "checkbox" }); if (kind === "bool_on") i.checked = true; return i; }
  if (kind === "line!") return h("input", { name, required: true, maxlength: 64 });
  return h("textarea", { name, required: kind === "text!" });
}
function fieldValue(body, name, input, kind) {
  if (kind === "bool" || kind === "bool_on") body[name] = input.checked;
  else if (kind === "days") body[name] = Number(input.value);
  else if (kind === "windows") body[name] = [input.value];
  else if (kind === "window_or_unit") { const [k, v] = input.value.split(":"); if (k === "w") body.window = v; else body.to = v; }
  else if (kind === "helpers") body.helpers = pickedHelpers(input, true);
  else if (kind === "helpers_plain") { const hs = pickedHelpers(input, false); body.windows = hs.filter((x) => x.window).map((x) => x.window); body.units = hs.filter((x) => x.unit).map((x) => x.unit); }
  else if (kind === "mediators") body[name] = input.value.split(/[,，\s]+/).filter(Boolean);
  else body[name] = input.value.trim();
}
// The 协办 request a user answers: the one waiting for this center, or for
// one of its windows (a window account: its own).
function assistToAnswer(c) {
  return ((c.decisions && c.decisions.assists) || []).find((a) => a.pending && (a.helper.unit ? a.helper.unit === me.unit && me.role !== "window"
    : a.by === me.unit && (me.role !== "window" || (me.windows || []).includes(a.helper.window))));
}
async function actionForm(c, code, onDone) {
  if (code === "mediation_agreement") return agreementForm(c, onDone);
  const inputs = {};
  const parts = [];
  for (const [name, kind, labelKey] of ACTION_FIELDS[code]) {
    const input = await fieldInput(name, kind, c);
    inputs[name] = [input, kind];
    parts.push(kind === "bool" || kind === "bool_on" ? h("label", { class: "check" }, input, t(labelKey || name)) : field(t(labelKey || name), input, kind.startsWith("text") || kind.startsWith("helpers")));
  }
  const err = h("div");
  const submit = h("button", { class: "primary", type: "submit", "data-submit": code }, t("confirm") + " · " + (lang === "zh" ? ACTION_ZH[code] : code));
  const form = h("form", { class: "grid card", id: "action-form", "data-action": code, novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    const helpers = Object.values(inputs).find(([, kind]) => kind.startsWith("helpers"));
    if (helpers && !helpers[0].checkValidity()) { err.replaceChildren(errorBox({ code: "bad_request", message: t("choose_helper") })); return; }
    if (!form.checkValidity()) { form.querySelectorAll("input,select,textarea").forEach((i) => i.checkValidity()); return; }
    const body = { action: code };
    for (const [name, [input, kind]] of Object.entries(inputs)) fieldValue(body, name, input, kind);
    if (code === "reply_assistance" || code === "supervise_assistance") {
      const a = code === "reply_assistance" ? assistToAnswer(c) : ((c.decisions && c.decisions.assists) || []).find((x) => x.pending && x.by === me.unit);
      if (a) { body.request = a.request; if (code === "reply_assistance" && a.helper.window) body.window = a.helper.window; if (code === "supervise_assistance") body.helper = a.helper.window ? { window: a.helper.window } : { unit: a.helper.unit }; }
    }
    submit.disabled = true;
    try {
      const r = await api.post(`/api/cases/${c.id}/actions`, body);
      toast(t("ok"));
      if (r.rating_invitation && r.rating_invitation.sent_by_message) {
        toast(t("rating_token_sent"));
        onDone();
      } else if (r.rating_invitation) {
        // The token is shown this once: keep it on screen until dismissed.
        form.replaceChildren(h("div", { class: "wide", id: "rating-token" }, h("h2", {}, t("rating_token")), h("p", { class: "code" }, r.rating_invitation.token),
          r.rating_invitation.link ? h("p", { class: "muted" }, r.rating_invitation.link) : null, h("p", { class: "muted" }, t("rating_token_note")),
          h("button", { class: "primary", type: "button", onclick: onDone }, t("ok"))));
      } else onDone();
    }
    catch (e) { err.replaceChildren(errorBox(e)); }
    finally { submit.disabled = false; }
  } }, parts, h("div", { class: "wide" }, err, h("div", { class: "actions" }, submit, h("button", { class: "secondary", type: "button", onclick: onDone }, t("cancel")))));
  return form;
}
// 调解协议书: the parties, the matter, the terms and how they are kept; the
// scans of the signed agreement uploaded as attachments, then named.
function agreementForm(c, onDone) {
  const partyRow = () => h("div", { class: "party grid", "data-test": "party" },
    ...[["name", true], ["gender"], ["ethnicity"], ["age"], ["occupation"], ["phone"], ["address"]].map(([k, req]) =>
      field(t(k === "name" ? "party_name" : k), h("input", { name: "party_" + k, required: !!req, maxlength: k === "address" ? 200 : 50 }))));
  const parties = h("div", { id: "parties" }, partyRow(), partyRow());
  const f = {
    matter: h("textarea", { name: "matter", required: true }), terms: h("textarea", { name: "terms", required: true }),
    performance: h("textarea", { name: "performance" }), copies: h("input", { name: "copies", type: "number", min: 1, max: 10, value: 3 }),
    signed_on: h("input", { name: "signed_on", type: "date", required: true }), mediators: h("input", { name: "mediators", required: true, value: me.mediator ? me.username : "" }),
    scans: h("input", { name: "scans", type: "file", multiple: true, required: true }),
  };
  const err = h("div");
  const submit = h("button", { class: "primary", type: "submit", "data-submit": "mediation_agreement" }, t("confirm") + " · " + ACTION_ZH.mediation_agreement);
  const form = h("form", { class: "grid card", id: "action-form", "data-action": "mediation_agreement", novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    if (!form.checkValidity()) { form.querySelectorAll("input,select,textarea").forEach((i) => i.checkValidity()); return; }
    submit.disabled = true;
    try {
      const signatures = [];
      for (const file of f.scans.files) {
        const res = await fetch(`/api/cases/${c.id}/attachments?name=${encodeURIComponent(file.name)}`, {
          method: "POST", headers: { Authorization: "Bearer " + api.token(), "Content-Type": file.type || "application/octet-stream" }, body: file,
        });
        const v = await res.json();
        if (!res.ok) throw v.error || { code: "http_" + res.status, message: "" };
        const mine = v.attachments.filter((a) => a.name === file.name && a.size === file.size);
        signatures.push(mine[mine.length - 1].blob);
      }
      const doc = {
        parties: [...parties.querySelectorAll("[data-test=party]")].map((row) => Object.fromEntries(["name", "gender", "ethnicity", "age", "occupation", "phone", "address"].map((k) => [k, row.querySelector(`[name=party_${k}]`).value.trim()]))),
        matter: f.matter.value.trim(), terms: f.terms.value.trim(), performance: f.performance.value.trim(), copies: Number(f.copies.value || 0),
      };
      const body = { action: "mediation_agreement", document: doc, signatures, mediators: f.mediators.value.split(/[,，\s]+/).filter(Boolean), signed_on: f.signed_on.value };
      await api.post(`/api/cases/${c.id}/actions`, body);
      toast(t("ok")); onDone();
    } catch (e) { err.replaceChildren(errorBox(e)); } finally { submit.disabled = false; }
  } },
    h("h2", { class: "wide" }, t("parties")), h("div", { class: "wide" }, parties,
      h("button", { class: "secondary", type: "button", "data-test": "add-party", onclick: () => parties.append(partyRow()) }, t("add_party"))),
    field(t("matter"), f.matter, true), field(t("terms"), f.terms, true), field(t("performance"), f.performance, true),
    field(t("copies"), f.copies), field(t("signed_on"), f.signed_on), field(t("mediators"), f.mediators), field(t("scans"), f.scans, true),
    h("div", { class: "wide" }, err, h("div", { class: "actions" }, submit, h("button", { class: "secondary", type: "button", onclick: onDone }, t("cancel")))));
  return form;
}
function isChild(code, parent) { return parentOf(code) === parent; }

async function casePage(id) {
  const c = await api.get("/api/cases/" + id);
  const receipt = pendingReceipt && pendingReceipt.id === c.id ? receiptCard(pendingReceipt) : null;
  pendingReceipt = null;
  if (!receipt) document.body.classList.remove("has-receipt");
  const formSlot = h("div");
  const allowed = c.allowed_actions || [];
  const actionButtons = allowed.map((code) => h("button", { class: "secondary", type: "button", "data-action": code, onclick: async () => {
    formSlot.replaceChildren(await actionForm(c, code, () => casePage(id)));
    formSlot.scrollIntoView({ block: "nearest" });
  } }, lang === "zh" ? ACTION_ZH[code] : code));
  const contact = c.contact ? h("dl", { class: "kv" },
    h("dt", {}, t("name")), h("dd", {}, c.contact.name || "—"), h("dt", {}, t("phone")), h("dd", { "data-test": "phone" }, c.contact.phone || "—"),
    h("dt", {}, t("id_number")), h("dd", {}, c.contact.id_number || "—"), h("dt", {}, t("address")), h("dd", {}, c.contact.address || "—")) : h("p", { class: "muted" }, t("none"));
  const deadlines = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("deadline")), h("th", {}, t("unit")), h("th", {}, "到期"), h("th", {}, t("status")))),
    h("tbody", {}, c.deadlines.map((d) => h("tr", { "data-clock": d.clock || "" }, h("td", {}, d.kind_zh), h("td", {}, unitLabel(d.unit, d.unit_name)),
      h("td", {}, d.clock === "waiting_for_calendar" && !d.due_at ? t("pending") : fmtTime(d.due_at)),
      h("td", {}, d.clock === "waiting_for_calendar" ? waitingBadge([d.waiting_year])
        : d.running ? h("span", { class: d.clock === "overdue" ? "clock overdue" : d.clock === "due_soon" ? "clock due-soon" : "clock" }, countdown(d.due_at)) : (d.met_at ? (d.on_time ? "按时完成" : "超时完成") : "—"))))));
  const timeline = h("ol", { class: "timeline", id: "timeline" }, c.timeline.map((e) => h("li", { class: e.accepted ? "" : "rejected", "data-action": e.action },
    h("div", { class: "when" }, fmtTime(e.time), " · ", unitLabel(e.unit, e.unit_name, { "data-test": "timeline-unit" }), " · ",
      h("span", { class: "operator", "data-test": "timeline-operator", title: e.operator }, e.operator_name || e.operator)),
    h("div", {}, h("strong", {}, lang === "zh" ? e.action_zh : e.action), " ", detailText(e.details)),
    e.overruled_by ? h("div", { class: "overruled", "data-test": "overruled" }, t("overruled") + "：",
      (lang === "zh" ? e.overruled_by.action_zh : e.overruled_by.action) + " · " + (e.overruled_by.unit_name || e.overruled_by.unit) + " · " + fmtTime(e.overruled_by.time)) : "",
    h("div", { class: "muted" }, e.accepted ? "" : (e.overruled_by ? t("overruled") : t("rejected")) + "：" + (lang === "zh" && e.rejected.message_zh || e.rejected.message) + " · ",
      t("signature") + " ", h("span", { class: e.signature_valid ? "badge ok" : "badge no" }, e.signature_valid ? "✓ " + t("verified") : "✗ " + t("failed"))))));
  showPage("case",
    h("h1", { "data-status": c.status.code }, `${c.number} · ${c.title}`),
    receipt,
    h("div", { class: "row" },
      h("div", { class: "card" }, h("dl", { class: "kv" },
        h("dt", {}, t("status")), h("dd", { id: "case-status" }, c.status.name, c.overdue ? h("span", { class: "badge urgent" }, " 超期") : ""),
        h("dt", {}, t("owner")), h("dd", { id: "case-owner" }, c.owner + (unitFull(c.owner, c.owner_name) ? " " + unitFull(c.owner, c.owner_name) : "") + (c.window_name ? " · " + c.window_name : "")),
        h("dt", {}, t("category")), h("dd", {}, (c.category.parent_name ? c.category.parent_name + " / " : "") + (c.category.name || c.category.code)),
        h("dt", {}, t("channel")), h("dd", {}, c.channel.name), h("dt", {}, t("urgency")), h("dd", {}, c.urgency.name),
        h("dt", {}, t("place")), h("dd", {}, c.place.address || "—"),
        h("dt", {}, t("arose_in")), h("dd", { id: "case-arose" }, unitFull(c.arose_in, c.arose_in_name) || c.arose_in, c.skip_level ? h("span", { class: "badge urgent" }, t("skip_level")) : ""),
        h("dt", {}, t("supervision")), h("dd", {}, c.supervision ? c.supervision.name : "—"),
        h("dt", {}, t("content")), h("dd", {}, c.content))),
      h("div", { class: "card" }, h("h2", {}, t("complainant")), contact, h("p", { class: "muted" }, t("masked_note")))),
    c.read_only ? h("div", { class: "card banner amber", id: "case-read-only" }, h("strong", {}, "⚠ " + t("read_only") + "："), c.read_only.message) : null,
    h("div", { class: "card" }, h("h2", {}, t("actions")), allowed.length ? h("div", { class: "actions", id: "case-actions" }, actionButtons) : h("p", { class: "muted" }, me.role === "viewer" ? t("allowed_none") : t("no_actions")), formSlot),
    (c.notices || []).length ? noticesCard(c.notices) : null,
    ...decisionCards(c),
    (c.ratings || []).length ? h("div", { class: "card", id: "ratings" }, h("h2", {}, t("ratings")), h("ul", {}, c.ratings.map((r) => h("li", { "data-by": r.by, "data-appeal": r.appeal || "" },
      fmtTime(r.at), " · ", r.by === "citizen" ? t("by_citizen") : t("by_staff"), "：", r.rating.name, r.result_rating ? `（${t("result_rating")}：${r.result_rating.name}）` : "",
      r.appeal ? h("span", { class: r.appeal === "upheld" ? "badge ok" : "badge" }, t("appeal_" + r.appeal)) : "")))) : null,
    printCard(c),
    attachmentsCard(c, () => casePage(id)),
    await publicLocksCard(c, () => casePage(id)),
    h("div", { class: "card" }, h("h2", {}, t("deadlines")), h("div", { class: "table-wrap" }, deadlines)),
    h("div", { class: "card" }, h("h2", {}, t("timeline")), timeline));
}
// 督办 of format 4 and their replies: who supervised whom, by when a reply
// is due, the measures the supervised unit reported, and what is late.
function noticesCard(notices) {
  return h("div", { class: "card", id: "notices" }, h("h2", {}, t("notices")), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["time", "notice_grade", "unit", "notice_to", "reply_due", "status", "measures"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, notices.map((n) => h("tr", { "data-notice": n.id, "data-replied": n.replied_at ? "yes" : "no", class: n.late ? "late" : "" },
      h("td", {}, fmtTime(n.at)), h("td", {}, n.grade.name), h("td", {}, unitLabel(n.by, n.by_name)), h("td", {}, unitLabel(n.to, n.to_name)),
      h("td", {}, fmtTime(n.reply_due_at)),
      h("td", {}, n.replied_at ? `${t("replied")} ${fmtTime(n.replied_at)}` : n.superseded_by ? t("superseded_by") : t("not_replied"),
        n.late ? h("span", { class: "badge urgent" }, t("late")) : ""),
      h("td", { "data-test": "measures" }, n.measures || "—")))))));
}
// Where this node serves the public page: the client addresses locked out
// of the case's number after wrong query codes, and for operators the
// button that lets them in again (a citizen who called the center).
async function publicLocksCard(c, reload) {
  if (!health || !health.public_page || !me || me.role === "viewer") return null;
  let locks;
  try { locks = await api.get(`/api/cases/${c.id}/public-locks`); } catch (_) { return null; }
  if (!locks.locked_addresses.length) return null;
  const err = h("div");
  return h("div", { class: "card", id: "public-locks" }, h("h2", {}, t("public_locks")),
    h("p", {}, tf("public_locked", { n: locks.locked_addresses.length }), " ", locks.locked_addresses.map((l) => `${l.address}（${t("until")} ${fmtTime(l.until)}）`).join("、")),
    h("button", { class: "primary", type: "button", "data-test": "public-unlock", onclick: async () => {
      err.replaceChildren();
      try { await api.post(`/api/cases/${c.id}/public-unlock`, {}); toast(t("unlocked")); reload(); } catch (e) { err.replaceChildren(errorBox(e)); }
    } }, t("public_unlock")), err);
}
// The decisions of record format 4 on the case page: 不予受理 with the
// referral, 撤回, 中止 (and 恢复), the 协办 requests with their deadlines and
// replies, and the mediation (sessions, agreement, 司法确认, 回访).
function decisionCards(c) {
  const d = c.decisions || {};
  const out = [];
  if (d.declined) out.push(h("div", { class: "card banner amber", id: "declined" }, h("strong", {}, t("declined_title") + "："), d.declined.reason,
    h("div", {}, t("referral") + "：", h("strong", { "data-test": "referral" }, d.declined.referral.name || d.declined.referral.code), d.declined.referral.guidance ? "（" + d.declined.referral.guidance + "）" : "")));
  if (d.withdrawn) out.push(h("div", { class: "card banner amber", id: "withdrawn" }, h("strong", {}, t("withdrawn_title") + "："), `${d.withdrawn.confirmation.name} · ${d.withdrawn.reason} · ${fmtTime(d.withdrawn.at)}`));
  const susp = d.suspensions || [];
  if (susp.length) out.push(h("div", { class: "card", id: "suspensions" }, h("h2", {}, t("suspended_title")), h("ul", {}, susp.map((x) => h("li", { "data-resumed": x.resumed_at ? "yes" : "no", class: x.late ? "late" : "" },
    `${fmtTime(x.at)} · ${x.reason.name || x.reason.code} · ${x.note} · ${t("suspension_expected")} ${fmtTime(x.expected_at).slice(0, 10)}`,
    x.resumed_at ? ` · ${t("resumed_at")} ${fmtTime(x.resumed_at)}` : "", x.late ? h("span", { class: "badge urgent" }, t("late")) : "")))));
  const assists = d.assists || [];
  if (assists.length) out.push(h("div", { class: "card", id: "assists" }, h("h2", {}, t("assists")), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["assist_helper", "requirements_assist", "assist_due", "status", "assist_reply"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, assists.map((a) => h("tr", { "data-helper": a.helper.window || a.helper.unit, "data-replied": a.replied_at ? "yes" : "no", class: a.late ? "late" : "" },
      h("td", {}, a.helper.window ? t("window") + " · " + (a.helper.name || a.helper.window) : unitLabel(a.helper.unit, a.helper.name)),
      h("td", {}, a.requirements), h("td", {}, fmtTime(a.due_at)),
      h("td", {}, a.replied_at ? `${t("replied")} ${fmtTime(a.replied_at)}` : a.ended ? t("assist_ended") : t("assist_pending"),
        a.late ? h("span", { class: "badge urgent" }, t("late")) : "", a.supervision ? h("span", { class: "badge " + a.supervision.code }, "协办督办 " + a.supervision.name) : ""),
      h("td", { "data-test": "assist-reply" }, a.reply || "—"))))))));
  const m = d.mediation || { sessions: [], agreements: [] };
  if (m.sessions.length || m.agreements.length) {
    const ag = m.agreements[m.agreements.length - 1];
    out.push(h("div", { class: "card", id: "mediation" }, h("h2", {}, t("mediation")),
      m.sessions.length ? [h("h3", {}, t("sessions")), h("ul", { id: "sessions" }, m.sessions.map((x) => h("li", {},
        `${fmtTime(x.held_at).slice(0, 10)} · ${x.mediators.map((p) => p.name).join("、")} · ${x.attendees} · ${x.notes}`)))] : null,
      ag ? [h("h3", {}, t("agreement")), h("p", { id: "agreement-summary" }, `${fmtTime(ag.signed_at).slice(0, 10)} · ${ag.mediators.map((p) => p.name).join("、")}`,
        ag.document ? " · " + ag.document.terms : ""),
        h("p", {}, t("scans") + "：", ag.signatures.map((x) => x.name || x.blob.slice(0, 8)).join("、")),
        ag.confirmation ? h("p", { id: "confirmation" }, `${t("confirmation_title")}：${ag.confirmation.court} · ${fmtTime(ag.confirmation.at)}`,
          ag.confirmation.ruling ? ` · ${ag.confirmation.ruling.confirmed ? "确认有效" : "不予确认"}（${ag.confirmation.ruling.ruling}）` : "") : null,
        ag.visits.length ? h("ul", { id: "visits" }, ag.visits.map((v) => h("li", {}, `${t("visits")} ${fmtTime(v.at)} · ${v.fulfilment.name} · ${v.note}`))) : null,
        h("div", { class: "actions no-print" }, h("a", { class: "button secondary", id: "print-agreement", href: `#/agreement/${c.id}` }, t("print_agreement")))] : null));
  }
  return out;
}
// The printable 人民调解协议书 (zh-CN, the official layout): number, the
// parties, the matter, the terms, how they are kept, copies, signatures
// (the parties, the mediators), date and the center.
async function agreementPage(id) {
  const c = await api.get("/api/cases/" + id);
  const ms = (c.decisions && c.decisions.mediation && c.decisions.mediation.agreements) || [];
  const ag = ms[ms.length - 1];
  if (!ag || !ag.document) { showPage("agreement", h("p", { class: "muted" }, t("none"))); return; }
  const doc = ag.document;
  // The date as signed in China (the time carries +08:00), whatever the
  // browser's own time zone.
  const [y, m, dd] = ag.signed_at.slice(0, 10).split("-").map(Number);
  const cn = `${y}年${m}月${dd}日`;
  const center = health ? health.name : unitFull(ag.unit, ag.unit_name);
  const party = (p, i) => h("div", { class: "ag-party", "data-test": "ag-party" },
    h("p", {}, `当事人${i + 1}：${p.name}　性别：${p.gender || "　"}　民族：${p.ethnicity || "　"}　年龄：${p.age || "　"}`),
    h("p", {}, `职业或职务：${p.occupation || "　"}　联系方式：${p.phone || "　"}`), h("p", {}, `单位或住址：${p.address || "　"}`));
  document.body.classList.add("has-agreement");
  showPage("agreement", h("div", { class: "agreement-doc", id: "agreement" },
    h("h1", {}, "人民调解协议书"), h("p", { class: "ag-number" }, `编号：${doc.number || c.number}`),
    doc.parties.map(party),
    h("h2", {}, "纠纷主要事实、争议事项："), h("p", { class: "ag-text" }, doc.matter),
    h("h2", {}, "经调解，自愿达成如下协议："), h("p", { class: "ag-text", id: "ag-terms" }, doc.terms),
    h("h2", {}, "履行方式、时限："), h("p", { class: "ag-text" }, doc.performance || "　"),
    h("p", {}, `本协议一式${doc.copies || 3}份，当事人、人民调解委员会各持一份。`),
    h("div", { class: "ag-signatures" },
      h("div", {}, h("p", {}, "当事人（签名盖章或按指印）："), doc.parties.map((p) => h("p", { class: "ag-sign" }, p.name + "：＿＿＿＿＿＿"))),
      h("div", {}, h("p", {}, "人民调解员（签名）："), ag.mediators.map((p) => h("p", { class: "ag-sign" }, p.name + "：＿＿＿＿＿＿")),
        h("p", { class: "ag-seal" }, `（${center}）`), h("p", { id: "ag-date" }, cn))),
    h("div", { class: "actions no-print" }, h("button", { class: "primary", type: "button", id: "agreement-print", onclick: () => window.print() }, t("print")),
      h("a", { class: "button secondary", href: "#/case/" + c.id, onclick: () => document.body.classList.remove("has-agreement") }, t("to_case")))));
}
// Evidence: the case's attachments (downloaded with the session's token)
// and, for operators while the case is open, an upload.
function attachmentsCard(c, reload) {
  const err = h("div");
  const list = c.attachments.length ? h("ul", { id: "attachments" }, c.attachments.map((a) => h("li", {},
    h("button", { class: "link-dark", type: "button", onclick: async () => {
      const res = await fetch(`/api/cases/${c.id}/attachments/${a.blob}`, { headers: { Authorization: "Bearer " + api.token() } });
      if (!res.ok) { err.replaceChildren(errorBox({ code: "http_" + res.status, message: await res.text() })); return; }
      const link = h("a", { href: URL.createObjectURL(await res.blob()), download: a.name }); link.click();
    } }, a.name), ` · ${(a.size / 1024).toFixed(1)} KB · `, unitLabel(a.unit),
    previewable(a) ? [" ", h("button", { class: "secondary small", type: "button", "data-preview": a.blob, onclick: () => previewAttachment(c, a, err) }, t("preview_file"))] : null))) : h("p", { class: "muted" }, t("none"));
  const open = !["archived", "merged", "void"].includes(c.status.code);
  let upload = null;
  if (me.role !== "viewer" && open) {
    const input = h("input", { type: "file", name: "attachment", id: "attachment-file" });
    upload = h("form", { class: "actions", id: "attach-form", onsubmit: async (ev) => {
      ev.preventDefault(); err.replaceChildren();
      const f = input.files[0];
      if (!f) { err.replaceChildren(errorBox({ code: "bad_request", message: lang === "zh" ? "请选择文件" : "choose a file" })); return; }
      try {
        const res = await fetch(`/api/cases/${c.id}/attachments?name=${encodeURIComponent(f.name)}`, {
          method: "POST", headers: { Authorization: "Bearer " + api.token(), "Content-Type": f.type || "application/octet-stream" }, body: f,
        });
        if (!res.ok) {
          const body = await res.json().catch(() => ({}));
          throw body.error || { code: res.status === 413 ? "too_large" : "http_" + res.status, message: "" };
        }
        toast(t("ok")); reload();
      } catch (e) { err.replaceChildren(errorBox(e)); }
    } }, input, h("button", { class: "secondary", type: "submit" }, t("upload")));
  }
  return h("div", { class: "card" }, h("h2", {}, t("attachments")), list, upload, err);
}

function detailText(d) {
  if (!d || typeof d !== "object") return "";
  return Object.entries(d)
    .filter(([k, v]) => v !== null && v !== "" && !k.endsWith("_zh") && !["grade", "blob", "mime", "size"].includes(k) && (typeof v !== "object" || (k === "windows" && Array.isArray(v) && v.length)))
    .map(([k, v]) => (k === "window" ? windowName(v) : k === "windows" ? v.map((w) => windowName(w)).join("、") : String(v)))
    .join("；");
}

async function boardPage() {
  const data = await api.get("/api/cases?status=open&owner=all&overdue=true&limit=1000");
  const mine = data.cases.filter((c) => c.owner.startsWith(subtreePrefix(me.unit)));
  // The 督办 waiting for a reply anywhere in the subtree (督办回复 clocks
  // of every unit), soonest first, the late ones marked.
  const owed = await api.get("/api/cases?clock=supervision_reply&clock_of=all&limit=200");
  const replies = [];
  for (const c of owed.cases) {
    for (const k of (c.clocks || []).filter((k) => k.kind === "supervision_reply" && String(k.unit).startsWith(subtreePrefix(me.unit)))) replies.push([c, k]);
  }
  replies.sort((a, b) => String(a[1].due_at).localeCompare(String(b[1].due_at)));
  const repliesCard = h("div", { class: "card", id: "replies-owed" }, h("h2", {}, t("replies_owed"), " ", h("span", { class: "badge" + (replies.some(([, k]) => k.overdue) ? " red" : "") }, replies.length)),
    replies.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["number", "title", "reply_by", "reply_due", "status"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, replies.map(([c, k]) => h("tr", { "data-case": c.number, "data-late": k.overdue ? "yes" : "no", class: k.overdue ? "late" : "" },
        h("td", {}, h("a", { href: "#/case/" + c.id, class: "case-link" }, c.number)), h("td", {}, c.title), h("td", {}, unitLabel(k.unit, k.unit_name)),
        h("td", {}, fmtTime(k.due_at)), h("td", {}, k.overdue ? h("span", { class: "badge urgent" }, t("late")) : t("not_replied"))))))) : h("p", { class: "muted" }, t("no_replies_owed")));
  const cols = [["none", "未督办"], ["normal", "普通"], ["yellow", "黄牌"], ["red", "红牌"], ["interview", "约谈"]];
  const cal = health && health.calendar;
  const waiting = cal && cal.cases_waiting !== undefined && cal.cases_waiting !== null
    ? h("p", {}, h("button", { class: "link-dark", type: "button", "data-test": "board-waiting-calendar", "data-count": cal.cases_waiting,
      onclick: () => { queueWaiting = true; queueFilter = "open"; location.hash = "#/queue"; } }, `${t("waiting_cases")}: ${cal.cases_waiting}`),
      cal.cases_waiting > 0 && cal.missing && cal.missing.length ? h("span", { class: "muted" }, "（" + tf("waiting_badge", { y: cal.missing.join("、") }) + "）") : null)
    : null;
  showPage("board", h("h1", {}, t("board")), h("p", { class: "muted" }, lang === "zh" ? `${mine.length} 件超期案件` : `${mine.length} overdue cases`), waiting,
    h("div", { class: "board", id: "board" }, cols.map(([g, label]) => {
      const items = mine.filter((c) => (c.supervision || "none") === g);
      return h("div", { class: "col", "data-grade": g }, h("h3", {}, label, " ", h("span", { class: "badge " + g }, items.length)),
        items.map((c) => h("div", { class: "item", onclick: () => { location.hash = "#/case/" + c.id; } }, h("div", {}, c.number), h("div", {}, c.title), h("div", { class: "clock overdue" }, countdown(c.next_due_at)), h("div", { class: "muted" }, unitLabel(c.owner, c.owner_name)))));
    })), repliesCard);
}
function subtreePrefix(code) {
  return code.endsWith("00000000") ? code.slice(0, 4) : code.endsWith("000000") ? code.slice(0, 6) : code.endsWith("000") ? code.slice(0, 9) : code;
}

// ---------- charts (plain SVG) ----------
function barChart(items, opts) {
  // items: [{label, value, target}], values 0..max
  const w = 640, rowH = 24, left = 150, pad = 8;
  const max = opts.max || Math.max(1, ...items.map((i) => Math.max(i.value || 0, i.target || 0)));
  const hgt = items.length * rowH + pad * 2 + 14;
  const svg = [`<svg class="chart" viewBox="0 0 ${w} ${hgt}" role="img" aria-label="${opts.title || ""}">`];
  items.forEach((it, i) => {
    const y = pad + i * rowH;
    const bw = it.value === null ? 0 : (it.value / max) * (w - left - 60);
    const color = it.meets === false ? "#c0262d" : it.meets === true ? "#1d7a46" : "#1f5fa8";
    svg.push(`<text x="${left - 6}" y="${y + 15}" text-anchor="end">${it.title ? `<title>${esc(it.title)}</title>` : ""}${esc(it.label)}</text>`);
    svg.push(`<rect x="${left}" y="${y + 4}" width="${Math.max(0, bw)}" height="${rowH - 8}" fill="${color}" rx="2"></rect>`);
    svg.push(`<text x="${left + bw + 4}" y="${y + 15}">${esc(it.value === null ? "—" : opts.fmt ? opts.fmt(it.value) : it.value)}</text>`);
    if (it.target !== undefined && it.target !== null) {
      const tx = left + (it.target / max) * (w - left - 60);
      svg.push(`<line x1="${tx}" x2="${tx}" y1="${y + 1}" y2="${y + rowH - 1}" stroke="#b86e00" stroke-width="2" stroke-dasharray="3 2"></line>`);
    }
  });
  svg.push("</svg>");
  return h("div", { html: svg.join("") });
}
function lineChart(points, series) {
  const w = 640, hgt = 200, left = 40, bottom = 24, top = 10;
  const max = Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key] || 0)));
  const x = (i) => left + (points.length <= 1 ? 0 : (i / (points.length - 1)) * (w - left - 20));
  const y = (v) => top + (1 - v / max) * (hgt - top - bottom);
  const svg = [`<svg class="chart" viewBox="0 0 ${w} ${hgt}">`, `<line x1="${left}" x2="${w - 10}" y1="${y(0)}" y2="${y(0)}" stroke="#d9dee3"></line>`, `<text x="4" y="${y(max) + 4}">${max}</text>`];
  series.forEach((s) => {
    svg.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.map((p, i) => `${x(i)},${y(p[s.key] || 0)}`).join(" ")}"></polyline>`);
    points.forEach((p, i) => svg.push(`<circle cx="${x(i)}" cy="${y(p[s.key] || 0)}" r="3" fill="${s.color}"></circle>`));
  });
  points.forEach((p, i) => svg.push(`<text x="${x(i)}" y="${hgt - 6}" text-anchor="middle">${esc(p.label)}</text>`));
  series.forEach((s, i) => svg.push(`<text x="${left + 10 + i * 90}" y="${top + 10}" fill="${s.color}">● ${esc(s.label)}</text>`));
  svg.push("</svg>");
  return h("div", { html: svg.join("") });
}
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

// A statistics row's group: a unit (division code) by its short name, the
// full name on hover; a category or channel by its name.
const isDivision = (g) => /^\d{12}$/.test(g || "");
function groupLabel(r) {
  if (isDivision(r.group)) return [r.group + " ", unitLabel(r.group, r.name, { "data-test": "group-name" })];
  // A person: `unit:username`, shown as the name and the center.
  const person = /^(\d{12}):(.+)$/.exec(r.group || "");
  if (person) return [h("span", { "data-test": "group-name" }, r.name || person[2]), "（", unitLabel(person[1]), "）"];
  return `${r.group} ${r.name || ""}`;
}
function groupTitle(r) { return isDivision(r.group) ? `${unitFull(r.group, r.name) || r.group}（${r.group}）` : `${r.group} ${r.name || ""}`.trim(); }
// Chart labels: short unit names fit; anything else is cut to `max` characters.
function chartLabel(r, max) {
  const label = isDivision(r.group) ? unitShort(r.group, r.name) : r.name || r.group;
  return label.length > max ? label.slice(0, max - 1) + "…" : label;
}
// The city's table by unit has thousands of rows: the city opens by county.
let statsState = { period: null, by: null };
const STATS_PAGE = 200;
async function statsPage() {
  const now = chinaDate(Date.now());
  if (!statsState.period) statsState.period = chinaMonth(0);
  if (!statsState.by) statsState.by = health && health.level === "city" ? "county" : "unit";
  const periods = [];
  for (let i = 0; i < 12; i++) periods.push([chinaMonth(i), chinaMonth(i)]);
  const q = Math.floor(now.getUTCMonth() / 3) + 1, year = now.getUTCFullYear();
  periods.push([`${year}-Q${q}`, `${year} Q${q}`], [String(year), String(year)]);
  const periodSel = select("period", periods, statsState.period);
  const bySel = select("by", [["unit", t("by_unit")], ["level", t("by_level")], ["county", t("by_county")], ["township", t("by_township")], ["village", t("by_village")], ["category", t("by_cat")], ["channel", t("by_channel")], ["window", t("by_window")], ["person", t("by_person")]], statsState.by);
  const actors = statsState.by === "window" || statsState.by === "person";
  periodSel.addEventListener("change", () => { statsState.period = periodSel.value; statsPage(); });
  bySel.addEventListener("change", () => { statsState.by = bySel.value; statsPage(); });
  const qs = `period=${encodeURIComponent(statsState.period)}&by=${statsState.by}`;
  // The table a page of rows at a time (ranked); the CSV has every row.
  const data = await api.get("/api/stats?" + qs + "&limit=" + STATS_PAGE);
  const defs = data.definitions;
  const kpiCols = defs.map((d) => d.kpi);
  const cell = (row, k) => {
    const x = row.kpis[k]; if (!x || x.value === null) return "—";
    const shown = k === "avg_handling_days" ? x.value.toFixed(1) : pct(x.value);
    return x.meets === true ? shown + " ✓" : x.meets === false ? shown + " ✗" : shown;
  };
  // Clocks whose due time waits for a working-day calendar (when the node counts them).
  const hasWaiting = [data.total, ...data.rows].some((r) => r.counts && r.counts.waiting_for_calendar !== undefined);
  const waitingCell = (r, attrs) => (hasWaiting ? h("td", attrs || {}, (r.counts && r.counts.waiting_for_calendar) || 0) : null);
  // 越级 beside its baseline period (the plan: down at least 50 %).
  const skipCell = (r) => {
    const x = r.skip_level; if (!x) return h("td", {}, "—");
    const change = x.change === null ? "" : ` (${x.change > 0 ? "+" : ""}${(x.change * 100).toFixed(0)}%${x.meets === true ? " ✓" : x.meets === false ? " ✗" : ""})`;
    return h("td", { "data-test": "skip-level", title: `${t("skip_baseline")} ${data.baseline_period}: ${x.baseline}` }, `${x.count} / ${x.baseline}${change}`);
  };
  // By window or person, open past-due and 越级 are not counted (they belong to units).
  const overdueCell = (r) => h("td", {}, actors ? "—" : r.counts.open_overdue);
  const skipOrDash = (r) => (actors ? h("td", {}, "—") : skipCell(r));
  const statsRow = (r) => h("tr", { "data-group": r.group }, h("td", {}, r.rank || ""), h("td", {}, groupLabel(r)), h("td", { "data-test": "received" }, r.counts.received), h("td", { "data-test": "resolved" }, r.counts.resolved), overdueCell(r), waitingCell(r), skipOrDash(r), kpiCols.map((k) => h("td", { "data-kpi": k }, cell(r, k))));
  const totalRow = h("tr", {}, h("td", {}), h("td", {}, h("strong", {}, t("total"))), h("td", { "data-test": "total-received" }, data.total.counts.received), h("td", {}, data.total.counts.resolved), overdueCell(data.total), waitingCell(data.total, { "data-test": "total-waiting" }), skipOrDash(data.total), kpiCols.map((k) => h("td", {}, cell(data.total, k))));
  const groupHeader = statsState.by === "window" ? t("col_window") : statsState.by === "person" ? t("col_person") : t("unit");
  const tbody = h("tbody", {}, data.rows.map(statsRow), totalRow);
  const table = h("table", { id: "stats-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("rank")), h("th", {}, groupHeader), h("th", {}, t("received")), h("th", {}, t("resolved")), h("th", {}, t("open_overdue")), hasWaiting ? h("th", { "data-test": "col-waiting" }, t("waiting_col")) : null, h("th", { title: `${t("skip_baseline")}: ${data.baseline_period}` }, `${t("skip_col")} / ${t("skip_baseline")} ${data.baseline_period}`), defs.map((d) => h("th", { title: lang === "zh" ? d.definition_zh : d.definition }, d.name)))),
    tbody);
  // More rows than one page: 加载更多 asks for the next ranked page.
  let rowsShown = data.rows.length;
  const rowsCount = h("span", { class: "muted", "data-test": "stats-shown" });
  const moreRows = h("button", { class: "secondary", type: "button", "data-test": "stats-more" }, t("load_more"));
  const showCount = () => {
    rowsCount.textContent = tf("rows_shown_of", { n: rowsShown, total: data.rows_total });
    moreRows.hidden = rowsShown >= data.rows_total;
    rowsCount.hidden = data.rows_total <= STATS_PAGE;
  };
  moreRows.addEventListener("click", async () => {
    moreRows.disabled = true;
    try {
      const page = await api.get("/api/stats?" + qs + "&limit=" + STATS_PAGE + "&offset=" + rowsShown);
      page.rows.forEach((r) => tbody.insertBefore(statsRow(r), totalRow));
      rowsShown += page.rows.length;
      showCount();
    } finally { moreRows.disabled = false; }
  });
  showCount();
  // KPI against target for the whole scope.
  const kpiItems = defs.filter((d) => d.kpi !== "avg_handling_days").map((d) => {
    const x = data.total.kpis[d.kpi];
    return { label: d.name, value: x.value, target: x.target ? x.target.value : null, meets: x.meets };
  });
  // Ranking by the KPI most rows have a value for (satisfaction first when rated).
  const rankKpi = kpiCols.filter((k) => k !== "avg_handling_days" && k !== "repeat_rate" && k !== "overdue_rate")
    .map((k) => [k, data.rows.filter((r) => r.kpis[k].value !== null).length]).sort((a, b) => b[1] - a[1])[0];
  const rankBy = rankKpi && rankKpi[1] > 0 ? rankKpi[0] : kpiCols[0];
  const rankItems = data.rows.filter((r) => r.kpis[rankBy].value !== null).sort((a, b) => b.kpis[rankBy].value - a.kpis[rankBy].value).slice(0, 15)
    .map((r) => ({ label: chartLabel(r, 12), title: groupTitle(r), value: r.kpis[rankBy].value, meets: r.kpis[rankBy].meets }));
  // Monthly trend: the last six months.
  const months = [];
  for (let i = 5; i >= 0; i--) months.push(chinaMonth(i));
  const trend = await Promise.all(months.map(async (m) => {
    const d = await api.get(`/api/stats?period=${m}&by=category&kpi=satisfaction`);
    return { label: m.slice(5) + (lang === "zh" ? "月" : ""), received: d.total.counts.received, resolved: d.total.counts.resolved };
  }));
  const byCat = await api.get(`/api/stats?period=${encodeURIComponent(statsState.period)}&by=category&kpi=resolution_rate`);
  const catItems = byCat.rows.map((r) => ({ label: chartLabel(r, 10), title: groupTitle(r), value: r.counts.received }));
  const download = (format, label) => h("button", { class: "secondary", type: "button", "data-test": "download-" + format, onclick: async () => {
    const res = await fetch("/api/stats?" + qs + "&format=" + format, { headers: { Authorization: "Bearer " + api.token() } });
    const blob = await res.blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: `zongzhi-${statsState.period}.${format}` }); a.click();
  } }, t(label));
  const csv = [download("csv", "download_csv"), download("xlsx", "download_xlsx")];
  // The same complainant across the subtree (fingerprints only).
  const rep = await api.get(`/api/repeats?period=${encodeURIComponent(statsState.period)}`).catch(() => ({ groups: [] }));
  const repeatsCard = h("div", { class: "card", id: "repeats" }, h("h2", {}, t("repeats")), rep.groups.length ? h("ul", {}, rep.groups.slice(0, 50).map((g) => h("li", { "data-kind": g.kind },
    h("span", { class: g.kind === "over_open_case" ? "badge urgent" : "badge" }, t(g.kind)), " ", (g.category && g.category.name) || "", "：",
    g.cases.map((c, i) => [i ? "、" : "", h("a", { href: "#/case/" + c.id }, c.number), `（${unitShort(c.filed_by)}，${c.status.name}）`])))) : h("p", { class: "muted" }, t("none")));
  showPage("stats", h("h1", {}, t("stats") + " · " + (data.scope_name || data.scope)),
    h("div", { class: "actions" }, h("label", {}, t("period"), periodSel), h("label", {}, t("by"), bySel), csv),
    h("div", { class: "row" },
      h("div", { class: "card", id: "chart-kpi" }, h("h2", {}, t("kpi_vs_target")), barChart(kpiItems, { max: 1, fmt: pct, title: t("kpi_vs_target") })),
      h("div", { class: "card", id: "chart-trend" }, h("h2", {}, t("trend")), lineChart(trend, [{ key: "received", label: t("received"), color: "#1f5fa8" }, { key: "resolved", label: t("resolved"), color: "#1d7a46" }]))),
    h("div", { class: "row" },
      h("div", { class: "card", id: "chart-rank" }, h("h2", {}, t("ranking") + " · " + defs.find((d) => d.kpi === rankBy).name), rankItems.length ? barChart(rankItems, { max: 1, fmt: pct }) : h("p", { class: "muted" }, t("none"))),
      h("div", { class: "card", id: "chart-category" }, h("h2", {}, t("by_category")), catItems.length ? barChart(catItems, {}) : h("p", { class: "muted" }, t("none")))),
    actors ? h("p", { class: "muted", "data-test": "actors-note" }, t("actors_note")) : null,
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "actions" }, rowsCount, moreRows),
    repeatsCard,
    h("div", { class: "card" }, defs.map((d) => h("p", { class: "muted" }, h("strong", {}, d.name), "：", lang === "zh" ? d.definition_zh : d.definition)),
      data.skip_level_definition ? h("p", { class: "muted" }, data.skip_level_definition) : null));
}

async function reportsPage() {
  const period = statsState.period || chinaMonth(0);
  const data = await api.get("/api/reports?period=" + encodeURIComponent(period));
  const err = h("div");
  // A month is signed once it has closed; signing it again needs a reason.
  const monthIn = h("input", { name: "period", value: chinaMonth(1), pattern: "\\d{4}-\\d{2}", size: 8 });
  const reasonIn = h("input", { name: "supersede_reason", size: 30 });
  const sign = me.role === "admin" ? h("form", { class: "actions", id: "sign-report", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { period: monthIn.value.trim() };
    if (reasonIn.value.trim()) body.supersede_reason = reasonIn.value.trim();
    try { await api.post("/api/reports", body); toast(t("signed")); reportsPage(); } catch (e) { err.replaceChildren(errorBox(e)); }
  } }, h("label", {}, t("report_month"), monthIn), h("label", {}, t("supersede_reason"), reasonIn), h("button", { class: "secondary", type: "submit" }, t("sign_closed"))) : null;
  const rows = [];
  for (const r of data.reports) {
    if (r.ok) rows.push(h("tr", { "data-unit": r.unit }, h("td", {}, r.unit + " ", unitLabel(r.unit, r.name)), h("td", {}, r.period), h("td", {}, r.signed_at, r.reason ? h("div", { class: "muted" }, r.reason) : ""), h("td", {}, h("span", { class: "badge ok" }, t("consistent"))), h("td", {}), h("td", {}), h("td", {})));
    for (const old of r.superseded || []) rows.push(h("tr", { "data-unit": r.unit, class: "superseded" }, h("td", {}, r.unit + " ", unitLabel(r.unit, r.name)), h("td", {}, r.period), h("td", {}, old.signed_at), h("td", {}, h("span", { class: "badge" }, t("superseded"))), h("td", {}), h("td", {}), h("td", {})));
    for (const d of r.discrepancies) rows.push(h("tr", { "data-unit": r.unit, class: "flagged" }, h("td", {}, r.unit + " ", unitLabel(r.unit, r.name)), h("td", {}, r.period), h("td", {}, r.signed_at), h("td", {}, h("span", { class: "badge no" }, t("inconsistent"))), h("td", {}, d.figure), h("td", {}, d.reported), h("td", {}, d.recomputed)));
  }
  showPage("reports", h("h1", {}, t("reports") + " · " + period), h("div", { class: "actions" }, sign), err,
    h("div", { class: "table-wrap" }, h("table", { id: "reports" }, h("thead", {}, h("tr", {}, ["unit", "month", "signed", "check", "kpi", "reported", "recomputed"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("none")))))));
}

// ---------- account (账户): own password; for admins the users and the login audit ----------
function passwordForm(onsubmit, fields) {
  const err = h("div");
  const form = h("form", { class: "card", onsubmit: async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    if (!form.reportValidity()) return;
    try { await onsubmit(form); } catch (e) { err.replaceChildren(errorBox(e)); }
  } }, fields, h("p", { class: "muted" }, t("password_rule")), err);
  return form;
}
function ownPasswordCard() {
  const cur = h("input", { name: "current_password", type: "password", required: true, autocomplete: "current-password" });
  const next = h("input", { name: "new_password", type: "password", required: true, minlength: 8, maxlength: 256, autocomplete: "new-password" });
  return passwordForm(async (form) => {
    await api.post("/api/me/password", { current_password: cur.value, new_password: next.value });
    form.reset(); toast(t("password_changed"));
  }, [h("h2", {}, t("change_password")), h("label", {}, t("current_password"), cur), h("label", {}, t("new_password"), next),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit", "data-test": "change-password" }, t("change_password")))]);
}
function accountState(u) {
  if (u.disabled) return h("span", { class: "badge no" }, t("state_disabled"));
  if (u.locked_until) return h("span", { class: "badge red", "data-test": "locked" }, tf("state_locked", { t: fmtTime(u.locked_until) }) + (u.locked_everywhere ? "（" + t("locked_everywhere") + "）" : ""));
  if (u.retry_at) return h("span", { class: "badge yellow" }, tf("state_wait", { t: fmtTime(u.retry_at) }));
  return h("span", { class: "badge ok" }, t("state_ok"));
}
function userRow(u, err) {
  const act = (path, done) => async () => {
    err.replaceChildren();
    try { await api.post(`/api/users/${encodeURIComponent(u.username)}/${path}`, {}); toast(t(done)); await accountPage(); } catch (e) { err.replaceChildren(errorBox(e)); }
  };
  const pw = h("input", { type: "password", name: "password", required: true, minlength: 8, maxlength: 256, autocomplete: "new-password", placeholder: t("new_password"), "aria-label": t("new_password") });
  const reset = h("form", { class: "inline", onsubmit: async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    if (!reset.reportValidity()) return;
    try { await api.post(`/api/users/${encodeURIComponent(u.username)}/password`, { password: pw.value }); toast(t("password_reset_done")); await accountPage(); } catch (e) { err.replaceChildren(errorBox(e)); }
  } }, pw, h("button", { class: "secondary", type: "submit" }, t("reset_password")));
  const self = me && me.username === u.username;
  return h("tr", { "data-user": u.username },
    h("td", {}, u.username), h("td", {}, u.display_name), h("td", {}, t("role_" + u.role)), h("td", {}, accountState(u)), h("td", {}, u.failed_logins),
    h("td", {}, h("div", { class: "actions" },
      u.locked_until || u.retry_at || u.failed_logins ? h("button", { class: "primary", type: "button", "data-test": "unlock", onclick: act("unlock", "unlocked") }, t("unlock")) : null,
      u.disabled ? h("button", { class: "secondary", type: "button", onclick: act("enable", "enabled_done") }, t("enable"))
        : self ? null : h("button", { class: "secondary", type: "button", onclick: () => { if (confirm(tf("confirm_disable", { u: u.username }))) act("disable", "disabled_done")(); } }, t("disable")),
      h("button", { class: "secondary", type: "button", "data-test": "recovery-code", onclick: async () => {
        err.replaceChildren();
        try {
          const r = await api.post(`/api/users/${encodeURIComponent(u.username)}/recovery-code`, {});
          err.replaceChildren(h("p", { class: "card", "data-test": "recovery-code-made" }, t("recovery_code_made"), h("strong", {}, r.recovery_code)));
        } catch (e) { err.replaceChildren(errorBox(e)); }
      } }, t("make_recovery_code")),
      reset)));
}
function auditTable(audit) {
  const outcome = (e) => h("span", { class: e.ok || e.kind === "admin" ? "badge ok" : "badge no" }, t("outcome_" + e.outcome) + (e.count > 1 ? ` ×${e.count}` : ""));
  // An aggregate of refusals: its first time, and the names tried.
  const when = (e) => e.count > 1 && e.first_time ? `${fmtTime(e.first_time)} – ${fmtTime(e.time)}` : fmtTime(e.time);
  const who = (e) => (e.usernames && e.usernames.length > 1 ? e.usernames.join("、") : e.username) + (e.by ? ` ← ${e.by}` : "");
  return h("div", { class: "table-wrap" }, h("table", { id: "login-audit" },
    h("thead", {}, h("tr", {}, ["time", "username", "client_address", "login_kind", "login_result", "audit_detail"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, audit.entries.length ? audit.entries.map((e) => h("tr", { "data-outcome": e.outcome },
      h("td", {}, when(e)), h("td", {}, who(e)), h("td", {}, e.address), h("td", {}, t("kind_" + e.kind)), h("td", {}, outcome(e)), h("td", {}, e.detail || "")))
      : h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("none"))))));
}
async function accountPage() {
  if (!me || me.role !== "admin") { showPage("account", h("h1", {}, t("account")), ownPasswordCard()); return; }
  const [users, audit] = await Promise.all([api.get("/api/users"), api.get("/api/login-audit?limit=200")]);
  const err = h("div");
  showPage("account", h("h1", {}, t("account")), ownPasswordCard(),
    h("h2", {}, t("users")), err,
    h("div", { class: "table-wrap" }, h("table", { id: "users" },
      h("thead", {}, h("tr", {}, ["username", "display_name", "role", "account_state", "failed_logins", "action"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, users.users.map((u) => userRow(u, err))))),
    audit.blocked_addresses.length ? [h("h2", {}, t("blocked_addresses")), h("ul", { id: "blocked-addresses" }, audit.blocked_addresses.map((b) => h("li", {}, `${b.address} · ${t("failed_logins")} ${b.failed_logins} · ${t("until")} ${fmtTime(b.until)}`)))] : null,
    h("h2", {}, t("login_audit")), auditTable(audit));
}

// Admins: an online backup, and while a restore waits, the override.
function adminTools() {
  if (!me || me.role !== "admin") return null;
  const out = h("p", { class: "muted", "data-test": "backup-result" }, t("backup_hint"));
  const backupButton = h("button", { type: "button", "data-test": "backup-now", onclick: async () => {
    backupButton.disabled = true;
    try { const r = await api.post("/api/admin/backup", {}); out.textContent = `${t("backup_done")} ${r.dir}`; } catch (e) { out.replaceChildren(errorBox(e)); }
    backupButton.disabled = false;
  } }, t("backup_now"));
  const parts = [h("h2", {}, t("backup")), h("p", {}, backupButton), out];
  if (health && health.recovery && health.recovery.restoring) {
    const reason = h("input", { name: "reason", "aria-label": t("override_reason"), placeholder: t("override_reason") });
    // Every center still waited for is named by a tick: each may hold
    // records this node signed after its backup.
    const waiting = health.recovery.waiting_for || [];
    const ticks = waiting.map((d) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "without", value: d }), " ", `${unitFull(d) || d}（${d}）`));
    const form = h("form", { id: "override-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const without = ticks.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
      try { await api.post("/api/admin/recovery", { reason: reason.value, without }); health = await api.get("/api/health"); renderBanner(); syncPage(); } catch (e) { form.append(errorBox(e)); }
    } }, waiting.length ? h("p", {}, t("override_without")) : null, ...ticks, reason, " ", h("button", { type: "submit", class: "danger" }, t("override")));
    parts.push(h("h2", {}, t("restoring_what_to_do")), h("p", { class: "muted" }, t("override_warn")), form);
  }
  return parts;
}

async function syncPage() {
  const s = await api.get("/api/sync");
  showPage("sync", h("h1", {}, t("sync")),
    h("div", { class: "table-wrap" }, h("table", { id: "peers" }, h("thead", {}, h("tr", {}, ["unit", "status", "last_contact", "behind_out", "behind_in", "errors"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, s.peers.length ? s.peers.map((p) => h("tr", {}, h("td", {}, `${p.division} ${p.name || ""} (${t(p.role)})`), h("td", {}, h("span", { class: p.connected ? "badge ok" : "badge no" }, p.connected ? t("connected") : t("offline"))), h("td", {}, fmtTime(p.last_contact)), h("td", { "data-test": "waiting-to-peer" }, p.waiting_to_peer === null || p.waiting_to_peer === undefined ? "—" : p.waiting_to_peer + (p.waiting_capped ? "+" : "")), h("td", {}, p.behind_from_peer), h("td", {}, p.errors))) : h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("none")))))),
    h("h2", {}, t("alarms")),
    s.alarms.length ? h("ul", {}, s.alarms.map((a) => h("li", {}, `${a.kind} · ${a.author.slice(0, 10)} · ${a.detail}`))) : h("p", { class: "muted" }, t("none")),
    ...(adminTools() || []));
}

// 节点: every center of this node's subtree (at the city: the tree) with its
// release, what it reads and writes, its last report and its age, records
// held aside and alarms; and at the city, whether the next record format
// can be finalized (the admin's button).
async function fleetPage() {
  const f = await api.get("/api/fleet");
  const age = (secs) => (secs === null || secs === undefined ? "—" : secs < 120 ? `${secs} 秒` : secs < 7200 ? `${Math.floor(secs / 60)} 分钟` : secs < 172800 ? `${Math.floor(secs / 3600)} 小时` : `${Math.floor(secs / 86400)} 天`);
  const rows = f.centers.map((c) => {
    const r = c.report || {};
    return h("tr", { "data-division": c.division, "data-state": c.state },
      h("td", {}, `${c.division} ${c.name}`), h("td", {}, h("span", { class: c.state === "ok" || c.state === "self" ? "badge ok" : c.state === "revoked" ? "badge" : "badge no" }, c.state_zh)),
      h("td", { "data-test": "release" }, r.release || "—"), h("td", {}, r.formats ? `${r.formats[0]}–${r.formats[1]}` : "—"), h("td", {}, r.write_format || "—"), h("td", {}, r.schema || "—"),
      h("td", {}, fmtTime(c.reported_at)), h("td", {}, age(c.age_secs)), h("td", {}, r.behind_up === undefined ? "—" : r.behind_up),
      h("td", { "data-test": "parked" }, r.parked === undefined ? "—" : r.parked), h("td", { title: r.last_alarm || "" }, r.alarms === undefined ? "—" : r.alarms));
  });
  const fin = f.finalize;
  const err = h("div");
  let readiness;
  if (!fin) readiness = h("p", { class: "muted" }, t("nothing_to_finalize"));
  else if (fin.ready) readiness = h("p", { id: "finalize-ready" }, tf("ready_to_finalize", { f: fin.format }));
  else readiness = h("div", { id: "finalize-laggards" }, h("p", {}, tf("not_ready", { n: fin.laggards.length, f: fin.format })),
    h("ul", {}, fin.laggards.map((l) => h("li", { "data-division": l.division }, `${l.division} ${l.name}：${l.why}`))));
  const city = health && health.level === "city";
  const button = fin && city && me.role === "admin" ? h("button", { class: "primary", type: "button", id: "finalize", disabled: !fin.ready, onclick: async () => {
    if (!window.confirm(tf("finalize_confirm", { f: fin.format }))) return;
    err.replaceChildren();
    try {
      const r = await api.post("/api/policy/finalize", { format: fin.format });
      toast(tf("finalized", { v: r.version }));
      fleetPage();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  } }, tf("finalize_format", { f: fin.format })) : null;
  showPage("fleet", h("h1", {}, t("fleet")),
    h("p", {}, `${t("release")} ${f.release} · ${t("gate")} ${f.gate.write_format} · ${t("policy_version")} ${f.policy_version}`),
    h("div", { class: "card" }, readiness, button, err),
    h("div", { class: "table-wrap" }, h("table", { id: "fleet" },
      h("thead", {}, h("tr", {}, ["unit", "node_state", "release", "formats_read", "write_format", "schema", "reported_at", "age", "behind_up", "parked", "alarms"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, rows))));
}

async function treePage(arg) {
  // Revoked (and mistaken) certificates only when asked for (#/tree/revoked).
  const withRevoked = arg === "revoked";
  const answer = await api.get("/api/certs" + (withRevoked ? "?revoked=include" : ""));
  const certs = answer.certs;
  const byParent = {};
  for (const c of certs) { const p = parentOf(c.division); (byParent[p] = byParent[p] || []).push(c); }
  const node = (c) => h("li", { "data-division": c.division }, `${c.division} ${c.name} `, c.revoked ? h("span", { class: "badge no" }, t("revoked")) : "",
    byParent[c.division] ? h("ul", {}, byParent[c.division].map(node)) : "");
  const roots = certs.filter((c) => !certs.some((o) => o.division === parentOf(c.division)));
  const toggle = withRevoked
    ? h("a", { href: "#/tree", "data-test": "hide-revoked" }, t("hide_revoked"))
    : answer.revoked_hidden ? h("a", { href: "#/tree/revoked", "data-test": "show-revoked" }, `${t("show_revoked")}（${answer.revoked_hidden}）`) : "";
  showPage("tree", h("h1", {}, t("tree")), h("p", { class: "muted" }, toggle), h("div", { class: "card tree" }, h("ul", {}, roots.map(node))));
}
function parentOf(code) {
  if (code.endsWith("00000000")) return "";
  if (code.endsWith("000000")) return code.slice(0, 4) + "00000000";
  if (code.endsWith("000")) return code.slice(0, 6) + "000000";
  return code.slice(0, 9) + "000";
}

// ---------- policy (策略): calendars, taxonomy, windows, deadlines ----------
const DEADLINE_LABELS = {
  registration_minutes: ["登记时限", "Registration"], routing_minutes: ["分流时限", "Routing"], routing_urgent_minutes: ["紧急案件分流时限", "Routing (urgent)"],
  on_site_urgent_minutes: ["紧急案件到场时限", "On site (urgent)"], sign_for_minutes: ["签收时限", "Sign-for"], sign_for_urgent_minutes: ["紧急案件签收时限", "Sign-for (urgent)"],
  resolution_working_days: ["办理时限（一般）", "Resolution (general)"], resolution_complex_working_days: ["办理时限（复杂）", "Resolution (complex)"],
  feedback_minutes: ["反馈时限", "Feedback"], rehandle_working_days: ["重办时限", "Re-handling"], max_extension_working_days: ["最长延期", "Longest extension"],
  due_soon_percent: ["临期提醒（已用时限）", "Due soon at (time used)"], max_due_days: ["最长办理期限", "Longest due date"],
};
const SUPERVISION_LABELS = {
  normal_after_minutes: ["普通督办", "Normal notice"], yellow_after_minutes: ["黄牌督办", "Yellow card"],
  red_after_minutes: ["红牌督办", "Red card"], interview_after_minutes: ["约谈", "Interview"],
};
// Settings in the order of their label table (the node sends keys sorted by name).
const ordered = (obj, table) => {
  const keys = Object.keys(table);
  const rank = (k) => (keys.includes(k) ? keys.indexOf(k) : keys.length);
  return Object.entries(obj).sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : 1));
};
const label2 = (table, k) => (table[k] ? table[k][lang === "zh" ? 0 : 1] : k);
function fmtMinutes(m) {
  if (typeof m !== "number") return String(m);
  const zh = lang === "zh";
  if (m >= 1440 && m % 1440 === 0) return m / 1440 + (zh ? " 天" : " d");
  if (m >= 60 && m % 60 === 0) return m / 60 + (zh ? " 小时" : " h");
  return m + (zh ? " 分钟" : " min");
}
function fmtSetting(k, v) {
  const zh = lang === "zh";
  if (k.endsWith("_minutes")) return fmtMinutes(v);
  if (k.endsWith("_working_days")) return v + (zh ? " 个工作日" : " working days");
  if (k.endsWith("_percent")) return v + "%";
  if (k.endsWith("_days")) return v + (zh ? " 天" : " days");
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
const WEEKDAYS = { zh: ["一", "二", "三", "四", "五", "六", "日"], en: ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"] };
const MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const p2 = (n) => String(n).padStart(2, "0");
function chinaToday() {
  // The policy's calendar is China time (UTC+8), whatever the browser's zone.
  const d = chinaDate(Date.now());
  return `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`;
}
function monthGrid(year, month, holidays, makeup, today) {
  // month: 0..11; weeks start on Monday as in Chinese calendars.
  const first = new Date(Date.UTC(year, month, 1));
  const days = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  const lead = (first.getUTCDay() + 6) % 7;
  const cells = [];
  for (let i = 0; i < lead; i++) cells.push(h("td", { class: "pad" }));
  for (let d = 1; d <= days; d++) {
    const date = `${year}-${p2(month + 1)}-${p2(d)}`;
    const dow = (lead + d - 1) % 7;
    const hol = holidays[date], mk = makeup.has(date);
    const cls = [dow >= 5 ? "wkend" : "", hol ? "holiday" : "", mk ? "makeup" : "", date === today ? "today" : ""].filter(Boolean).join(" ");
    cells.push(h("td", { class: cls, "data-date": date, title: hol ? `${date} ${hol}` : mk ? `${date} ${t("makeup")}` : date },
      h("span", { class: "d" }, d), hol ? h("span", { class: "tag" }, lang === "zh" ? "休" : "off") : mk ? h("span", { class: "tag" }, lang === "zh" ? "班" : "work") : null));
  }
  while (cells.length % 7) cells.push(h("td", { class: "pad" }));
  const rows = [];
  for (let i = 0; i < cells.length; i += 7) rows.push(h("tr", {}, cells.slice(i, i + 7)));
  return h("table", { class: "month", "data-month": `${year}-${p2(month + 1)}` },
    h("caption", {}, lang === "zh" ? `${month + 1}月` : MONTHS_EN[month]),
    h("thead", {}, h("tr", {}, WEEKDAYS[lang === "zh" ? "zh" : "en"].map((w, i) => h("th", { class: i >= 5 ? "wkend" : "" }, w)))),
    h("tbody", {}, rows));
}
// Consecutive holidays with the same name, as "元旦 1月1日–1月3日（3天）".
function holidayRuns(list) {
  const runs = [];
  const sorted = [...list].sort((a, b) => (a.date < b.date ? -1 : 1));
  for (const hd of sorted) {
    const last = runs[runs.length - 1];
    const prevDay = last && new Date(Date.parse(last.to + "T00:00:00Z") + 86400000).toISOString().slice(0, 10);
    if (last && last.name === hd.name && prevDay === hd.date) { last.to = hd.date; last.n++; } else runs.push({ name: hd.name, from: hd.date, to: hd.date, n: 1 });
  }
  return runs;
}
function shortDate(d) {
  const [, m, day] = d.split("-").map(Number);
  return lang === "zh" ? `${m}月${day}日` : `${MONTHS_EN[m - 1]} ${day}`;
}
function calendarYear(year, cal, today, open) {
  const holidays = Object.fromEntries((cal.holidays || []).map((x) => [x.date, x.name]));
  const makeup = new Set(cal.make_up_workdays || []);
  const runs = holidayRuns(cal.holidays || []);
  const weekday = (d) => WEEKDAYS[lang === "zh" ? "zh" : "en"][(new Date(d + "T00:00:00Z").getUTCDay() + 6) % 7];
  const details = h("details", { class: "cal-year", "data-test": "calendar-year-" + year, "data-year": year },
    h("summary", {}, h("strong", {}, lang === "zh" ? `${year}年` : String(year)), " · ", tf("holiday_days", { n: (cal.holidays || []).length }), " · ", tf("makeup_days", { m: makeup.size })),
    cal.source ? h("p", { class: "muted" }, t("source") + "：" + cal.source) : null,
    h("div", { class: "months" }, Array.from({ length: 12 }, (_, m) => monthGrid(Number(year), m, holidays, makeup, today))),
    h("div", { class: "cal-lists" },
      h("p", { "data-test": "holiday-list" }, h("strong", {}, t("holidays") + "："), runs.length ? runs.map((r) => `${r.name} ${shortDate(r.from)}${r.n > 1 ? "–" + shortDate(r.to) : ""}（${r.n}${lang === "zh" ? "天" : "d"}）`).join(lang === "zh" ? "；" : "; ") : t("none")),
      h("p", { "data-test": "makeup-list" }, h("strong", {}, t("makeup") + "："), makeup.size ? [...makeup].sort().map((d) => `${shortDate(d)}（${lang === "zh" ? "周" : ""}${weekday(d)}）`).join(lang === "zh" ? "、" : ", ") : t("none"))));
  if (open) details.open = true;
  return details;
}
function calendarLegend() {
  const sw = (cls, label, tag) => h("span", { class: "legend-item" }, h("span", { class: "swatch " + cls }, tag || ""), label);
  return h("div", { class: "legend", "data-test": "calendar-legend" }, h("strong", {}, t("legend") + "："),
    sw("holiday", t("holidays"), lang === "zh" ? "休" : "off"), sw("makeup", t("makeup"), lang === "zh" ? "班" : "work"), sw("wkend", t("weekend")), sw("", t("workday")), sw("today", t("today")));
}
// A list of a policy patch's changes (path, kind, text).
function changesList(changes) {
  if (!changes || !changes.length) return h("p", { class: "muted", "data-test": "diff" }, t("no_changes"));
  const short = (v) => { const j = JSON.stringify(v); return j === undefined ? "null" : j; };
  return h("ul", { class: "diff", "data-test": "diff" }, changes.map((c) => h("li", { class: "diff-" + c.kind, "data-path": c.path, "data-kind": c.kind },
    h("span", { class: "badge kind-" + c.kind }, t("kind_" + c.kind) || c.kind), " ", h("span", { class: "diff-text" }, c.text || c.path), " ", h("code", {}, c.path),
    c.kind === "changed" && short(c.old).length <= 80 && short(c.new).length <= 80 ? h("div", { class: "muted diff-values" }, h("del", {}, short(c.old)), " → ", h("ins", {}, short(c.new))) : null)));
}
let policyFlash = null;
// A form whose input becomes a merge patch: 预览变更 asks the node what the
// patch changes (dry run, nothing signed); 签发新版本 then signs exactly the
// previewed patch. Editing the form after a preview asks for a new preview.
function patchForm({ id, title, parts, build, previewId, signId }) {
  const out = h("div", { class: "patch-result", "data-test": "patch-result" });
  let pending = null;
  const preview = h("button", { class: "secondary", type: "submit", id: previewId }, t("preview"));
  const sign = h("button", { class: "primary", type: "button", id: signId, disabled: true, onclick: async () => {
    if (!pending) return;
    sign.disabled = true; preview.disabled = true;
    try {
      const r = await api.post("/api/policy", pending);
      pending = null;
      policy = null;
      policyFlash = r;
      toast(tf("signed_version", { n: r.version }));
      if (location.hash !== "#/policy") location.hash = "#/policy"; else route();
    } catch (e) { out.replaceChildren(errorBox(e)); preview.disabled = false; }
  } }, t("sign_policy"));
  const form = h("form", { class: "card patch-form", id, novalidate: true,
    oninput: () => { if (pending) { pending = null; sign.disabled = true; out.replaceChildren(h("p", { class: "muted" }, t("preview_stale"))); } },
    onsubmit: async (ev) => {
      ev.preventDefault(); out.replaceChildren(); pending = null; sign.disabled = true;
      if (!form.checkValidity()) { form.querySelectorAll("input,select,textarea").forEach((i) => i.checkValidity()); return; }
      let patch;
      try { patch = build(); } catch (e) { out.replaceChildren(errorBox(e)); return; }
      preview.disabled = true;
      try {
        const r = await api.post("/api/policy?dry_run=true", patch);
        pending = patch;
        out.replaceChildren(h("p", { class: "muted", "data-test": "preview-version", "data-version": r.version }, tf("preview_note", { n: r.version })), changesList(r.changes));
        sign.disabled = false;
      } catch (e) { out.replaceChildren(errorBox(e)); } finally { preview.disabled = false; }
    } },
  h("h3", {}, title), h("div", { class: "grid" }, parts), out, h("div", { class: "actions" }, preview, sign));
  return form;
}
function calendarForm(p) {
  const st = p.calendar_status || {};
  const years = Object.keys(p.calendars).map(Number);
  const suggested = st.missing && st.missing.length ? st.missing[0]
    : st.next_year && !years.includes(st.next_year) ? st.next_year
    : years.length ? Math.max(...years) + 1 : chinaDate(Date.now()).getUTCFullYear() + 1;
  const year = h("input", { id: "calendar-year", name: "year", type: "number", min: 2000, max: 2100, required: true, value: suggested });
  const text = h("textarea", { id: "calendar-json", name: "calendar", required: true, rows: 8, spellcheck: "false",
    placeholder: '{"year": ' + suggested + ', "source": "国务院办公厅关于' + suggested + '年部分节假日安排的通知", "holidays": [{"date": "' + suggested + '-01-01", "name": "元旦"}], "make_up_workdays": []}' });
  const file = h("input", { id: "calendar-file", type: "file", accept: ".json,application/json", onchange: async () => {
    const f = file.files[0]; if (!f) return;
    text.value = await f.text();
    try { const doc = JSON.parse(text.value); if (doc && doc.year) year.value = doc.year; } catch (_) { /* shown at preview */ }
    text.dispatchEvent(new Event("input", { bubbles: true }));
  } });
  return patchForm({ id: "calendar-form", title: t("load_calendar"), previewId: "policy-preview", signId: "policy-sign",
    parts: [field(t("year"), year), h("label", {}, t("calendar_file"), file), field(t("calendar_json"), text, true)],
    build: () => {
      let doc;
      try { doc = JSON.parse(text.value); } catch (e) { throw { code: "bad_json", message: e.message }; }
      if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw { code: "bad_json", message: lang === "zh" ? "应为一个对象：{\"year\", \"source\", \"holidays\", \"make_up_workdays\"}" : "expected an object {\"year\", \"source\", \"holidays\", \"make_up_workdays\"}" };
      const y = String(Number(year.value));
      if (doc.year !== undefined && String(doc.year) !== y) throw { code: "year_mismatch", message: lang === "zh" ? `文件中的年份是 ${doc.year}，所填年份是 ${y}` : `the file is for ${doc.year}, the year field says ${y}` };
      const entry = {};
      for (const k of ["source", "holidays", "make_up_workdays"]) if (doc[k] !== undefined) entry[k] = doc[k];
      return { calendars: { [y]: entry } };
    } });
}
function windowForm(p) {
  const code = h("input", { id: "window-code", name: "code", required: true, pattern: "[a-z][a-z0-9_]{0,31}", placeholder: "fire" });
  const name = h("input", { id: "window-name", name: "name", maxlength: 40, placeholder: "消防" });
  const retire = h("input", { id: "window-retired", name: "retired", type: "checkbox" });
  return patchForm({ id: "window-form", title: t("add_window"), previewId: "window-preview", signId: "window-sign",
    parts: [field(t("code"), code), field(t("label_name"), name), h("label", { class: "check" }, retire, t("retire"))],
    build: () => {
      const c = code.value.trim(), n = name.value.trim();
      const exists = !!p.windows[c];
      if (!n && !exists) throw { code: "bad_request", message: lang === "zh" ? "新窗口需要名称" : "a new window needs a name" };
      const w = { retired: retire.checked };
      if (n) w.name = n;
      return { windows: { [c]: w } };
    } });
}
function subcategoryForm(p) {
  const big = select("parent", categoryEntries(p).map(([code, c]) => [code, `${code} ${c.name}${c.retired ? "（" + t("retired") + "）" : ""}`]));
  big.id = "subcategory-parent";
  const code = h("input", { id: "subcategory-code", name: "code", required: true, pattern: "[0-9]{4}" });
  const name = h("input", { id: "subcategory-name", name: "name", maxlength: 40 });
  const win = select("default_window", Object.entries(p.windows).filter(([, w]) => !w.retired).map(([c, w]) => [c, `${w.name} (${c})`]));
  win.id = "subcategory-window";
  const retire = h("input", { id: "subcategory-retired", name: "retired", type: "checkbox" });
  const hint = () => { code.placeholder = big.value + "xx"; };
  big.addEventListener("change", hint); hint();
  return patchForm({ id: "subcategory-form", title: t("add_subcategory"), previewId: "category-preview", signId: "category-sign",
    parts: [field(t("big"), big), field(t("code"), code), field(t("label_name"), name), field(t("default_window"), win), h("label", { class: "check" }, retire, t("retire"))],
    build: () => {
      const b = big.value, c = code.value.trim(), n = name.value.trim();
      const existing = p.categories[b] && p.categories[b].children[c];
      if (!c.startsWith(b)) throw { code: "bad_request", message: lang === "zh" ? `小类代码应以大类代码 ${b} 开头` : `a subclass code starts with its class code ${b}` };
      if (!n && !existing) throw { code: "bad_request", message: lang === "zh" ? "新小类需要名称" : "a new subclass needs a name" };
      const child = { retired: retire.checked };
      if (n) child.name = n;
      if (!existing || existing.default_window !== win.value) child.default_window = win.value;
      return { categories: { [b]: { children: { [c]: child } } } };
    } });
}
function kvTable(id, rows) {
  return h("div", { class: "table-wrap" }, h("table", { id }, h("thead", {}, h("tr", {}, h("th", {}, t("setting")), h("th", {}, t("value")))),
    h("tbody", {}, rows.map(([k, label, v]) => h("tr", { "data-key": k }, h("td", {}, label, " ", h("code", { class: "key" }, k)), h("td", {}, v))))));
}
async function policyPage(arg) {
  const asked = /^\d+$/.test(arg || "") ? Number(arg) : null;
  const p = normalizePolicy(await api.get("/api/policy" + (asked ? "?version=" + asked : "")));
  const versions = p.versions || [];
  const latest = versions.length ? versions[versions.length - 1].version : p.version;
  const isCurrent = !asked || p.version === latest;
  const canEdit = isCurrent && health && health.level === "city" && me.role === "admin";
  const st = p.calendar_status || {};
  const today = chinaToday();
  const flash = policyFlash; policyFlash = null;
  const diffSlot = h("div", { id: "version-diff" });
  const showDiff = async (from, to) => {
    try {
      const d = await api.get(`/api/policy/diff?from=${from}&to=${to}`);
      diffSlot.replaceChildren(h("div", { class: "card", "data-test": "version-diff" }, h("h3", {}, `${t("changes")} · ${tf("version_n", { n: d.from })} → ${tf("version_n", { n: d.to })}`), changesList(d.changes)));
    } catch (e) { diffSlot.replaceChildren(errorBox(e)); }
  };
  const versionRows = [...versions].reverse().map((v) => h("tr", { "data-version": v.version, class: v.version === p.version ? "current" : "" },
    h("td", {}, tf("version_n", { n: v.version })), h("td", {}, v.signed_at || fmtTime(v.signed_at_ms)),
    h("td", {}, v.version === p.version ? h("span", { class: "badge ok" }, "✓") : h("a", { href: v.version === latest ? "#/policy" : "#/policy/" + v.version }, t("view")), " ",
      v.version > 1 ? h("button", { class: "link-dark", type: "button", "data-diff": v.version, onclick: () => showDiff(v.version - 1, v.version) }, t("changes")) : null)));
  const years = Object.keys(p.calendars).sort();
  const calYears = years.map((y) => calendarYear(y, p.calendars[y], today, Number(y) >= (st.current_year || Number(today.slice(0, 4)))));
  // Categories: 大类 rows with their 小类 below; retired ones greyed.
  const retiredBadge = (x) => (x.retired ? h("span", { class: "badge retired-badge" }, t("retired")) : h("span", { class: "muted" }, t("in_use")));
  const catRows = [];
  for (const [code, c] of categoryEntries(p)) {
    catRows.push(h("tr", { class: "cat-big" + (c.retired ? " retired" : ""), "data-code": code }, h("td", {}, code), h("td", {}, h("strong", {}, c.name)), h("td", {}), h("td", {}, retiredBadge(c))));
    for (const [sc, x] of childEntries(c)) {
      catRows.push(h("tr", { class: "cat-small" + (x.retired || c.retired ? " retired" : ""), "data-code": sc }, h("td", {}, sc), h("td", { class: "indent" }, x.name),
        h("td", {}, x.default_window ? windowName(x.default_window, p) : "—"), h("td", {}, retiredBadge({ retired: x.retired || c.retired }))));
    }
  }
  const winRows = Object.entries(p.windows).map(([code, w]) => h("tr", { class: w.retired ? "retired" : "", "data-code": code }, h("td", {}, code), h("td", {}, w.name), h("td", {}, retiredBadge(w))));
  const dl = p.deadlines || {};
  const sup = p.supervision || {};
  const other = [];
  if (p.repeat_window_days !== undefined) other.push(["repeat_window_days", t("repeat_window"), fmtSetting("repeat_window_days", p.repeat_window_days)]);
  if (p.report_grace_minutes !== undefined) other.push(["report_grace_minutes", t("report_grace"), fmtSetting("report_grace_minutes", p.report_grace_minutes)]);
  if (p.calendar_warning_from !== undefined) {
    const [m, d] = String(p.calendar_warning_from).split("-").map(Number);
    other.push(["calendar_warning_from", t("calendar_warning_from"), h("span", { "data-test": "calendar-warning-from" }, lang === "zh" ? `每年${m}月${d}日起（${p.calendar_warning_from}）` : `${MONTHS_EN[m - 1]} ${d} each year (${p.calendar_warning_from})`)]);
  }
  showPage("policy",
    h("div", { id: "policy-page", "data-version": p.version },
      h("h1", {}, t("policy") + " · ", h("span", { "data-test": "policy-version", "data-version": p.version }, tf("version_n", { n: p.version }))),
      !isCurrent ? h("div", { class: "banner amber inline" }, `${t("viewing_old")}：${tf("version_n", { n: p.version })}`, h("a", { href: "#/policy" }, t("back_current"))) : null,
      flash ? h("div", { class: "card signed", "data-test": "signed", "data-version": flash.version }, h("h3", {}, "✓ " + tf("signed_version", { n: flash.version })), changesList(flash.changes)) : null,
      h("div", { class: "row" },
        h("div", { class: "card" }, h("dl", { class: "kv" },
          h("dt", {}, t("policy_version")), h("dd", {}, tf("version_n", { n: p.version })),
          h("dt", {}, t("signed_at")), h("dd", { "data-test": "signed-at" }, p.signed_at || fmtTime(p.signed_at_ms)),
          h("dt", {}, t("signed_by")), h("dd", { title: p.signed_by || "" }, p.signed_by ? p.signed_by.slice(0, 16) + "…" : "—"),
          h("dt", {}, t("calendar_years")), h("dd", { "data-test": "calendar-years" }, years.join("、") || "—"),
          h("dt", {}, t("calendar_missing")), h("dd", { "data-test": "calendar-missing" }, st.missing && st.missing.length ? h("span", { class: "badge no" }, st.missing.join("、")) : "—"),
          st.warning ? [h("dt", {}, t("warning")), h("dd", { class: "warn-text" }, st.warning)] : null),
          canEdit ? null : h("p", { class: "muted", "data-test": "policy-readonly" }, t("readonly_policy"))),
        h("div", { class: "card" }, h("h2", {}, t("versions")), h("div", { class: "table-wrap" }, h("table", { id: "policy-versions" },
          h("thead", {}, h("tr", {}, h("th", {}, t("version_col")), h("th", {}, t("signed_at")), h("th", {}))), h("tbody", {}, versionRows))), diffSlot)),
      canEdit ? h("div", { class: "policy-edit", id: "policy-edit" }, calendarForm(p), h("div", { class: "row" }, windowForm(p), subcategoryForm(p))) : null,
      h("div", { class: "card", id: "policy-calendars" }, h("h2", {}, t("calendars")), calendarLegend(), calYears.length ? calYears : h("p", { class: "muted" }, t("none"))),
      h("div", { class: "row" },
        h("div", { class: "card" }, h("h2", {}, t("categories")), h("div", { class: "table-wrap" }, h("table", { id: "policy-categories" },
          h("thead", {}, h("tr", {}, h("th", {}, t("code")), h("th", {}, t("big") + " / " + t("small")), h("th", {}, t("default_window")), h("th", {}, t("status")))), h("tbody", {}, catRows)))),
        h("div", { class: "card" }, h("h2", {}, t("windows")), h("div", { class: "table-wrap" }, h("table", { id: "policy-windows" },
          h("thead", {}, h("tr", {}, h("th", {}, t("code")), h("th", {}, t("label_name")), h("th", {}, t("status")))), h("tbody", {}, winRows))))),
      h("div", { class: "row" },
        h("div", { class: "card" }, h("h2", {}, t("deadline_table")), kvTable("policy-deadlines", ordered(dl, DEADLINE_LABELS).map(([k, v]) => [k, label2(DEADLINE_LABELS, k), fmtSetting(k, v)]))),
        h("div", { class: "card" }, h("h2", {}, t("supervision_thresholds")),
          kvTable("policy-supervision", ordered(sup, SUPERVISION_LABELS).map(([k, v]) => [k, label2(SUPERVISION_LABELS, k), lang === "zh" ? (v === 0 ? "超期即督办" : `超期 ${fmtMinutes(v)} 后`) : (v === 0 ? "when overdue" : `${fmtMinutes(v)} after due`)])),
          h("h2", {}, t("other_settings")), kvTable("policy-other", other)))));
}


// ---------- everyday tools: 导出台账, new-work alert, previews, printed forms ----------
// 导出台账: the case list with the queue's current filters, as CSV or XLSX
// (GET /api/cases/export), downloaded with the session's token.
function exportButtons(filters) {
  const err = h("span", { "data-test": "export-error" });
  const get = async (format, btn) => {
    btn.disabled = true; err.replaceChildren();
    try {
      const res = await fetch("/api/cases/export?format=" + format + "&" + filters, { headers: { Authorization: "Bearer " + api.token() } });
      if (!res.ok) { const body = await res.json().catch(() => ({})); throw body.error || { code: "http_" + res.status, message: "" }; }
      const blob = await res.blob();
      const name = "台账-" + chinaToday() + "." + format;
      const link = h("a", { href: URL.createObjectURL(blob), download: name, "data-test": "export-link", "data-size": blob.size });
      document.body.append(link); link.click(); link.remove();
      document.body.dataset.exported = format + ":" + blob.size;
    } catch (e) { err.replaceChildren(errorBox(e)); } finally { btn.disabled = false; }
  };
  const button = (format, label) => { const b = h("button", { class: "secondary", type: "button", "data-export": format, onclick: () => get(format, b) }, label); return b; };
  return h("span", { class: "export" }, t("export_list") + "：", button("csv", "CSV"), button("xlsx", "Excel"), err);
}

// New work: the count of cases waiting for this center's 签收 is polled;
// when it grows, the 工作台 link gets a badge (cleared on the queue page)
// and, if the operator turned it on here, a short tone plays.
const newWork = {
  badge: h("span", { class: "badge urgent nav-badge", id: "new-work", hidden: true }),
  last: null, fresh: 0, sounded: 0,
  interval: () => Number(localStorage.getItem("zz-alert-interval-ms")) || 20000,
  soundOn: () => localStorage.getItem("zz-alert-sound") === "1",
  seen() { this.fresh = 0; this.show(); },
  show() { this.badge.hidden = !this.fresh; this.badge.textContent = this.fresh ? "+" + this.fresh : ""; this.badge.dataset.count = this.fresh; },
  async poll() {
    if (!me) return;
    const v = await api.get("/api/cases?status=awaiting_receipt&limit=1").catch(() => null);
    if (!v || typeof v.total !== "number") return;
    if (this.last !== null && v.total > this.last) {
      this.fresh += v.total - this.last;
      this.show();
      if (this.soundOn()) this.beep();
      toast(tf("new_work", { n: v.total - this.last }));
    }
    this.last = v.total;
    this.badge.dataset.polled = "1";
  },
  beep() {
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.15;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.25);
      this.sounded += 1; this.badge.dataset.sounded = this.sounded;
      ctx.resume().then(() => { this.badge.dataset.audio = ctx.state; }).catch(() => {});
    } catch (_) { /* no audio here */ }
  },
  start() {
    const tick = async () => {
      try { await this.poll(); } catch (_) { /* the next tick tries again */ }
      this.ticks = (this.ticks || 0) + 1;
      setTimeout(tick, this.interval());
    };
    tick();
  },
};
function alertToggle() {
  const box = h("input", { type: "checkbox", id: "alert-sound", onchange: () => { localStorage.setItem("zz-alert-sound", box.checked ? "1" : "0"); if (box.checked) newWork.beep(); } });
  box.checked = newWork.soundOn();
  return h("label", { class: "check filter" }, box, t("alert_sound"));
}

// Attachment previews: images and PDFs, fetched with the token and shown
// from a blob: URL (the node serves attachments as downloads only).
function previewable(a) { return /^image\/(png|jpeg|gif|webp)$/.test(a.mime) || a.mime === "application/pdf"; }
async function previewAttachment(c, a, err) {
  err.replaceChildren();
  const res = await fetch(`/api/cases/${c.id}/attachments/${a.blob}`, { headers: { Authorization: "Bearer " + api.token() } });
  if (!res.ok) { err.replaceChildren(errorBox({ code: "http_" + res.status, message: await res.text() })); return; }
  const blob = new Blob([await res.arrayBuffer()], { type: a.mime });
  const url = URL.createObjectURL(blob);
  const body = a.mime === "application/pdf"
    ? h("iframe", { src: url, class: "preview-frame", title: a.name, id: "preview-content" })
    : h("img", { src: url, alt: a.name, class: "preview-image", id: "preview-content" });
  const close = () => { dialog.remove(); URL.revokeObjectURL(url); };
  const dialog = h("div", { class: "preview", id: "preview", role: "dialog", "aria-label": a.name, "data-mime": a.mime, onclick: (ev) => { if (ev.target === dialog) close(); } },
    h("div", { class: "preview-box" }, h("div", { class: "preview-head" }, h("strong", {}, a.name), h("button", { class: "secondary", type: "button", id: "preview-close", onclick: close }, t("close"))), body));
  document.addEventListener("keydown", function esc(ev) { if (ev.key === "Escape") { close(); document.removeEventListener("keydown", esc); } });
  document.body.append(dialog);
}

// 交办单 (for a 分流 or 下派) and 督办单 (for a 督办), in the layout of a
// printed form: open in a new tab, print from the browser.
function printCard(c) {
  const steps = c.timeline.filter((e) => e.accepted);
  const assigned = steps.filter((e) => e.action === "route" || e.action === "dispatch");
  const supervised = steps.filter((e) => e.action === "supervise");
  if (!assigned.length && !supervised.length) return null;
  const link = (kind, e, label) => h("a", { class: "button secondary", href: `#/print/${kind}/${c.id}/${e.id}`, target: "_blank", "data-print": kind }, label);
  return h("div", { class: "card", id: "print-forms" }, h("h2", {}, t("print_forms")), h("div", { class: "actions" },
    assigned.map((e) => link("assign", e, t("print_assign") + "（" + fmtTime(e.time) + "）")),
    supervised.map((e) => link("supervise", e, t("print_supervise") + "（" + e.details.grade_zh + " · " + fmtTime(e.time) + "）"))));
}
function chineseDate(s) {
  const d = new Date(s || Date.now());
  const cn = new Date(d.getTime() + (8 * 60 + d.getTimezoneOffset()) * 60000);
  return `${cn.getFullYear()}年${cn.getMonth() + 1}月${cn.getDate()}日`;
}
async function printPage(kind, rest) {
  const [caseId, stepId] = String(rest || "").split("/");
  const c = await api.get("/api/cases/" + (caseId || ""));
  const e = c.timeline.find((x) => x.id === stepId) || c.timeline.filter((x) => x.accepted && (kind === "supervise" ? x.action === "supervise" : ["route", "dispatch"].includes(x.action))).pop();
  if (!e) throw { code: "not_found", message: "no such step" };
  // This center's own name comes from the node (a center outside the tree holds no certificate naming it).
  const ownName = (code) => (me && health && code === me.unit ? health.name : "");
  const issuer = unitFull(e.unit, e.unit_name) || ownName(e.unit) || e.unit;
  const row = (label, value, wide) => h("tr", {}, h("th", {}, label), h("td", wide ? { colspan: 3 } : {}, value || "—"));
  const pair = (l1, v1, l2, v2) => h("tr", {}, h("th", {}, l1), h("td", {}, v1 || "—"), h("th", {}, l2), h("td", {}, v2 || "—"));
  const resolution = c.deadlines.find((d) => d.kind === "resolution" && !d.cancelled);
  let title, table;
  if (kind === "supervise") {
    const notice = (c.notices || []).find((n) => n.id === e.id);
    title = "督　办　单";
    table = [
      pair("督办编号", c.number + "-D" + (c.timeline.filter((x) => x.action === "supervise").indexOf(e) + 1), "督办日期", chineseDate(e.time)),
      pair("被督办单位", (unitFull(c.owner, c.owner_name) || ownName(c.owner) || c.owner) + (c.window_name ? "（" + c.window_name + "）" : ""), "督办等级", e.details.grade_zh),
      pair("案件编号", c.number, "案件状态", c.status.name),
      row("案件标题", c.title, true),
      row("诉求内容", c.content, true),
      row("督办事由及要求", e.details.note, true),
      pair("办结时限", resolution ? fmtTime(resolution.due_at) : "—", "回复时限", notice && notice.reply_due_at ? fmtTime(notice.reply_due_at) : "收到后按要求回复"),
      row("整改措施（被督办单位填写）", h("div", { class: "fill" }), true),
    ];
  } else {
    const to = e.action === "route" ? (windowName(e.details.window) + "（本中心窗口）") : (unitFull(e.details.to) || e.details.to);
    const due = e.details.due_at || (resolution && resolution.due_at);
    title = "交　办　单";
    table = [
      pair("交办编号", c.number, "交办日期", chineseDate(e.time)),
      pair("承办单位", to, "交办方式", e.action === "route" ? "分流" : "下派"),
      pair("诉求类型", c.request_type ? c.request_type.name : "", "来源渠道", c.channel.name),
      pair("类别", (c.category.parent_name ? c.category.parent_name + "/" : "") + (c.category.name || c.category.code), "紧急程度", c.urgency.name),
      row("事项标题", c.title, true),
      row("诉求内容", c.content, true),
      pair("发生地点", c.place.address, "诉求人", c.contact ? c.contact.name + "（" + (c.contact.phone || "—") + "）" : "—"),
      row("办理要求", e.details.requirements, true),
      pair("办结时限", due ? fmtTime(due) : "—", "受理单位", unitFull(c.filed_by, c.filed_by_name) || ownName(c.filed_by) || c.filed_by),
      row("办理结果（承办单位填写）", h("div", { class: "fill" }), true),
    ];
  }
  document.body.classList.add("printing");
  show(h("article", { class: "sheet", id: "sheet", "data-kind": kind },
    h("div", { class: "sheet-org" }, issuer),
    h("h1", { class: "sheet-title" }, title),
    h("table", { class: "sheet-table" }, h("tbody", {}, table)),
    h("div", { class: "sheet-sign" }, h("p", {}, issuer + "（盖章）"), h("p", {}, chineseDate(e.time))),
    h("div", { class: "sheet-receipt" }, "签收人：＿＿＿＿＿＿　　签收时间：＿＿＿＿年＿＿月＿＿日＿＿时"),
    h("div", { class: "no-print actions" }, h("button", { type: "button", onclick: () => window.print(), id: "print-now" }, t("print_now")))));
}

// ---------- router ----------
async function route() {
  const [, page, arg] = location.hash.split("/");
  if (page === "login" && api.token()) {
    // Switching user: the current session ends here.
    api.post("/api/logout").catch(() => {});
    localStorage.removeItem("zz-token");
    me = null; policy = null;
  }
  if (page !== "print") document.body.classList.remove("printing");
  try {
    const ok = await ensureSession(page);
    renderChrome();
    if (!ok) { loginPage(); return; }
    show(h("p", { class: "muted" }, t("loading")));
    if (page !== "agreement") document.body.classList.remove("has-agreement");
    await loadUnitNames().catch(() => unitNames);
    switch (page) {
      case "case": await casePage(arg); break;
      case "agreement": await agreementPage(arg); break;
      case "print": await printPage(arg, location.hash.split("/")[3]); break;
      case "file": filePage(); break;
      case "board": await boardPage(); break;
      case "stats": await statsPage(); break;
      case "reports": await reportsPage(); break;
      case "sync": await syncPage(); break;
      case "fleet": await fleetPage(); break;
      case "tree": await treePage(arg); break;
      case "policy": await policyPage(arg); break;
      case "account": await accountPage(); break;
      case "search": await searchPage(arg); break;
      default: await queuePage();
    }
    document.body.dataset.page = page || "queue";
  } catch (e) {
    if (!api.token()) { me = null; renderChrome(); loginPage(); return; }
    show(errorBox(e));
  }
}
window.addEventListener("hashchange", route);
document.getElementById("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  if (!q) return;
  const target = "#/search/" + encodeURIComponent(q);
  if (location.hash === target) route(); else location.hash = target;
});
document.getElementById("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("zz-lang", lang); route(); });
document.getElementById("logout").addEventListener("click", async () => {
  try { await api.post("/api/logout"); } catch (_) { /* already gone */ }
  localStorage.removeItem("zz-token"); me = null; policy = null; location.hash = "#/login"; route();
});
// Countdowns tick.
// The storage alarm and the calendar warning come and go while a page stays
// open: health is read again every 10 s.
setInterval(async () => { health = await api.get("/api/health").catch(() => health); renderBanner(); }, 10000);
newWork.start();
setInterval(() => { document.querySelectorAll("[data-due]").forEach((el) => { if (el.dataset.due) el.textContent = countdown(el.dataset.due); }); }, 30000);
route();
