// zongzhi operator console: a small single-page app over the node's HTTP API
// (the same API the CLI uses). No build step, no dependencies.
"use strict";

// ---------- i18n (zh-CN first) ----------
const DICT = {
  zh: {
    queue: "工作台", file: "受理登记", board: "督办台账", stats: "统计分析", reports: "月度报告", sync: "同步状态", tree: "组织机构",
    login: "登录", username: "用户名", password: "密码", logout: "退出", loading: "加载中…", none: "暂无",
    number: "编号", title: "标题", category: "类别", urgency: "紧急程度", status: "状态", deadline: "时限", supervision: "督办", owner: "承办单位",
    open: "待办", overdue_only: "已超期", urgent_only: "紧急", all_status: "全部", due_in: "剩余", overdue_by: "超期",
    channel: "来源渠道", request_type: "诉求类型", big: "大类", small: "小类", complexity: "复杂程度", normal: "一般", urgent: "紧急",
    general: "一般", complex: "复杂", content: "内容", place: "地点", people: "涉及人数", received_at: "收到时间（可选）",
    complainant: "当事人信息", name: "姓名", phone: "电话", id_number: "身份证号", address: "住址", submit: "提交", cancel: "取消",
    required: "必填", bad_phone: "请输入有效的电话号码", filed: "已受理", timeline: "办理过程", deadlines: "时限",
    actions: "可执行操作", no_actions: "当前无可执行操作", unit: "单位", operator: "经办人", time: "时间", action: "操作", result: "结果",
    signature: "签名", verified: "已验证", failed: "验证失败", rejected: "已驳回", accepted: "有效",
    period: "统计期间", by: "分组", month: "月", quarter: "季度", year: "年", kpi: "指标", target: "目标", rank: "排名",
    received: "受理", resolved: "办结", open_overdue: "超期未结", rated: "评价", trend: "月度趋势", ranking: "单位排名", by_category: "按类别",
    kpi_vs_target: "指标与目标", download_csv: "导出 CSV", check: "核对", consistent: "一致", inconsistent: "不一致", reported: "上报值", recomputed: "重算值",
    sign_report: "签署本月报告", peers: "上下级节点", connected: "在线", offline: "离线", last_contact: "最后联系", behind_out: "对方待收", behind_in: "本方待收",
    errors: "错误", alarms: "完整性告警", parent: "上级", child: "下级", revoked: "已吊销", masked_note: "个人信息按角色脱敏显示",
    reason: "原因", note: "说明", window: "窗口", to_unit: "下派单位", days: "工作日", grade: "督办等级", public_reply: "答复内容", internal_note: "内部备注",
    method: "方式", rating: "评价", comment: "意见", public: "公开", confirm: "确认", saved: "已保存", ok: "成功", by_unit: "按单位", by_level: "按层级",
    by_county: "按县区", by_township: "按乡镇", by_cat: "按类别", by_channel: "按渠道", total: "合计", lang: "English",
    allowed_none: "只读账号不能办理案件", signed: "已签署", deadline_running: "进行中", deadline_met: "已完成",
    attachments: "证据附件", upload: "上传",
  },
  en: {
    queue: "Queue", file: "File a case", board: "Supervision", stats: "Statistics", reports: "Reports", sync: "Sync", tree: "Units",
    login: "Log in", username: "User name", password: "Password", logout: "Log out", loading: "Loading…", none: "None",
    number: "Number", title: "Title", category: "Category", urgency: "Urgency", status: "Status", deadline: "Deadline", supervision: "Supervision", owner: "Owner",
    open: "Open", overdue_only: "Overdue", urgent_only: "Urgent", all_status: "All", due_in: "left", overdue_by: "overdue",
    channel: "Channel", request_type: "Request type", big: "Class", small: "Subclass", complexity: "Complexity", normal: "Normal", urgent: "Urgent",
    general: "General", complex: "Complex", content: "Content", place: "Place", people: "People involved", received_at: "Received at (optional)",
    complainant: "Complainant", name: "Name", phone: "Phone", id_number: "ID number", address: "Address", submit: "Submit", cancel: "Cancel",
    required: "Required", bad_phone: "Enter a valid phone number", filed: "Filed", timeline: "Timeline", deadlines: "Deadlines",
    actions: "Actions", no_actions: "No action available now", unit: "Unit", operator: "Operator", time: "Time", action: "Action", result: "Result",
    signature: "Signature", verified: "verified", failed: "FAILED", rejected: "rejected", accepted: "valid",
    period: "Period", by: "Group by", month: "Month", quarter: "Quarter", year: "Year", kpi: "KPI", target: "Target", rank: "Rank",
    received: "Received", resolved: "Resolved", open_overdue: "Open overdue", rated: "Rated", trend: "Monthly trend", ranking: "Unit ranking", by_category: "By category",
    kpi_vs_target: "KPIs vs targets", download_csv: "Export CSV", check: "Check", consistent: "consistent", inconsistent: "DIFFERS", reported: "Reported", recomputed: "Recomputed",
    sign_report: "Sign this month's report", peers: "Peers", connected: "online", offline: "offline", last_contact: "Last contact", behind_out: "Behind (to peer)", behind_in: "Behind (from peer)",
    errors: "Errors", alarms: "Integrity alarms", parent: "parent", child: "child", revoked: "revoked", masked_note: "Personal data is masked by role",
    reason: "Reason", note: "Note", window: "Window", to_unit: "To unit", days: "Working days", grade: "Grade", public_reply: "Public reply", internal_note: "Internal note",
    method: "Method", rating: "Rating", comment: "Comment", public: "Public", confirm: "Confirm", saved: "Saved", ok: "Done", by_unit: "By unit", by_level: "By level",
    by_county: "By county", by_township: "By township", by_cat: "By category", by_channel: "By channel", total: "Total", lang: "中文",
    allowed_none: "Read-only accounts cannot act on cases", signed: "Signed", deadline_running: "running", deadline_met: "met",
    attachments: "Evidence", upload: "Upload",
  },
};
let lang = localStorage.getItem("zz-lang") || "zh";
const t = (k) => (DICT[lang] && DICT[lang][k]) || DICT.zh[k] || k;

// The API's errors, in the operator's language: by rule first, then by code.
const RULES_ZH = {
  "only-owner": "只有案件的承办单位可以执行此操作",
  "status": "案件当前的状态不允许此操作",
  "case-is-closed": "案件已办结归档，不能再办理",
  "supervisor-is-ancestor": "只有上级中心可以督办此案件",
  "field-required": "请填写必填内容",
  "unknown-window": "没有这个窗口",
  "dispatch-to-descendant": "只能下派给本中心的下级单位",
  "no-self-approval": "延期申请不能由申请人本人审批",
  "escalate-needs-parent": "市级中心没有上级，不能上报",
  "archive-needs-satisfied": "当事人满意后才能归档",
  "author-revoked": "签署者的密钥已被吊销",
};
const CODES_ZH = {
  unauthenticated: "请先登录（或登录已过期）",
  bad_credentials: "用户名或密码错误",
  forbidden: "当前账号的角色无权执行此操作",
  not_found: "没有找到该案件",
  bad_request: "填写的内容有误",
  exists: "已经存在",
  outside_subtree: "不在本中心的管辖范围内",
  too_large: "内容太大",
};
function errorText(e) {
  if (lang !== "zh") return e.message || String(e);
  if (e.rule && RULES_ZH[e.rule]) return RULES_ZH[e.rule] + "（" + e.message + "）";
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
function show(...nodes) { const v = view(); v.replaceChildren(...nodes); }
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
function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d)) return s;
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
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

// ---------- session and layout ----------
let me = null, policy = null, health = null;
const NAV = [["queue", "#/queue"], ["file", "#/file"], ["board", "#/board"], ["stats", "#/stats"], ["reports", "#/reports"], ["sync", "#/sync"], ["tree", "#/tree"]];
function renderChrome() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("unit-name").textContent = health ? health.name : "综治中心案件系统";
  const nav = document.getElementById("nav");
  const here = location.hash.split("/")[1] || "queue";
  nav.replaceChildren(...(me ? NAV.map(([k, href]) => h("a", { href, class: here === k ? "active" : "", "data-nav": k }, t(k))) : []));
  document.getElementById("me").textContent = me ? `${me.display_name || me.username}（${me.role}）` : "";
  document.getElementById("logout").hidden = !me;
  document.getElementById("logout").textContent = t("logout");
}
async function ensureSession() {
  if (!health) health = await api.get("/api/health").catch(() => null);
  if (!api.token()) return false;
  if (!me) {
    try { me = await api.get("/api/me"); } catch (_) { me = null; return false; }
  }
  if (!policy) policy = await api.get("/api/policy");
  return true;
}

// ---------- pages ----------
function loginPage() {
  const err = h("div");
  const user = h("input", { name: "username", required: true, autocomplete: "username" });
  const pass = h("input", { name: "password", type: "password", required: true, autocomplete: "current-password" });
  const form = h("form", { class: "card login", id: "login-form", onsubmit: async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    if (!form.reportValidity()) return;
    try {
      const r = await api.post("/api/login", { username: user.value.trim(), password: pass.value });
      localStorage.setItem("zz-token", r.token);
      me = null; policy = null;
      location.hash = "#/queue";
      route();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  } },
    h("h1", {}, (health ? health.name : "") + " · " + t("login")),
    h("label", {}, t("username"), user), h("label", {}, t("password"), pass), err,
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, t("login"))));
  show(form);
}

let queueFilter = "open";
async function queuePage() {
  const filters = [["open", t("open"), "status=open"], ["overdue", t("overdue_only"), "status=open&overdue=true"], ["urgent", t("urgent_only"), "status=open&urgency=urgent"], ["all", t("all_status"), "status=all"]];
  const q = filters.find((f) => f[0] === queueFilter) || filters[0];
  const data = await api.get("/api/cases?limit=500&" + q[2]);
  const rows = data.cases.map((c) => h("tr", { class: "clickable", "data-case": c.number, onclick: () => { location.hash = "#/case/" + c.id; } },
    h("td", {}, c.number), h("td", {}, c.title), h("td", { class: "hide-narrow" }, c.category.name || c.category.code),
    h("td", {}, c.urgency.code === "urgent" ? h("span", { class: "badge urgent" }, c.urgency.name) : c.urgency.name),
    h("td", {}, c.status.name),
    h("td", {}, h("span", { class: clockClass(c), "data-due": c.next_due_at || "" }, countdown(c.next_due_at))),
    h("td", { class: "hide-narrow" }, c.supervision ? h("span", { class: "badge " + c.supervision }, gradeName(c.supervision)) : "")));
  showPage("queue", h("h1", {}, t("queue") + (health ? " · " + health.name : "")),
    h("div", { class: "actions" }, filters.map(([k, label]) => h("button", { class: k === queueFilter ? "primary" : "secondary", type: "button", onclick: () => { queueFilter = k; queuePage(); } }, label))),
    h("div", { class: "table-wrap" }, h("table", { id: "queue" },
      h("thead", {}, h("tr", {}, h("th", {}, t("number")), h("th", {}, t("title")), h("th", { class: "hide-narrow" }, t("category")), h("th", {}, t("urgency")), h("th", {}, t("status")), h("th", {}, t("deadline")), h("th", { class: "hide-narrow" }, t("supervision")))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("none")))))));
}
function gradeName(g) { return { normal: "普通", yellow: "黄牌", red: "红牌", interview: "约谈" }[g] || g; }

function field(label, input, wide) {
  const errEl = h("div", { class: "field-error" });
  input.addEventListener("invalid", () => { errEl.textContent = input.validity.patternMismatch ? t("bad_phone") : t("required"); });
  input.addEventListener("input", () => { errEl.textContent = ""; });
  return h("label", { class: wide ? "wide" : "" }, label, input, errEl);
}
function select(name, options, value) {
  return h("select", { name, required: true }, options.map(([v, label]) => { const o = h("option", { value: v }, label); if (v === value) o.selected = true; return o; }));
}
function filePage() {
  const big = select("big", policy.categories.map((c) => [c.code, c.code + " " + c.name]));
  const small = h("select", { name: "category", required: true });
  const fillSmall = () => {
    const c = policy.categories.find((x) => x.code === big.value);
    small.replaceChildren(...(c ? c.children : []).map((s) => h("option", { value: s.code }, s.code + " " + s.name)));
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
  };
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
    if (f.received.value) body.received_at = new Date(f.received.value).toISOString();
    if (f.cname.value || f.cphone.value || f.cid.value || f.caddr.value) {
      body.contact = { name: f.cname.value.trim(), phone: f.cphone.value.trim(), id_number: f.cid.value.trim(), address: f.caddr.value.trim() };
    }
    submit.disabled = true;
    try {
      const c = await api.post("/api/cases", body);
      toast(t("filed") + " " + c.number);
      location.hash = "#/case/" + c.id;
    } catch (e) { err.replaceChildren(errorBox(e)); } finally { submit.disabled = false; }
  } },
    field(t("title"), f.title, true), field(t("content"), f.content, true),
    field(t("channel"), f.channel), field(t("request_type"), f.request_type),
    field(t("big"), big), field(t("small"), small),
    field(t("urgency"), f.urgency), field(t("complexity"), f.complexity),
    field(t("place"), f.address), field(t("people"), f.people), field(t("received_at"), f.received),
    h("h2", { class: "wide" }, t("complainant")),
    field(t("name"), f.cname), field(t("phone"), f.cphone), field(t("id_number"), f.cid), field(t("address"), f.caddr),
    h("div", { class: "wide" }, err, h("div", { class: "actions" }, submit)));
  showPage("file", h("h1", {}, t("file")), form);
}

// Fields each action's form asks for.
const ACTION_FIELDS = {
  sign_for: [], archive: [],
  route: [["window", "window"], ["requirements", "text", "note"]],
  dispatch: [["to", "child"], ["requirements", "text", "note"]],
  escalate: [["reason", "text!"]], return: [["reason", "text!"]],
  reroute: [["window", "window"], ["reason", "text!"]],
  add_helpers: [["windows", "windows"]],
  progress: [["note", "text!"], ["public", "bool"]],
  request_extension: [["working_days", "days"], ["reason", "text!"]],
  approve_extension: [["note", "text", "note"]], refuse_extension: [["note", "text", "note"]],
  supervise: [["grade", "grade"], ["note", "text!"]],
  resolve: [["public_reply", "text!"], ["internal_note", "text"]],
  feedback: [["method", "method"], ["note", "text!"]],
  rate: [["rating", "rating"], ["comment", "text"]],
  reopen: [["reason", "text!"]],
};
const ACTION_ZH = {
  sign_for: "签收", route: "分流", dispatch: "下派", escalate: "上报", return: "退回", reroute: "改派", add_helpers: "协办",
  progress: "进展", request_extension: "申请延期", approve_extension: "同意延期", refuse_extension: "不同意延期", supervise: "督办",
  resolve: "办结", feedback: "反馈", rate: "评价", reopen: "重办", archive: "归档",
};
let units = null;
async function knownUnits() {
  if (!units) units = (await api.get("/api/certs")).certs;
  return units;
}
async function actionForm(caseId, code, onDone) {
  const inputs = {};
  const parts = [];
  for (const [name, kind, labelKey] of ACTION_FIELDS[code]) {
    let input;
    if (kind === "window" || kind === "windows") input = select(name, policy.windows.map((w) => [w.code, w.name]));
    else if (kind === "child") {
      const us = (await knownUnits()).filter((u) => isChild(u.division, me.unit) && !u.revoked);
      input = select(name, us.map((u) => [u.division, u.division + " " + u.name]));
    } else if (kind === "grade") input = select(name, [["normal", "普通"], ["yellow", "黄牌"], ["red", "红牌"], ["interview", "约谈"]]);
    else if (kind === "rating") input = select(name, [["satisfied", "满意"], ["basic", "基本满意"], ["unsatisfied", "不满意"]]);
    else if (kind === "method") input = select(name, [["phone", "电话"], ["visit", "上门"], ["sms", "短信"]]);
    else if (kind === "days") input = h("input", { name, type: "number", min: 1, max: policy.deadlines.max_extension_working_days, value: 3, required: true });
    else if (kind === "bool") input = h("input", { name, type: "checkbox" });
    else input = h("textarea", { name, required: kind === "text!" });
    inputs[name] = [input, kind];
    parts.push(kind === "bool" ? h("label", { class: "check" }, input, t(name)) : field(t(labelKey || name), input, kind.startsWith("text")));
  }
  const err = h("div");
  const submit = h("button", { class: "primary", type: "submit", "data-submit": code }, t("confirm") + " · " + (lang === "zh" ? ACTION_ZH[code] : code));
  const form = h("form", { class: "grid card", id: "action-form", "data-action": code, novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    if (!form.checkValidity()) { form.querySelectorAll("input,select,textarea").forEach((i) => i.checkValidity()); return; }
    const body = { action: code };
    for (const [name, [input, kind]] of Object.entries(inputs)) {
      if (kind === "bool") body[name] = input.checked;
      else if (kind === "days") body[name] = Number(input.value);
      else if (kind === "windows") body[name] = [input.value];
      else body[name] = input.value.trim();
    }
    submit.disabled = true;
    try { await api.post(`/api/cases/${caseId}/actions`, body); toast(t("ok")); onDone(); }
    catch (e) { err.replaceChildren(errorBox(e)); }
    finally { submit.disabled = false; }
  } }, parts, h("div", { class: "wide" }, err, h("div", { class: "actions" }, submit, h("button", { class: "secondary", type: "button", onclick: onDone }, t("cancel")))));
  return form;
}
function isChild(code, parent) { return parentOf(code) === parent; }

async function casePage(id) {
  const c = await api.get("/api/cases/" + id);
  const formSlot = h("div");
  const allowed = c.allowed_actions || [];
  const actionButtons = allowed.map((code) => h("button", { class: "secondary", type: "button", "data-action": code, onclick: async () => {
    formSlot.replaceChildren(await actionForm(c.id, code, () => casePage(id)));
    formSlot.scrollIntoView({ block: "nearest" });
  } }, lang === "zh" ? ACTION_ZH[code] : code));
  const contact = c.contact ? h("dl", { class: "kv" },
    h("dt", {}, t("name")), h("dd", {}, c.contact.name || "—"), h("dt", {}, t("phone")), h("dd", { "data-test": "phone" }, c.contact.phone || "—"),
    h("dt", {}, t("id_number")), h("dd", {}, c.contact.id_number || "—"), h("dt", {}, t("address")), h("dd", {}, c.contact.address || "—")) : h("p", { class: "muted" }, t("none"));
  const deadlines = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("deadline")), h("th", {}, t("unit")), h("th", {}, "到期"), h("th", {}, t("status")))),
    h("tbody", {}, c.deadlines.map((d) => h("tr", {}, h("td", {}, d.kind_zh), h("td", {}, d.unit), h("td", {}, fmtTime(d.due_at)),
      h("td", {}, d.running ? h("span", { class: d.clock === "overdue" ? "clock overdue" : d.clock === "due_soon" ? "clock due-soon" : "clock" }, countdown(d.due_at)) : (d.met_at ? (d.on_time ? "按时完成" : "超时完成") : "—"))))));
  const timeline = h("ol", { class: "timeline", id: "timeline" }, c.timeline.map((e) => h("li", { class: e.accepted ? "" : "rejected", "data-action": e.action },
    h("div", { class: "when" }, `${fmtTime(e.time)} · ${e.unit} · ${e.operator}`),
    h("div", {}, h("strong", {}, lang === "zh" ? e.action_zh : e.action), " ", detailText(e.details)),
    h("div", { class: "muted" }, e.accepted ? "" : t("rejected") + "：" + (RULES_ZH[e.rejected.rule] || e.rejected.message) + " · ",
      t("signature") + " ", h("span", { class: e.signature_valid ? "badge ok" : "badge no" }, e.signature_valid ? "✓ " + t("verified") : "✗ " + t("failed"))))));
  showPage("case",
    h("h1", { "data-status": c.status.code }, `${c.number} · ${c.title}`),
    h("div", { class: "row" },
      h("div", { class: "card" }, h("dl", { class: "kv" },
        h("dt", {}, t("status")), h("dd", { id: "case-status" }, c.status.name, c.overdue ? h("span", { class: "badge urgent" }, " 超期") : ""),
        h("dt", {}, t("owner")), h("dd", { id: "case-owner" }, c.owner + (c.window_name ? " · " + c.window_name : "")),
        h("dt", {}, t("category")), h("dd", {}, (c.category.parent_name ? c.category.parent_name + " / " : "") + (c.category.name || c.category.code)),
        h("dt", {}, t("channel")), h("dd", {}, c.channel.name), h("dt", {}, t("urgency")), h("dd", {}, c.urgency.name),
        h("dt", {}, t("place")), h("dd", {}, c.place.address || "—"), h("dt", {}, t("supervision")), h("dd", {}, c.supervision ? c.supervision.name : "—"),
        h("dt", {}, t("content")), h("dd", {}, c.content))),
      h("div", { class: "card" }, h("h2", {}, t("complainant")), contact, h("p", { class: "muted" }, t("masked_note")))),
    h("div", { class: "card" }, h("h2", {}, t("actions")), allowed.length ? h("div", { class: "actions", id: "case-actions" }, actionButtons) : h("p", { class: "muted" }, me.role === "viewer" ? t("allowed_none") : t("no_actions")), formSlot),
    attachmentsCard(c, () => casePage(id)),
    h("div", { class: "card" }, h("h2", {}, t("deadlines")), h("div", { class: "table-wrap" }, deadlines)),
    h("div", { class: "card" }, h("h2", {}, t("timeline")), timeline));
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
    } }, a.name), ` · ${(a.size / 1024).toFixed(1)} KB · ${a.unit}`))) : h("p", { class: "muted" }, t("none"));
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
  const windowName = (code) => (policy.windows.find((w) => w.code === code) || {}).name || code;
  return Object.entries(d)
    .filter(([k, v]) => v !== null && v !== "" && !k.endsWith("_zh") && !["grade", "blob", "mime", "size"].includes(k) && typeof v !== "object")
    .map(([k, v]) => (k === "window" ? windowName(v) : String(v)))
    .join("；");
}

async function boardPage() {
  const data = await api.get("/api/cases?status=open&owner=all&overdue=true&limit=1000");
  const mine = data.cases.filter((c) => c.owner.startsWith(subtreePrefix(me.unit)));
  const cols = [["none", "未督办"], ["normal", "普通"], ["yellow", "黄牌"], ["red", "红牌"], ["interview", "约谈"]];
  showPage("board", h("h1", {}, t("board")), h("p", { class: "muted" }, `${mine.length} 件超期案件`),
    h("div", { class: "board", id: "board" }, cols.map(([g, label]) => {
      const items = mine.filter((c) => (c.supervision || "none") === g);
      return h("div", { class: "col", "data-grade": g }, h("h3", {}, label, " ", h("span", { class: "badge " + g }, items.length)),
        items.map((c) => h("div", { class: "item", onclick: () => { location.hash = "#/case/" + c.id; } }, h("div", {}, c.number), h("div", {}, c.title), h("div", { class: "clock overdue" }, countdown(c.next_due_at)), h("div", { class: "muted" }, c.owner))));
    })));
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
    svg.push(`<text x="${left - 6}" y="${y + 15}" text-anchor="end">${esc(it.label)}</text>`);
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

function monthString(d) { return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`; }
let statsState = { period: null, by: "unit" };
async function statsPage() {
  const now = new Date();
  if (!statsState.period) statsState.period = monthString(now);
  const periods = [];
  for (let i = 0; i < 12; i++) { const d = new Date(now.getFullYear(), now.getMonth() - i, 1); periods.push([monthString(d), monthString(d)]); }
  const q = Math.floor(now.getMonth() / 3) + 1;
  periods.push([`${now.getFullYear()}-Q${q}`, `${now.getFullYear()} Q${q}`], [String(now.getFullYear()), String(now.getFullYear())]);
  const periodSel = select("period", periods, statsState.period);
  const bySel = select("by", [["unit", t("by_unit")], ["level", t("by_level")], ["county", t("by_county")], ["township", t("by_township")], ["category", t("by_cat")], ["channel", t("by_channel")]], statsState.by);
  periodSel.addEventListener("change", () => { statsState.period = periodSel.value; statsPage(); });
  bySel.addEventListener("change", () => { statsState.by = bySel.value; statsPage(); });
  const qs = `period=${encodeURIComponent(statsState.period)}&by=${statsState.by}`;
  const data = await api.get("/api/stats?" + qs);
  const defs = data.definitions;
  const kpiCols = defs.map((d) => d.kpi);
  const cell = (row, k) => {
    const x = row.kpis[k]; if (!x || x.value === null) return "—";
    const shown = k === "avg_handling_days" ? x.value.toFixed(1) : pct(x.value);
    return x.meets === true ? shown + " ✓" : x.meets === false ? shown + " ✗" : shown;
  };
  const table = h("table", { id: "stats-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("rank")), h("th", {}, t("unit")), h("th", {}, t("received")), h("th", {}, t("resolved")), h("th", {}, t("open_overdue")), defs.map((d) => h("th", { title: d.definition }, d.name)))),
    h("tbody", {}, data.rows.map((r) => h("tr", {}, h("td", {}, r.rank || ""), h("td", {}, `${r.group} ${r.name || ""}`), h("td", {}, r.counts.received), h("td", {}, r.counts.resolved), h("td", {}, r.counts.open_overdue), kpiCols.map((k) => h("td", {}, cell(r, k))))),
      h("tr", {}, h("td", {}), h("td", {}, h("strong", {}, t("total"))), h("td", { "data-test": "total-received" }, data.total.counts.received), h("td", {}, data.total.counts.resolved), h("td", {}, data.total.counts.open_overdue), kpiCols.map((k) => h("td", {}, cell(data.total, k))))));
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
    .map((r) => ({ label: (r.name || r.group).slice(0, 12), value: r.kpis[rankBy].value, meets: r.kpis[rankBy].meets }));
  // Monthly trend: the last six months.
  const months = [];
  for (let i = 5; i >= 0; i--) months.push(monthString(new Date(now.getFullYear(), now.getMonth() - i, 1)));
  const trend = await Promise.all(months.map(async (m) => {
    const d = await api.get(`/api/stats?period=${m}&by=category&kpi=satisfaction`);
    return { label: m.slice(5) + (lang === "zh" ? "月" : ""), received: d.total.counts.received, resolved: d.total.counts.resolved };
  }));
  const byCat = await api.get(`/api/stats?period=${encodeURIComponent(statsState.period)}&by=category&kpi=resolution_rate`);
  const catItems = byCat.rows.map((r) => ({ label: (r.name || r.group).slice(0, 10), value: r.counts.received }));
  const csv = h("button", { class: "secondary", type: "button", onclick: async () => {
    const res = await fetch("/api/stats?" + qs + "&format=csv", { headers: { Authorization: "Bearer " + api.token() } });
    const blob = await res.blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: `zongzhi-${statsState.period}.csv` }); a.click();
  } }, t("download_csv"));
  showPage("stats", h("h1", {}, t("stats") + " · " + (data.scope_name || data.scope)),
    h("div", { class: "actions" }, h("label", {}, t("period"), periodSel), h("label", {}, t("by"), bySel), csv),
    h("div", { class: "row" },
      h("div", { class: "card", id: "chart-kpi" }, h("h2", {}, t("kpi_vs_target")), barChart(kpiItems, { max: 1, fmt: pct, title: t("kpi_vs_target") })),
      h("div", { class: "card", id: "chart-trend" }, h("h2", {}, t("trend")), lineChart(trend, [{ key: "received", label: t("received"), color: "#1f5fa8" }, { key: "resolved", label: t("resolved"), color: "#1d7a46" }]))),
    h("div", { class: "row" },
      h("div", { class: "card", id: "chart-rank" }, h("h2", {}, t("ranking") + " · " + defs.find((d) => d.kpi === rankBy).name), rankItems.length ? barChart(rankItems, { max: 1, fmt: pct }) : h("p", { class: "muted" }, t("none"))),
      h("div", { class: "card", id: "chart-category" }, h("h2", {}, t("by_category")), catItems.length ? barChart(catItems, {}) : h("p", { class: "muted" }, t("none")))),
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "card" }, defs.map((d) => h("p", { class: "muted" }, h("strong", {}, d.name), "：", d.definition))));
}

async function reportsPage() {
  const period = statsState.period || monthString(new Date());
  const data = await api.get("/api/reports?period=" + encodeURIComponent(period));
  const err = h("div");
  const sign = me.role === "admin" ? h("button", { class: "secondary", type: "button", onclick: async () => {
    try { await api.post("/api/reports", { period: monthString(new Date()) }); toast(t("signed")); reportsPage(); } catch (e) { err.replaceChildren(errorBox(e)); }
  } }, t("sign_report")) : null;
  const rows = [];
  for (const r of data.reports) {
    if (r.ok) rows.push(h("tr", { "data-unit": r.unit }, h("td", {}, r.unit + " " + r.name), h("td", {}, r.month), h("td", {}, r.signed_at), h("td", {}, h("span", { class: "badge ok" }, t("consistent"))), h("td", {}), h("td", {}), h("td", {})));
    for (const d of r.discrepancies) rows.push(h("tr", { "data-unit": r.unit, class: "flagged" }, h("td", {}, r.unit + " " + r.name), h("td", {}, r.month), h("td", {}, r.signed_at), h("td", {}, h("span", { class: "badge no" }, t("inconsistent"))), h("td", {}, d.figure), h("td", {}, d.reported), h("td", {}, d.recomputed)));
  }
  showPage("reports", h("h1", {}, t("reports") + " · " + period), h("div", { class: "actions" }, sign), err,
    h("div", { class: "table-wrap" }, h("table", { id: "reports" }, h("thead", {}, h("tr", {}, ["unit", "month", "signed", "check", "kpi", "reported", "recomputed"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("none")))))));
}

async function syncPage() {
  const s = await api.get("/api/sync");
  showPage("sync", h("h1", {}, t("sync")),
    h("div", { class: "table-wrap" }, h("table", { id: "peers" }, h("thead", {}, h("tr", {}, ["unit", "status", "last_contact", "behind_out", "behind_in", "errors"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, s.peers.length ? s.peers.map((p) => h("tr", {}, h("td", {}, `${p.division} ${p.name || ""} (${t(p.role)})`), h("td", {}, h("span", { class: p.connected ? "badge ok" : "badge no" }, p.connected ? t("connected") : t("offline"))), h("td", {}, fmtTime(p.last_contact)), h("td", {}, p.behind_to_peer), h("td", {}, p.behind_from_peer), h("td", {}, p.errors))) : h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("none")))))),
    h("h2", {}, t("alarms")),
    s.alarms.length ? h("ul", {}, s.alarms.map((a) => h("li", {}, `${a.kind} · ${a.author.slice(0, 10)} · ${a.detail}`))) : h("p", { class: "muted" }, t("none")));
}

async function treePage() {
  const certs = (await api.get("/api/certs")).certs;
  const byParent = {};
  for (const c of certs) { const p = parentOf(c.division); (byParent[p] = byParent[p] || []).push(c); }
  const node = (c) => h("li", { "data-division": c.division }, `${c.division} ${c.name} `, c.revoked ? h("span", { class: "badge no" }, t("revoked")) : "",
    byParent[c.division] ? h("ul", {}, byParent[c.division].map(node)) : "");
  const roots = certs.filter((c) => !certs.some((o) => o.division === parentOf(c.division)));
  showPage("tree", h("h1", {}, t("tree")), h("div", { class: "card tree" }, h("ul", {}, roots.map(node))));
}
function parentOf(code) {
  if (code.endsWith("00000000")) return "";
  if (code.endsWith("000000")) return code.slice(0, 4) + "00000000";
  if (code.endsWith("000")) return code.slice(0, 6) + "000000";
  return code.slice(0, 9) + "000";
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
  try {
    const ok = await ensureSession();
    renderChrome();
    if (!ok) { loginPage(); return; }
    show(h("p", { class: "muted" }, t("loading")));
    switch (page) {
      case "case": await casePage(arg); break;
      case "file": filePage(); break;
      case "board": await boardPage(); break;
      case "stats": await statsPage(); break;
      case "reports": await reportsPage(); break;
      case "sync": await syncPage(); break;
      case "tree": await treePage(); break;
      default: await queuePage();
    }
    document.body.dataset.page = page || "queue";
  } catch (e) {
    if (!api.token()) { me = null; renderChrome(); loginPage(); return; }
    show(errorBox(e));
  }
}
window.addEventListener("hashchange", route);
document.getElementById("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("zz-lang", lang); route(); });
document.getElementById("logout").addEventListener("click", async () => {
  try { await api.post("/api/logout"); } catch (_) { /* already gone */ }
  localStorage.removeItem("zz-token"); me = null; policy = null; location.hash = "#/login"; route();
});
// Countdowns tick.
setInterval(() => { document.querySelectorAll("[data-due]").forEach((el) => { if (el.dataset.due) el.textContent = countdown(el.dataset.due); }); }, 30000);
route();
