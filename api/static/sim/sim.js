/* The mini-program simulator: what a person sees in WeChat / Alipay / 随申办 / 国家医保服务平台, through the public API
   with the token the login gave (kept in sessionStorage, like a mini-program's storage). */
"use strict";

const CHANNELS = { wechat: "微信", alipay: "支付宝", suishenban: "随申办", nhsa_app: "国家医保服务平台" };
const state = { channel: sessionStorage.getItem("sim.channel") || "wechat", me: null, view: "login", history: [] };
const view = () => $("#view");
const TITLES = {
  login: "职工医保家庭共济", home: "业务办理", bind: "亲情账号绑定", apps: "申请进度", app: "申请详情",
  bindings: "我的共济", usage: "共济记录", inbox: "消息通知", voucher: "医保电子凭证", chat: "智能客服",
};
let voucherTimer = null;

/* --- navigation --------------------------------------------------------------------------------------------- */

async function go(name, arg, back) {
  if (!back && state.view !== name && state.view !== "login") state.history.push([state.view, state.arg]);
  state.view = name;
  state.arg = arg;
  clearInterval(voucherTimer);
  $("#title").textContent = TITLES[name] || TITLES.login;
  $("#back").classList.toggle("hidden", name === "login" || name === "home");
  $("#tabs").classList.toggle("hidden", name === "login");
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.go === name);
  document.body.dataset.view = name;
  const box = view();
  fill(box, el("p", { class: "muted" }, "加载中…"));
  try {
    await VIEWS[name](box, arg);
  } catch (err) {
    if (err.status === 401) return logout("登录已过期，请重新登录");
    showError(box, err);
  }
  refreshUnread();
}

function goBack() {
  const [name, arg] = state.history.pop() || ["home"];
  go(name, arg, true);
}

async function refreshUnread() {
  if (!api.token) return;
  try {
    const inbox = await api.get("/notifications?unread=true&limit=1");
    const dot = $("#unread");
    dot.textContent = inbox.unread_count;
    dot.classList.toggle("hidden", !inbox.unread_count);
  } catch (e) { /* the badge is a nicety */ }
}

function logout(message) {
  api.token = null;
  sessionStorage.removeItem("sim.token");
  state.history = [];
  go("login").then(() => { if (message) view().prepend(el("div", { class: "error" }, message)); });
}

/* --- views -------------------------------------------------------------------------------------------------- */

const VIEWS = {};

VIEWS.login = async (box) => {
  const people = await (await fetch("/static/sim/demo-people.json")).json();
  const channelButtons = Object.entries(CHANNELS).map(([value, label]) =>
    el("button", { class: value === state.channel ? "on" : "", "data-channel": value, onclick: (e) => {
      state.channel = value;
      sessionStorage.setItem("sim.channel", value);
      for (const b of box.querySelectorAll(".channels button")) b.classList.toggle("on", b === e.currentTarget);
    } }, label));
  const error = el("div");
  const doLogin = async (name, idNumber, code) => {
    try {
      const answer = await api.post("/auth/login", { channel: state.channel, code, name, id_number: idNumber });
      api.token = answer.token;
      sessionStorage.setItem("sim.token", answer.token);
      state.me = answer.person;
      go("home");
    } catch (err) { showError(error, err); }
  };
  const families = {};
  for (const p of people) (families[p.family] = families[p.family] || []).push(p);
  const name = el("input", { id: "login-name", autocomplete: "off" });
  const idNumber = el("input", { id: "login-id", autocomplete: "off", inputmode: "numeric" });
  fill(box,
    el("div", { class: "card" }, el("h2", {}, "选择登录渠道"), el("div", { class: "channels" }, channelButtons),
       el("p", { class: "muted" }, "模拟渠道：登录码即渠道用户标识（openid）；首次登录需实名认证。")),
    error,
    el("div", { class: "card" }, el("h2", {}, "以演示人员登录"),
       el("p", { class: "muted" }, "演示登记中的虚构人员（fixtures/demo），姓名和身份证号已脱敏显示。"),
       Object.entries(families).map(([family, members]) => [
         el("h3", {}, family),
         members.map((p) => el("button", { class: "person", "data-line": p.line,
           onclick: () => doLogin(p.name, p.id_number, `sim-${state.channel}-${p.id_number.slice(-6)}`) },
           el("span", {}, p.masked_name, el("span", { class: "muted" }, p.masked_id)),
           el("span", { class: "badge" + (p.status === "normal" ? "" : " bad") },
              p.insurance_type === "employee" ? "职工" : "居民", p.status === "normal" ? "" : " · 非正常"))),
       ])),
    el("div", { class: "card" }, el("h2", {}, "实名认证登录"),
       el("label", { for: "login-name" }, "姓名"), name,
       el("label", { for: "login-id" }, "身份证号码"), idNumber,
       el("p", {}, el("button", { onclick: () => doLogin(name.value.trim(), idNumber.value.trim(),
         `sim-${state.channel}-${idNumber.value.trim().slice(-6)}`) }, "登录"))));
  $("#channel-strip").classList.add("hidden");
};

VIEWS.home = async (box) => {
  const [me, services] = await Promise.all([api.get("/me"), api.get("/services")]);
  state.me = me;
  const strip = $("#channel-strip");
  strip.textContent = `${CHANNELS[state.channel] || state.channel} · ${me.name}（${me.id_number}）`;
  strip.classList.remove("hidden");
  const targets = { family_binding: "bind", family_unbinding: "bindings", usage_query: "usage",
                    application_status: "apps" };
  const account = me.account
    ? el("div", {}, el("div", { class: "muted" }, "个人账户余额"), el("div", { class: "balance money" }, yuan(me.account.balance_fen)),
         el("div", { class: "muted" }, `其中可共济 ${yuan(me.account.shareable_fen)}（历年 ${yuan(me.account.prior_year_fen)}）`))
    : el("p", { class: "muted" }, "居民医保没有个人账户，可以使用家人授权的职工医保个人账户。");
  fill(box,
    el("div", { class: "card" }, el("h2", {}, `${me.name}，您好`),
       el("div", { class: "row" }, el("span", { class: "badge" }, me.insurance_type_label),
          el("span", { class: "badge " + (me.status === "normal" ? "ok" : "bad") }, me.status_label),
          el("span", { class: "badge" }, me.region_name || me.region_code)),
       me.settlement_suspended ? el("div", { class: "error" }, "您的联网结算已暂停，请到医保经办窗口咨询。") : null,
       account),
    el("h2", {}, "业务办理"),
    el("div", { class: "menu" }, services.map((s) => el("button", {
      "data-service": s.id, disabled: !s.available, title: s.reason || "",
      onclick: () => go(targets[s.id]) }, s.title, s.reason ? el("span", { class: "muted" }, s.reason) : null)),
      el("button", { "data-service": "voucher", onclick: () => go("voucher") }, "医保电子凭证"),
      el("button", { "data-service": "chat", onclick: () => go("chat") }, "智能客服",
         el("span", { class: "muted" }, "一步步办理")),
    ),
    el("p", {}, el("button", { class: "link", onclick: () => logout() }, "退出登录")));
};

VIEWS.bind = async (box) => {
  const region = await api.get("/policy");
  const msg = el("div");
  const f = {
    relation: el("select", { id: "relation" }, region.relations.map((r) => el("option", { value: r.value }, r.label))),
    name: el("input", { id: "beneficiary-name", autocomplete: "off" }),
    idNumber: el("input", { id: "beneficiary-id", autocomplete: "off" }),
    kind: el("select", { id: "material-kind" }, ["household_register", "marriage_certificate", "birth_certificate",
      "commitment_letter", "other"].map((k) => el("option", { value: k }, MATERIAL_KINDS[k]))),
    file: el("input", { id: "material-file", type: "file", accept: "image/jpeg,image/png,application/pdf" }),
    monthly: el("input", { id: "monthly-limit", inputmode: "decimal", placeholder: "不填为不限" }),
    perPayment: el("input", { id: "per-payment-limit", inputmode: "decimal", placeholder: "不填为不限" }),
    validUntil: el("input", { id: "valid-until", type: "date" }),
  };
  const uploaded = [];
  const list = el("ul", { class: "muted" });
  const upload = async () => {
    if (!f.file.files.length) return;
    const form = new FormData();
    form.append("kind", f.kind.value);
    form.append("file", f.file.files[0]);
    try {
      const m = await api.post("/materials", form);
      uploaded.push(m);
      list.append(el("li", {}, `${MATERIAL_KINDS[m.kind]}：已上传（${Math.ceil(m.size / 1024)} KB）`));
      f.file.value = "";
    } catch (err) { showError(msg, err); }
  };
  f.file.addEventListener("change", upload);
  const submit = async (e) => {
    e.target.disabled = true;
    try {
      const body = {
        beneficiary_name: f.name.value.trim(), beneficiary_id_number: f.idNumber.value.trim(),
        relation: f.relation.value, material_ids: uploaded.map((m) => m.id),
        monthly_limit_fen: fenOf(f.monthly.value), per_payment_limit_fen: fenOf(f.perPayment.value),
        valid_until: f.validUntil.value || null,
      };
      const answer = await api.post("/bindings/applications", body, { "Idempotency-Key": crypto.randomUUID() });
      go("app", answer.id);
    } catch (err) { showError(msg, err); e.target.disabled = false; }
  };
  fill(box,
    el("div", { class: "card" },
      el("p", { class: "muted" }, `${region.name}：${region.relations.map((r) => r.label).join("、")}可以绑定；`
        + `${region.review_mode === "manual" ? "所有申请人工审核" : "登记能核实亲属关系的自动审核"}。`),
      el("label", { for: "relation" }, "家人是我的"), f.relation,
      el("label", { for: "beneficiary-name" }, "家人姓名"), f.name,
      el("label", { for: "beneficiary-id" }, "家人身份证号码"), f.idNumber,
      el("h3", {}, "证明材料（登记无法核实关系时需要）"),
      el("div", { class: "row" }, f.kind), f.file, list,
      el("h3", {}, "使用限额（可不填）"),
      el("label", { for: "monthly-limit" }, "每月最多（元）"), f.monthly,
      el("label", { for: "per-payment-limit" }, "每次最多（元）"), f.perPayment,
      el("label", { for: "valid-until" }, "授权截止日期"), f.validUntil),
    msg,
    el("p", {}, el("button", { id: "submit-application", onclick: submit }, "提交申请")));
};

function statusBadge(status, label) {
  const tone = { approved: "ok", rejected: "bad", expired: "bad", withdrawn: "bad", manual_review: "warn" }[status] || "";
  return el("span", { class: "badge " + tone, "data-status": status }, label);
}

VIEWS.apps = async (box) => {
  const page = await api.get("/bindings/applications?limit=50");
  fill(box,
    page.items.length ? null : el("p", { class: "muted" }, "还没有申请。"),
    page.items.map((a) => el("div", { class: "card", "data-application": a.id, onclick: () => go("app", a.id) },
      el("div", { class: "row" }, el("strong", {}, `${a.counterpart.relation_label} ${a.counterpart.name}`),
         statusBadge(a.status, a.status_label)),
      el("div", { class: "muted" }, `受理编号 ${a.receipt_no} · ${when(a.created_at)} · `
        + (a.role === "authorizer" ? "我是授权人" : "我是共济人员")))));
};

VIEWS.app = async (box, id) => {
  const a = await api.get(`/bindings/applications/${id}`);
  const msg = el("div");
  const withdraw = async () => {
    try { await api.post(`/bindings/applications/${id}/withdraw`); go("app", id, true); } catch (err) { showError(msg, err); }
  };
  fill(box,
    el("div", { class: "card" },
      el("div", { class: "row" }, el("h2", {}, `${a.counterpart.relation_label} ${a.counterpart.name}`),
         statusBadge(a.status, a.status_label)),
      el("div", {}, `受理编号：`, el("strong", { id: "receipt-no" }, a.receipt_no)),
      el("div", { class: "muted" }, `授权人 ${a.authorizer.name}（${a.authorizer.id_number}）→ 共济人员 ${a.beneficiary.name}`
        + `（${a.beneficiary.id_number}）`),
      el("div", { class: "muted" }, `每月限额 ${yuan(a.monthly_limit_fen)} · 每次 ${yuan(a.per_payment_limit_fen)}`),
      a.reason ? el("div", { class: a.status === "rejected" ? "error" : "notice" }, a.reason) : null,
      a.review_due_at ? el("div", { class: "muted" }, `预计 ${when(a.review_due_at)} 前完成人工审核`) : null),
    el("h3", {}, "办理进度"),
    el("ol", { class: "timeline" }, a.timeline.map((t) => el("li", {},
      el("strong", {}, t.status_label),
      el("div", { class: "muted" }, `${when(t.at)} · ${t.actor_label}`),
      t.reason ? el("div", {}, t.reason) : null))),
    msg,
    a.can_withdraw ? el("p", {}, el("button", { class: "danger", onclick: withdraw }, "撤回申请")) : null,
    el("p", {}, el("button", { class: "secondary", onclick: () => go("app", id, true) }, "刷新")));
};

/* The authorizer's view: each member's use month by month as small bars, beside what remains of the limit. */
function monthsBack(n) {
  const out = [];
  const d = new Date();
  for (let i = n - 1; i >= 0; i--) {
    const m = new Date(d.getFullYear(), d.getMonth() - i, 1);
    out.push(`${m.getFullYear()}-${String(m.getMonth() + 1).padStart(2, "0")}`);
  }
  return out;
}

function usageChart(byMonth, months) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 320, H = 120, top = 16, bottom = 22, barW = W / months.length;
  const max = Math.max(1, ...months.map((m) => byMonth[m] || 0));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "近六个月每月使用金额");
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
  };
  add("line", { x1: 0, y1: H - bottom, x2: W, y2: H - bottom, stroke: "#9aa5b1" });
  months.forEach((m, i) => {
    const v = byMonth[m] || 0, h = Math.round((H - top - bottom) * v / max), x = i * barW + barW * 0.2;
    add("rect", { x, y: H - bottom - h, width: barW * 0.6, height: Math.max(h, v ? 2 : 0), rx: 3,
                  fill: i === months.length - 1 ? "#1a73c8" : "#8ab4f8" });
    add("text", { x: x + barW * 0.3, y: H - 6, "text-anchor": "middle" }, `${parseInt(m.slice(5), 10)}月`);
    if (v) add("text", { x: x + barW * 0.3, y: H - bottom - h - 4, "text-anchor": "middle" }, (v / 100).toFixed(0));
  });
  const total = months.reduce((sum, m) => sum + (byMonth[m] || 0), 0);
  return el("div", { class: "chart" }, el("div", { class: "muted" },
    total ? `近六个月共使用 ${yuan(total)}（柱上数字单位：元）` : "近六个月还没有使用"), svg);
}

async function allUsage() {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 10; i++) {
    const page = await api.get("/usage?limit=100" + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
    items.push(...page.items);
    if (!(cursor = page.next_cursor)) break;
  }
  return items;
}

function meter(left, limit) {
  const fill = el("div", {});
  fill.style.width = `${Math.round(100 * left / Math.max(limit, 1))}%`;  // CSSOM: the CSP allows no inline style
  return el("div", { class: "meter", title: "本月剩余额度" }, fill);
}

VIEWS.bindings = async (box) => {
  const [bindings, usage] = await Promise.all([api.get("/bindings"), allUsage()]);
  const months = monthsBack(6);
  const msg = el("div");
  const revoke = async (b) => {
    if (!confirm(`确定解除与${b.counterpart.relation_label} ${b.counterpart.name}的家庭共济吗？解除后立即停止使用，记录保留。`)) return;
    try { await api.post(`/bindings/${b.id}/revoke`, { reason: "本人在小程序解除" }); go("bindings", null, true); }
    catch (err) { showError(msg, err); }
  };
  const card = (b) => {
    const byMonth = {};
    for (const u of usage) if (u.binding_id === b.id && !u.refunded) {
      const m = u.at.slice(0, 7);
      byMonth[m] = (byMonth[m] || 0) + u.amount_fen;
    }
    const active = b.status === "active";
    const limit = b.monthly_limit_fen;
    const left = limit === null ? null : Math.max(0, limit - b.used_this_month_fen);
    return el("div", { class: "card", "data-binding": b.id },
      el("div", { class: "row" }, el("strong", {}, `${b.counterpart.relation_label} ${b.counterpart.name}`),
         el("span", { class: "badge " + (active ? "ok" : "bad") }, active ? "共济中" : "已解除")),
      el("div", { class: "muted" }, b.counterpart.id_number),
      el("div", { class: "remain" }, el("span", {}, `本月已用 ${yuan(b.used_this_month_fen)}`),
         el("span", { class: "money" }, limit === null ? "每月不限" : `剩余 ${yuan(left)}`)),
      limit === null ? null : meter(left, limit),
      el("div", { class: "muted" }, `每次最多 ${yuan(b.per_payment_limit_fen)}${b.valid_until ? ` · 至 ${b.valid_until}` : ""}`),
      b.role === "authorizer" ? usageChart(byMonth, months) : null,
      active ? el("p", {}, el("button", { class: "danger", onclick: () => revoke(b) }, "解除绑定")) : null);
  };
  const me = state.me || await api.get("/me");
  fill(box, msg,
    el("h2", {}, "我授权的家人"),
    me.account ? el("p", { class: "muted" }, `可共济余额 ${yuan(me.account.shareable_fen)}`) : null,
    bindings.granted.length ? bindings.granted.map(card) : el("p", { class: "muted" }, "暂无。"),
    el("h2", {}, "授权给我的家人"),
    bindings.received.length ? bindings.received.map(card) : el("p", { class: "muted" }, "暂无。"),
    el("p", {}, el("button", { class: "secondary", onclick: () => go("usage") }, "查看全部共济记录")));
};

VIEWS.usage = async (box) => {
  const items = await allUsage();
  fill(box, items.length ? el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "时间"), el("th", {}, "机构"), el("th", {}, "使用人 / 授权人"), el("th", {}, "金额"))),
    el("tbody", {}, items.map((u) => el("tr", {},
      el("td", {}, when(u.at)), el("td", {}, u.institution.name),
      el("td", {}, `${u.patient.name} ← ${u.authorizer.name}`),
      el("td", { class: "money" }, yuan(u.amount_fen), u.refunded ? el("span", { class: "badge warn" }, "已退费") : null)))))
    : el("p", { class: "muted" }, "还没有家庭共济使用记录。"));
};

VIEWS.inbox = async (box) => {
  const page = await api.get("/notifications?limit=50");
  fill(box, page.items.length ? null : el("p", { class: "muted" }, "没有消息。"),
    page.items.map((n) => el("div", { class: "card", "data-notification": n.kind },
      el("div", { class: "row" }, el("strong", {}, n.title), n.read ? null : el("span", { class: "badge warn" }, "未读")),
      el("div", {}, n.body), el("div", { class: "muted" }, when(n.created_at)),
      n.application_id ? el("button", { class: "link", onclick: () => go("app", n.application_id) }, "查看申请") : null)));
  await Promise.all(page.items.filter((n) => !n.read).map((n) => api.post(`/notifications/${n.id}/read`).catch(() => null)));
};

VIEWS.voucher = async (box) => {
  const show = async () => {
    const v = await api.get("/me/voucher");
    const qr = qrcode(0, "M");
    qr.addData(v.code);
    qr.make();
    const holder = el("div", { class: "qr", id: "voucher-qr", "data-code": v.code });
    holder.innerHTML = qr.createSvgTag({ cellSize: 6, margin: 4, scalable: true });
    const left = el("span", {});
    const expires = Date.parse(v.expires_at);
    const tick = () => {
      const s = Math.max(0, Math.round((expires - Date.now()) / 1000));
      left.textContent = `${Math.floor(s / 60)} 分 ${s % 60} 秒后刷新`;
      if (s <= 10) { clearInterval(voucherTimer); show(); }  // a fresh code before this one expires
    };
    clearInterval(voucherTimer);
    voucherTimer = setInterval(tick, 1000);
    tick();
    fill(box, el("div", { class: "card" },
      el("h2", {}, `${state.me ? state.me.name : ""} 的医保电子凭证`), holder,
      el("p", { class: "muted" }, "就医购药时出示本人的凭证。钱可以共济，码（卡）不能共用。"),
      el("p", { class: "row" }, left, el("button", { class: "secondary", onclick: show }, "刷新"))));
  };
  await show();
};

/* --- chat with the bot: replies with quick-reply buttons from `options` --------------------------------------- */

VIEWS.chat = async (box) => {
  const log = el("div", { class: "chat", id: "chat-log" });
  const input = el("input", { id: "chat-input", placeholder: "输入消息，或点选下方按钮", autocomplete: "off" });
  const proof = el("input", { id: "chat-proof", type: "file", class: "hidden", accept: "image/jpeg,image/png,application/pdf" });
  let dialog = null;
  const say = async (body, shown) => {
    log.append(el("div", { class: "msg me" }, shown));
    for (const old of log.querySelectorAll(".options button")) old.disabled = true;
    try {
      const turn = await api.post("/bot/messages", body);
      dialog = turn.dialog;
      proof.classList.toggle("hidden", dialog.step !== "proof");
      for (const r of turn.replies) {
        log.append(el("div", { class: "msg bot" }, r.text,
          r.options.length ? el("div", { class: "options" }, r.options.map((o) =>
            el("button", { "data-value": o.value, onclick: () => say({ option: o.value }, o.label) }, o.label))) : null));
      }
    } catch (err) { log.append(el("div", { class: "msg bot error" }, err.message)); }
    log.lastElementChild.scrollIntoView({ block: "end" });
  };
  // what was typed is sent as typed, and shown masked as the bot's replies are (api/masking.py: ID numbers of 18
  // and 15 digits, phone numbers, card numbers)
  const keep = (m, head, tail) => m.slice(0, head) + "*".repeat(m.length - head - tail) + m.slice(-tail);
  const masked = (t) => t
    .replace(/(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])/g, (m) => keep(m, 6, 4))
    .replace(/(?<![0-9A-Za-z])[1-9][0-9]{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}(?![0-9A-Za-z])/g,
      (m) => keep(m, 6, 4))
    .replace(/(?<![0-9A-Za-z])[A-Za-z]{1,2}[0-9]{8,11}(?![0-9A-Za-z])/g, (m) => keep(m, 2, 4))
    .replace(/(?<![0-9])1[3-9][0-9]{9}(?![0-9])/g, (m) => keep(m, 3, 4));
  const send = () => { const t = input.value.trim(); if (t) { input.value = ""; say({ text: t }, masked(t)); } };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") send(); });
  proof.addEventListener("change", async () => {
    if (!proof.files.length) return;
    const form = new FormData();
    form.append("kind", "household_register");
    form.append("file", proof.files[0]);
    try { const m = await api.post("/materials", form); say({ option: m.id }, "已上传证明材料"); }
    catch (err) { log.append(el("div", { class: "msg bot error" }, err.message)); }
    proof.value = "";
  });
  fill(box, log, el("div", { class: "composer" }, input, el("button", { id: "chat-send", onclick: send }, "发送")), proof);
  await say({ text: "你好" }, "你好");
};

/* --- start ---------------------------------------------------------------------------------------------------- */

function care(on) {
  document.body.classList.toggle("care", on);
  $("#care").setAttribute("aria-pressed", String(on));
  localStorage.setItem("sim.care", on ? "1" : "");
}

$("#care").addEventListener("click", () => care(!document.body.classList.contains("care")));
$("#back").addEventListener("click", goBack);
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => go(b.dataset.go));
care(!!localStorage.getItem("sim.care"));
api.token = sessionStorage.getItem("sim.token");
go(api.token ? "home" : "login");
