/* The staff console of the 医保大厅 and the review office, through the public staff API with the staff token. */
"use strict";
// how the application was filed, as a clerk reads it (the API answers the channel's code)
const CHANNELS = { wechat: "微信", alipay: "支付宝", suishenban: "随申办", nhsa_app: "国家医保服务平台 APP",
                   web: "网上服务大厅", window: "医保大厅窗口" };

const state = { staff: null, tab: null };
const TABS = [
  { id: "reviews", label: "人工审核", role: "reviewer" },
  { id: "window", label: "窗口受理", role: "clerk" },
  { id: "usage", label: "使用记录打印", role: "clerk" },
  { id: "suspension", label: "联网结算暂停", role: "reviewer" },
  { id: "audit", label: "审计日志", role: "admin" },
];
const view = () => $("#view");
const ACTIONS = {
  staff_login: "登录", staff_login_failed: "登录失败", staff_created: "创建工作人员", window_application: "窗口代为申请",
  receipt_printed: "打印回执单", review_approve: "审核批准", review_reject: "审核驳回", material_read: "查看证明材料",
  usage_queried: "查询使用记录", usage_statement_printed: "打印使用记录单", settlement_suspension_lifted: "恢复联网结算",
  settlement_suspension_set: "暂停联网结算", impersonation_refused: "拒绝冒名就医",
  window_contribution: "窗口代缴", contribution_certificate_printed: "打印缴费证明",
  "registry.reconciliation": "登记库余额对账",
};
const ROLES = { clerk: "窗口经办", reviewer: "审核员", admin: "管理员" };
const DETAIL = { person: "参保人", reason: "原因", credential_kind: "凭证", roles: "角色", region_code: "地区",
                 persons: "人数", file: "文件", receipt_no: "受理编号", relation: "关系", format: "格式" };
const can = (role) => state.staff && (state.staff.roles.includes(role) || state.staff.roles.includes("admin"));

function field(id, label, attrs) {
  return [el("label", { for: id }, label), el("input", Object.assign({ id, autocomplete: "off" }, attrs || {}))];
}

async function open(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.tab === tab);
  const box = view();
  fill(box, el("p", { class: "muted" }, "加载中…"));
  try {
    await TAB_VIEWS[tab](box);
  } catch (err) {
    if (err.status === 401) return logout("登录已过期，请重新登录");
    showError(box, err);
  }
}

function logout(message) {
  api.token = null;
  state.staff = null;
  sessionStorage.removeItem("staff.token");
  sessionStorage.removeItem("staff.me");
  start();
  if (message) view().prepend(el("div", { class: "error" }, message));
}

function loginView() {
  const msg = el("div");
  const [ul, u] = field("username", "用户名");
  const [pl, p] = field("password", "密码", { type: "password" });
  const submit = async () => {
    try {
      const answer = await api.post("/staff/login", { username: u.value.trim(), password: p.value });
      api.token = answer.token;
      sessionStorage.setItem("staff.token", answer.token);
      sessionStorage.setItem("staff.me", JSON.stringify(answer.staff));
      state.staff = answer.staff;
      start();
    } catch (err) { showError(msg, err); }
  };
  p.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  fill(view(), el("div", { class: "card login" }, el("h2", {}, "工作人员登录"), ul, u, pl, p, msg,
    el("p", {}, el("button", { id: "login", onclick: submit }, "登录"))));
}

/* --- 人工审核 ---------------------------------------------------------------------------------------------- */

const TAB_VIEWS = {};

TAB_VIEWS.reviews = async (box) => {
  const page = await api.get("/staff/reviews?limit=50");
  const cards = page.items.map((r) => {
    const msg = el("div");
    const proofs = el("div", {});
    const reason = el("textarea", { placeholder: "驳回时必须填写原因（申请人会看到）", "data-reason": r.id });
    const decide = async (decision) => {
      try {
        const done = await api.post(`/staff/reviews/${r.id}/decision`, { decision, reason: reason.value.trim() });
        fill(card, el("div", { class: "notice" }, `${r.receipt_no}：${done.status_label}`));
      } catch (err) { showError(msg, err); }
    };
    const showProof = async (m, button) => {
      try {
        const blob = await api.blob(`/staff/materials/${m.id}`);
        const url = URL.createObjectURL(blob);
        if (blob.type.startsWith("image/")) {
          proofs.append(el("figure", {}, el("img", { class: "proof", src: url, alt: MATERIAL_KINDS[m.kind] }),
            el("figcaption", { class: "muted" }, MATERIAL_KINDS[m.kind])));
        } else {
          proofs.append(el("p", {}, el("a", { href: url, download: `${m.id}.pdf` }, `下载${MATERIAL_KINDS[m.kind]}（PDF）`)));
        }
        button.disabled = true;
      } catch (err) { showError(msg, err); }
    };
    const card = el("div", { class: "card", "data-review": r.id },
      el("div", { class: "row" }, el("h3", {}, `${r.authorizer.name} → ${r.beneficiary.name}（${r.relation_label}）`),
         el("span", { class: "badge warn" }, r.status_label)),
      el("div", { class: "grid" },
        el("div", {}, `授权人：${r.authorizer.name} ${r.authorizer.id_number}（${r.authorizer.region_code}）`),
        el("div", {}, `共济人员：${r.beneficiary.name} ${r.beneficiary.id_number}（${r.beneficiary.region_code}）`),
        el("div", { class: "muted" }, `受理编号 ${r.receipt_no} · 渠道 ${CHANNELS[r.channel] || r.channel} · ${when(r.created_at)}`),
        el("div", { class: "muted" }, r.review_due_at ? `审核期限 ${when(r.review_due_at)}` : ""),
        el("div", { class: "muted" }, r.reason || "")),
      el("div", { class: "actions" }, r.materials.length ? r.materials.map((m) =>
        el("button", { class: "secondary", "data-material": m.id, onclick: (e) => showProof(m, e.currentTarget) },
           `查看${MATERIAL_KINDS[m.kind] || "材料"}`)) : el("span", { class: "muted" }, "未附证明材料")),
      proofs,
      el("div", { class: "actions" }, reason,
        el("button", { "data-decision": "approve", onclick: () => decide("approve") }, "批准"),
        el("button", { class: "danger", "data-decision": "reject", onclick: () => decide("reject") }, "驳回")),
      msg);
    return card;
  });
  fill(box, el("h2", {}, `待人工审核（${page.items.length}${page.next_cursor ? "+" : ""}）`),
    cards.length ? cards : el("p", { class: "muted" }, "队列为空。"),
    el("p", {}, el("button", { class: "secondary", onclick: () => open("reviews") }, "刷新")));
};

/* --- 窗口受理: 《医保家庭共济申请表》 ------------------------------------------------------------------------ */

TAB_VIEWS.window = async (box) => {
  const msg = el("div");
  const result = el("div");
  const [aNl, aN] = field("authorizer-name", "授权人姓名");
  const [aIl, aI] = field("authorizer-id", "授权人身份证号码");
  const [bNl, bN] = field("beneficiary-name", "共济人员姓名");
  const [bIl, bI] = field("beneficiary-id", "共济人员身份证号码");
  const relation = el("select", { id: "relation" }, Object.entries(RELATIONS).map(([v, l]) => el("option", { value: v }, l)));
  const seen = ["id_card", "insurance_card"].map((k) =>
    el("label", { class: "inline" }, el("input", { type: "checkbox", value: k, "data-seen": k }), `已查验双方${MATERIAL_KINDS[k]}`));
  const kind = el("select", { id: "proof-kind" }, ["household_register", "marriage_certificate", "birth_certificate",
    "commitment_letter", "other"].map((k) => el("option", { value: k }, MATERIAL_KINDS[k])));
  const file = el("input", { id: "proof-file", type: "file", accept: "image/jpeg,image/png,application/pdf" });
  const uploaded = [];
  const list = el("ul", { class: "muted" });
  file.addEventListener("change", async () => {
    if (!file.files.length) return;
    const form = new FormData();
    form.append("kind", kind.value);
    form.append("file", file.files[0]);
    try {
      const m = await api.post("/staff/materials", form);
      uploaded.push(m);
      list.append(el("li", {}, `${MATERIAL_KINDS[m.kind]}：已扫描上传`));
      file.value = "";
    } catch (err) { showError(msg, err); }
  });
  const [mll, ml] = field("monthly-limit", "每月限额（元，不填为不限）", { inputmode: "decimal" });
  const [pll, pl] = field("per-payment-limit", "单次限额（元，不填为不限）", { inputmode: "decimal" });
  const [vul, vu] = field("valid-until", "授权截止日期（可不填）", { type: "date" });
  const receipt = (id, format, receiptNo) => async () => {
    try {
      saveBlob(await api.blob(`/staff/applications/${id}/receipt?format=${format}`, "application/pdf"),
               `回执单-${receiptNo}-${format}.pdf`);
    } catch (err) { showError(msg, err); }
  };
  const submit = async (e) => {
    e.target.disabled = true;
    fill(msg);
    try {
      const body = {
        authorizer_name: aN.value.trim(), authorizer_id_number: aI.value.trim(),
        beneficiary_name: bN.value.trim(), beneficiary_id_number: bI.value.trim(), relation: relation.value,
        materials_seen: seen.map((l) => l.querySelector("input")).filter((c) => c.checked).map((c) => c.value),
        material_ids: uploaded.map((m) => m.id), monthly_limit_fen: fenOf(ml.value),
        per_payment_limit_fen: fenOf(pl.value), valid_until: vu.value || null,
      };
      const a = await api.post("/staff/applications", body, { "Idempotency-Key": crypto.randomUUID() });
      fill(result, el("div", { class: "notice", id: "window-result" },
        "已受理，受理编号 ", el("strong", { id: "window-receipt-no" }, a.receipt_no), `（${a.status_label}）`),
        el("div", { class: "actions" },
          el("button", { id: "receipt-a4", onclick: receipt(a.id, "a4", a.receipt_no) }, "打印回执单（A4）"),
          el("button", { id: "receipt-80mm", class: "secondary", onclick: receipt(a.id, "80mm", a.receipt_no) }, "小票（80 mm）"),
          el("button", { class: "link", onclick: () => open("window") }, "受理下一份")));
    } catch (err) { showError(msg, err); e.target.disabled = false; }
  };
  fill(box, el("h2", {}, "《医保家庭共济申请表》窗口受理"),
    el("div", { class: "card" }, el("div", { class: "grid" },
      el("div", {}, el("h3", {}, "授权人（本人到场）"), aNl, aN, aIl, aI),
      el("div", {}, el("h3", {}, "共济人员"), bNl, bN, bIl, bI, el("label", { for: "relation" }, "共济人员是授权人的"), relation))),
    el("div", { class: "card" }, el("h3", {}, "证件查验与证明材料"), seen,
      el("div", { class: "row" }, kind, file), list),
    el("div", { class: "card" }, el("h3", {}, "使用限额"), el("div", { class: "grid" }, el("div", {}, mll, ml), el("div", {}, pll, pl), el("div", {}, vul, vu))),
    msg, el("p", {}, el("button", { id: "window-submit", onclick: submit }, "提交申请")), result);
};

/* --- 使用记录打印 ------------------------------------------------------------------------------------------- */

TAB_VIEWS.usage = async (box) => {
  const msg = el("div");
  const out = el("div");
  const [il, id] = field("usage-id", "参保人身份证号码");
  const [fl, from] = field("usage-from", "起始日期", { type: "date" });
  const [tl, to] = field("usage-to", "截止日期", { type: "date" });
  const query = () => {
    const q = new URLSearchParams();
    if (from.value) q.set("from", from.value);
    if (to.value) q.set("to", to.value);
    return `/staff/persons/${encodeURIComponent(id.value.trim())}/usage?${q}`;
  };
  const show = async () => {
    try {
      const page = await api.get(query() + "&limit=100");
      fill(out, page.items.length ? el("table", {},
        el("thead", {}, el("tr", {}, ["时间", "机构", "使用人", "授权人", "金额", "状态"].map((h) => el("th", {}, h)))),
        el("tbody", {}, page.items.map((u) => el("tr", {}, el("td", {}, when(u.at)), el("td", {}, u.institution.name),
          el("td", {}, `${u.patient.name} ${u.patient.id_number}`), el("td", {}, u.authorizer.name),
          el("td", { class: "money" }, yuan(u.amount_fen)), el("td", {}, u.refunded ? "已退费" : "已支付"))))) :
        el("p", { class: "muted" }, "该期间没有家庭共济使用记录。"));
    } catch (err) { showError(msg, err); }
  };
  const print = async () => {
    try { saveBlob(await api.blob(query(), "application/pdf"), "家庭共济使用记录.pdf"); } catch (err) { showError(msg, err); }
  };
  fill(box, el("h2", {}, "参保人家庭共济使用记录"),
    el("div", { class: "card" }, el("div", { class: "grid" }, el("div", {}, il, id), el("div", {}, fl, from), el("div", {}, tl, to)),
      el("div", { class: "actions" }, el("button", { id: "usage-show", onclick: show }, "查询"),
        el("button", { id: "usage-print", class: "secondary", onclick: print }, "打印记录单（PDF）"))),
    msg, out);
};

/* --- 联网结算暂停 ------------------------------------------------------------------------------------------- */

TAB_VIEWS.suspension = async (box) => {
  const msg = el("div");
  const [il, id] = field("suspension-id", "参保人身份证号码");
  const [rl, reason] = field("suspension-reason", "原因（必填，参保人会收到通知）");
  const set = (suspended) => async () => {
    try {
      const p = await api.post(`/staff/persons/${encodeURIComponent(id.value.trim())}/settlement-suspension`,
                               { suspended, reason: reason.value.trim() });
      fill(msg, el("div", { class: "notice" },
        `${p.name}（${p.id_number}）：联网结算${p.settlement_suspended ? "已暂停" : "已恢复"}`));
    } catch (err) { showError(msg, err); }
  };
  fill(box, el("h2", {}, "恢复或暂停联网结算（冒名就医处理）"),
    el("div", { class: "card" }, il, id, rl, reason,
      el("div", { class: "actions" }, el("button", { id: "suspension-lift", onclick: set(false) }, "恢复联网结算"),
        el("button", { class: "danger", onclick: set(true) }, "暂停联网结算"))), msg);
};

/* --- 审计日志 ------------------------------------------------------------------------------------------------ */

TAB_VIEWS.audit = async (box) => {
  const msg = el("div");
  const body = el("tbody");
  const more = el("button", { class: "secondary hidden" }, "更多");
  const [al, actor] = field("audit-actor", "操作人（如 staff:clerk1）");
  const [cl, action] = field("audit-action", "操作（如 window_application）");
  const [fl, from] = field("audit-from", "起始日期", { type: "date" });
  const [tl, to] = field("audit-to", "截止日期", { type: "date" });
  let cursor = null;
  const load = async (reset) => {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, input] of [["actor", actor], ["action", action], ["from", from], ["to", to]]) {
      if (input.value.trim()) q.set(k, input.value.trim());
    }
    if (!reset && cursor) q.set("cursor", cursor);
    try {
      const page = await api.get(`/staff/audit?${q}`);
      if (reset) fill(body);
      for (const e of page.items) {
        const target = e.target || "";
        body.append(el("tr", { "data-action": e.action }, el("td", { class: "nowrap" }, when(e.at)),
          el("td", { class: "nowrap" }, e.actor),
          el("td", {}, ACTIONS[e.action] || e.action, el("div", { class: "muted" }, e.action)),
          el("td", { class: "nowrap id" }, e.person || ""),
          el("td", { class: "id", title: target }, /^[0-9a-f]{32}$/.test(target) ? target.slice(0, 8) + "…" : target),
          el("td", { class: "muted" }, Object.entries(e.detail || {}).map(([k, v]) => `${DETAIL[k] || k}：${v}`).join("；"))));
      }
      cursor = page.next_cursor;
      more.classList.toggle("hidden", !cursor);
    } catch (err) { showError(msg, err); }
  };
  more.addEventListener("click", () => load(false));
  fill(box, el("h2", {}, "审计日志"),
    el("div", { class: "card" }, el("div", { class: "grid" }, el("div", {}, al, actor), el("div", {}, cl, action),
      el("div", {}, fl, from), el("div", {}, tl, to)),
      el("p", {}, el("button", { id: "audit-search", onclick: () => load(true) }, "查询"))),
    msg, el("div", { class: "scroll-x" }, el("table", {}, el("thead", {}, el("tr", {},
      ["时间", "操作人", "操作", "涉及人员（脱敏）", "对象", "详情"].map((h) => el("th", {}, h)))), body)),
    el("p", {}, more));
  await load(true);
};

/* --- start --------------------------------------------------------------------------------------------------- */

function start() {
  const tabs = $("#tabs");
  $("#logout").classList.toggle("hidden", !state.staff);
  tabs.classList.toggle("hidden", !state.staff);
  if (!state.staff) {
    $("#who").textContent = "";
    return loginView();
  }
  $("#who").textContent = `${state.staff.username}（${state.staff.roles.map((r) => ROLES[r] || r).join("、")}）`;
  const mine = TABS.filter((t) => can(t.role));
  fill(tabs, ...mine.map((t) => el("button", { "data-tab": t.id, onclick: () => open(t.id) }, t.label)));
  open(mine.length ? mine[0].id : "reviews");
}

$("#logout").addEventListener("click", () => logout());
$("#care").addEventListener("click", () => {
  const on = !document.body.classList.contains("care");
  document.body.classList.toggle("care", on);
  $("#care").setAttribute("aria-pressed", String(on));
});
api.token = sessionStorage.getItem("staff.token");
try { state.staff = api.token ? JSON.parse(sessionStorage.getItem("staff.me")) : null; } catch (e) { state.staff = null; }
start();
