// The citizens' progress page: number + query code → progress; the
// rating with the one-time token; checking a receipt. Talks only to
// /api/public/….
"use strict";
const $ = (id) => document.getElementById(id);

function show(el, on) { el.hidden = !on; }

function message(text) {
  $("message").textContent = text;
  show($("message"), !!text);
}

function fmt(t) {
  if (!t) return "";
  return t.replace("T", " ").replace(/:\d\d(\.\d+)?\+08:00$/, "");
}

async function call(method, url, body) {
  const r = await fetch(url, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const m = data && data.error ? data.error.message : "请求失败 (" + r.status + ")";
    throw new Error(m);
  }
  return data;
}

function row(dl, term, value, cls) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (cls) dd.className = cls;
  dl.append(dt, dd);
}

function render(c) {
  $("case-title").textContent = c.title;
  const dl = $("case-facts");
  dl.replaceChildren();
  row(dl, "事项编号", c.number);
  row(dl, "当前状态", c.status.name, "status");
  row(dl, "事项类别", c.category);
  row(dl, "受理单位", c.filed_by);
  row(dl, "受理时间", fmt(c.filed_at));
  row(dl, "办理单位", c.handling_unit);
  row(dl, "办理时限", c.due_at ? fmt(c.due_at) + (c.overdue ? "（已超期）" : "") : "", c.overdue ? "overdue" : "");
  row(dl, "办结时间", fmt(c.resolved_at));
  const steps = $("steps");
  steps.replaceChildren();
  for (const s of c.steps) {
    const li = document.createElement("li");
    const t = document.createElement("div");
    t.className = "time";
    t.textContent = fmt(s.time) + " · " + s.unit;
    const what = document.createElement("div");
    what.textContent = s.step + (s.note ? "：" + s.note : "");
    li.append(t, what);
    steps.append(li);
  }
  $("reply").textContent = c.reply || "";
  show($("reply-box"), !!c.reply);
  const ratings = $("ratings");
  ratings.replaceChildren();
  for (const r of c.ratings) {
    const li = document.createElement("li");
    li.textContent = fmt(r.at) + " " + r.by + "：" + r.rating + (r.result_rating ? "（结果：" + r.result_rating + "）" : "");
    ratings.append(li);
  }
  show($("ratings-box"), c.ratings.length > 0);
  show($("rate"), !!c.rating_open);
  show($("case"), true);
}

let current = null;

async function lookup(number, code) {
  message("");
  try {
    const c = await call("GET", "/api/public/cases/" + encodeURIComponent(number) + "?code=" + encodeURIComponent(code));
    current = number;
    render(c);
  } catch (e) {
    show($("case"), false);
    show($("rate"), false);
    message(e.message);
  }
}

$("lookup").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookup($("number").value.trim(), $("code").value.trim());
});

$("rate-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData($("rate-form"));
  const number = current || $("number").value.trim();
  try {
    const r = await call("POST", "/api/public/cases/" + encodeURIComponent(number) + "/rating", {
      token: form.get("token"),
      rating: form.get("rating"),
      result_rating: form.get("result_rating"),
      comment: form.get("comment") || "",
    });
    render(r.case);
    message("");
    show($("rate"), false);
    $("verify-result").hidden = true;
    const done = document.createElement("p");
    done.className = "ok";
    done.id = "rated";
    done.textContent = "评价已提交，感谢您的评价。";
    $("case").prepend(done);
  } catch (e) {
    message(e.message);
  }
});

$("verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("verify-result");
  try {
    const v = await call("GET", "/api/public/receipts/verify?token=" + encodeURIComponent($("verify-token").value.trim()));
    out.className = "ok";
    out.textContent = "回执有效：事项 " + v.number + " 由 " + v.center + " 受理并签章。";
  } catch (e) {
    out.className = "overdue";
    out.textContent = e.message;
  }
  out.hidden = false;
});

// A link from a receipt or a message: #n=<number>&t=<receipt token> or
// #n=<number>&r=<rating token>. The query code is never in a link.
(function fromLink() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("n")) $("number").value = h.get("n");
  if (h.get("t")) $("verify-token").value = h.get("n") && h.get("t").indexOf(".") < 0 ? h.get("n") + "." + h.get("t") : h.get("t");
  if (h.get("r")) {
    $("rate-token").value = h.get("r");
    show($("rate"), true);
  }
})();
