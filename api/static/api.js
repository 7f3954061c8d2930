/* The public API as a browser client calls it: JSON with a bearer token, errors as {code, message, field}. */
"use strict";

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `请求失败（${status}）`);
    this.status = status;
    this.code = e.code || "HTTP_" + status;
    this.field = e.field || null;
  }
}

const api = {
  base: "/api/v1",
  token: null,

  headers(extra) {
    const h = Object.assign({}, extra || {});
    if (this.token) h["Authorization"] = "Bearer " + this.token;
    return h;
  },

  async call(method, path, body, extraHeaders) {
    const init = { method, headers: this.headers(extraHeaders) };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.base + path, init);
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) data = await response.json();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  },

  get(path) { return this.call("GET", path); },
  post(path, body, headers) { return this.call("POST", path, body === undefined ? {} : body, headers); },
  patch(path, body) { return this.call("PATCH", path, body); },

  /* A file answer (PDF, an uploaded proof) as a Blob, with the token. */
  async blob(path, accept) {
    const response = await fetch(this.base + path, { headers: this.headers(accept ? { Accept: accept } : {}) });
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch (e) { /* not JSON */ }
      throw new ApiError(response.status, data);
    }
    return response.blob();
  },
};

/* Small DOM helpers. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/* Replaces the children of `node` by `children`, arrays flattened and null / false left out. */
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function $(selector, root) { return (root || document).querySelector(selector); }

function yuan(fen) {
  if (fen === null || fen === undefined) return "不限";
  return (fen / 100).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " 元";
}

function fenOf(text) {
  /* "12.5" 元 → 1250 分; empty → null (no limit). Never floats for the amount sent. */
  const t = String(text || "").trim();
  if (!t) return null;
  const m = t.match(/^(\d+)(?:\.(\d{1,2}))?$/);
  if (!m) throw new ApiError(400, { error: { code: "INVALID_AMOUNT", message: "金额格式不正确（例如 500 或 99.50）" } });
  return parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10);
}

function when(iso) {
  if (!iso) return "";
  return iso.replace("T", " ").slice(0, 16);
}

function showError(box, err) {
  box.replaceChildren(el("div", { class: "error", role: "alert" }, err.message || String(err)));
}

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

const RELATIONS = {
  spouse: "配偶", parent: "父母", child: "子女", sibling: "兄弟姐妹", grandparent: "祖父母",
  maternal_grandparent: "外祖父母", grandchild: "孙子女", maternal_grandchild: "外孙子女",
};
const MATERIAL_KINDS = {
  household_register: "户口簿", marriage_certificate: "结婚证", birth_certificate: "出生医学证明",
  commitment_letter: "承诺书", id_card: "身份证", insurance_card: "医保卡", other: "其他材料",
};
