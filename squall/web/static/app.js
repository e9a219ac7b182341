// Squall's UI: the shell (sign-in, navigation, router) and the helpers every
// page uses. Pages live in pages/*.js and register their routes with route().
// The DOM is built with h(), which only ever creates text nodes for content:
// nothing from the API is parsed as HTML.

// -- the session ------------------------------------------------------------------

const SESSION_KEY = "squall.session";

export const session = {
  get() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (s && s.expiry && Date.parse(s.expiry) <= Date.now()) {
        sessionStorage.removeItem(SESSION_KEY);
        return null;
      }
      return s;
    } catch {
      return null;
    }
  },
  set(s) { sessionStorage.setItem(SESSION_KEY, JSON.stringify(s)); grants = null; },
  clear() { sessionStorage.removeItem(SESSION_KEY); grants = null; },
  headers() {
    const s = this.get();
    if (!s) return {};
    return s.kind === "apikey" ? { "St2-Api-Key": s.secret } : { "X-Auth-Token": s.secret };
  },
  query() {
    const s = this.get();
    if (!s) return "";
    return s.kind === "apikey" ? `st2-api-key=${encodeURIComponent(s.secret)}` : `x-auth-token=${encodeURIComponent(s.secret)}`;
  },
};

// -- what the signed-in user may do ---------------------------------------------------
// The pages leave out the buttons of what the user's roles do not allow (the
// API refuses it anyway): GET /api/v1/rbac/me, once per session.

let grants = null;

export async function loadPermissions() {
  if (!grants) {
    try { grants = await api("/api/v1/rbac/me"); } catch { grants = { permissions: [], scoped: {} }; }
  }
  return grants;
}

/** Whether the user holds `permission` everywhere, or on the resource `uid`
 * (StackStorm's uid, e.g. "action:examples:hello") or its pack. */
export function can(permission, uid) {
  if (!grants) return true; // not known yet: the API still decides
  if (grants.permissions.includes(permission)) return true;
  if (!uid) return Object.values(grants.scoped).some((p) => p.includes(permission));
  const pack = uid.split(":")[1];
  return [uid, `pack:${pack}`].some((key) => (grants.scoped[key] || []).includes(permission));
}

/** StackStorm's uid of pack content: ("action", "examples.hello") -> "action:examples:hello". */
export function uidOf(type, ref) {
  const dot = ref.indexOf(".");
  return dot < 0 ? `${type}:${ref}` : `${type}:${ref.slice(0, dot)}:${ref.slice(dot + 1)}`;
}

/** An execution is steered by whoever may steer it, or run its action. */
export function canOnExecution(permission, actionRef) {
  return can(permission) || can("action_execute", uidOf("action", actionRef));
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Call the API; resolves to the parsed JSON (with .total for paged lists). */
export async function api(path, { method = "GET", body, params, headers = {}, text = false } = {}) {
  let url = path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") q.set(k, v);
    }
    const qs = q.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  const init = { method, headers: { ...session.headers(), ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 401 && !path.startsWith("/auth/")) {
    session.clear();
    stream.stop();
    renderShell();
    throw new ApiError(401, "your session has expired: sign in again");
  }
  if (response.status === 204) return null;
  const raw = await response.text();
  let data = raw;
  if (!text) {
    try { data = raw ? JSON.parse(raw) : null; } catch { data = raw; }
  }
  if (!response.ok) {
    const message = (data && data.faultstring) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data);
  }
  if (Array.isArray(data) && response.headers.get("X-Total-Count") !== null) {
    data.total = Number(response.headers.get("X-Total-Count"));
  }
  return data;
}

// -- the DOM --------------------------------------------------------------------------

/** h("a", {href: "#/x", onclick: fn, class: "c"}, "text", child...) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  let pendingValue; // set after the children: a <select> needs its options first
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" && "value" in el) pendingValue = value;
    else if (key === "checked" || key === "selected" || key === "disabled") el[key] = !!value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  if (pendingValue !== undefined) el.value = pendingValue;
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (for graphs and charts). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function statusBadge(status) {
  return h("span", { class: `badge ${status || ""}`, "data-status": status || "" }, status || "—");
}

export function toast(message, kind = "info") {
  let stack = document.getElementById("toasts");
  if (!stack) {
    stack = h("div", { id: "toasts", class: "toasts" });
    document.body.append(stack);
  }
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  stack.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/** Run an async action from a button: disabled while it runs, errors shown. */
export async function busy(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (err) {
    toast(err.message || String(err), "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// -- formatting -----------------------------------------------------------------------

export function fmtTime(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { hour12: false });
}

export function duration(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return `${m}m ${s}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function between(start, end) {
  if (!start) return undefined;
  return ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000;
}

export function ago(value) {
  if (!value) return "—";
  const s = (Date.now() - Date.parse(value)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return fmtTime(value);
}

/** JSON as an indented, selectable block. */
export function jsonView(value) {
  return h("pre", { class: "json" }, value === undefined ? "" : JSON.stringify(value, null, 2));
}

// -- lists ------------------------------------------------------------------------------

/**
 * A table: columns are [{title, value: row => node|text}], rows are objects.
 * With href(row), each row links there (the first cell is a real link, so
 * the row is reachable with the keyboard).
 */
export function table({ columns, rows, href, empty = "Nothing here." }) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", { class: "list" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title)))),
    h("tbody", {}, rows.map((row) => {
      const link = href ? href(row) : null;
      const cells = columns.map((c, i) => {
        const content = c.value(row);
        if (link && i === 0) return h("td", {}, h("a", { href: link }, content));
        return h("td", {}, content);
      });
      return h("tr", {
        class: link ? "clickable" : "",
        onclick: link ? (e) => { if (e.target.closest("a,button,input,select,textarea,label,summary,details")) return; location.hash = link; } : null,
      }, cells);
    })));
}

/** Previous/next for a server-side paged list. */
export function pager({ total, limit, offset, onPage }) {
  const last = Math.min(offset + limit, total ?? offset + limit);
  return h("div", { class: "pager", role: "navigation", "aria-label": "pages" },
    h("button", { disabled: offset <= 0, onclick: () => onPage(Math.max(0, offset - limit)) }, "‹ Newer"),
    h("span", {}, total === undefined ? `${offset + 1}–${last}` : total === 0 ? "none" : `${offset + 1}–${last} of ${total}`),
    h("button", { disabled: total !== undefined && offset + limit >= total, onclick: () => onPage(offset + limit) }, "Older ›"));
}

// -- forms from a parameter schema ----------------------------------------------------

/**
 * A form for StackStorm-style parameters ({name: {type, description, default,
 * enum, required, secret, immutable}}). Returns {element, values(), showErrors(map)}:
 * values() gives only the fields the user set or that have a value, typed;
 * a field that cannot be read (bad JSON, not a number) is an error by name.
 */
export function schemaForm(parameters, initial = {}) {
  const fields = {};
  const element = h("div", { class: "schema-form" });
  const names = Object.keys(parameters || {}).sort((a, b) => {
    const ra = parameters[a].required ? 0 : 1, rb = parameters[b].required ? 0 : 1;
    return ra - rb || (parameters[a].position ?? 99) - (parameters[b].position ?? 99) || a.localeCompare(b);
  });
  for (const name of names) {
    const p = parameters[name] || {};
    if (p.immutable) continue;
    const id = `f-${name}`;
    const start = initial[name] !== undefined ? initial[name] : (p.default ?? undefined); // a null default is no value
    let input;
    const type = Array.isArray(p.type) ? p.type[0] : p.type;
    if (Array.isArray(p.enum)) {
      input = h("select", { id, name },
        p.required ? null : h("option", { value: "" }, "—"),
        p.enum.map((v) => h("option", { value: String(v), selected: start !== undefined && String(start) === String(v) }, String(v))));
    } else if (type === "boolean") {
      input = h("input", { id, name, type: "checkbox", checked: start === true });
    } else if (type === "object" || type === "array") {
      input = h("textarea", { id, name, rows: 4, spellcheck: "false" }, start === undefined ? "" : JSON.stringify(start, null, 2));
    } else {
      input = h("input", {
        id, name,
        type: p.secret ? "password" : type === "integer" || type === "number" ? "number" : "text",
        step: type === "number" ? "any" : null,
        autocomplete: p.secret ? "new-password" : "off",
        value: start === undefined || (p.secret && initial[name] === undefined) ? "" : String(start),
      });
    }
    const error = h("div", { class: "error", id: `${id}-error`, "aria-live": "polite" });
    input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    const field = h("div", { class: "field", "data-field": name },
      h("label", { for: id }, name, p.required ? " *" : "", " ", h("span", { class: "help" }, type || "")),
      input,
      h("div", { class: "help", id: `${id}-help` }, p.description || ""),
      error);
    fields[name] = { p, type, input, error, field };
    element.append(field);
  }
  function values() {
    const out = {}, errors = {};
    for (const [name, f] of Object.entries(fields)) {
      const raw = f.type === "boolean" ? f.input.checked : f.input.value;
      if (f.type === "boolean") {
        if (raw !== (f.p.default === true)) out[name] = raw;
        continue;
      }
      if (raw === "") {
        if (f.p.required && f.p.default === undefined) errors[name] = "required";
        continue;
      }
      try {
        if (f.type === "integer") {
          if (!/^-?\d+$/.test(raw.trim())) throw new Error("must be a whole number");
          out[name] = Number(raw);
        } else if (f.type === "number") {
          if (Number.isNaN(Number(raw))) throw new Error("must be a number");
          out[name] = Number(raw);
        } else if (f.type === "object" || f.type === "array") {
          let parsed;
          try { parsed = JSON.parse(raw); } catch { throw new Error(`is not valid JSON (an ${f.type})`); }
          out[name] = parsed;
        } else {
          out[name] = raw;
        }
      } catch (err) {
        errors[name] = err.message;
      }
    }
    return { values: out, errors };
  }
  function showErrors(errors) {
    for (const [name, f] of Object.entries(fields)) {
      const message = errors[name];
      f.error.textContent = message ? `${name} ${message}` : "";
      f.field.classList.toggle("invalid", !!message);
      f.input.setAttribute("aria-invalid", message ? "true" : "false");
    }
    const first = Object.keys(errors).find((n) => fields[n]);
    if (first) fields[first].input.focus();
  }
  return { element, values, showErrors, fields };
}

/** Map an API error about parameters to the fields it names. */
export function parameterErrors(message, names) {
  const errors = {};
  for (const name of names) {
    const re = new RegExp(`(^|[^\\w.])(parameter )?['"]?${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}['"]?([^\\w]|$)`);
    if (re.test(message)) errors[name] = message.replace(/^.*?:\s*/, "") || message;
  }
  return errors;
}

// -- the live event stream ------------------------------------------------------------

export const stream = {
  source: null,
  handlers: new Map(),
  start() {
    if (this.source || !session.get()) return;
    this.source = new EventSource(`/stream/v1/stream?${session.query()}`);
    for (const type of this.handlers.keys()) this._listen(type);
    this.source.onerror = () => { document.body.dataset.stream = "reconnecting"; };
    this.source.onopen = () => { document.body.dataset.stream = "live"; };
  },
  stop() {
    if (this.source) this.source.close();
    this.source = null;
  },
  _listen(type) {
    if (!this.source || this.source[`_has_${type}`]) return;
    this.source[`_has_${type}`] = true;
    this.source.addEventListener(type, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      for (const fn of this.handlers.get(type) || []) {
        try { fn(data); } catch (err) { console.error(err); }
      }
    });
  },
  /** Call fn(data) for each event of the type; returns the unsubscribe function. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    this._listen(type);
    return () => this.handlers.get(type)?.delete(fn);
  },
};

/** Call fn at most once per `ms`, the last call winning (for live refreshes). */
export function throttle(fn, ms = 500) {
  let timer = null, again = false;
  return function run() {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; run(); } }, ms);
  };
}

// -- the router ---------------------------------------------------------------------------

const routes = [];
export const nav = [];

/**
 * route("/executions/:id", render, {title}) — render(params, ctx) fills ctx.el;
 * ctx.query has the hash's query string; ctx.cleanup(fn) runs when the page is left.
 */
export function route(pattern, render, options = {}) {
  const keys = [];
  const re = new RegExp("^" + pattern.replace(/:(\w+)/g, (_, k) => { keys.push(k); return "([^/]+)"; }) + "/?$");
  routes.push({ re, keys, render, ...options });
}

/** A navigation entry: addNav("Executions", "#/executions", 10). */
export function addNav(title, href, order = 50) {
  nav.push({ title, href, order });
  nav.sort((a, b) => a.order - b.order);
}

let cleanups = [];

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/executions";
  const [path, qs] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(qs || "")) };
}

/** Change the hash's query (filters, page) without a new history entry per keystroke. */
export function setQuery(query) {
  const { path } = parseHash();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const qs = q.toString();
  history.replaceState(null, "", `#${path}${qs ? `?${qs}` : ""}`);
}

async function navigate() {
  for (const fn of cleanups) { try { fn(); } catch (err) { console.error(err); } }
  cleanups = [];
  if (!session.get()) { renderShell(); return; }
  if (!document.querySelector("main")) renderShell();
  await loadPermissions();
  const main = document.querySelector("main");
  const { path, query } = parseHash();
  for (const a of document.querySelectorAll(".side nav a")) {
    const target = a.getAttribute("href").slice(1);
    a.toggleAttribute("aria-current", path === target || path.startsWith(`${target}/`));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = Object.fromEntries(r.keys.map((k, i) => [k, decodeURIComponent(m[i + 1])]));
    const el = h("div", { class: "page" });
    clear(main, el);
    document.title = `${r.title ? `${r.title} · ` : ""}Squall`;
    const ctx = { el, query, cleanup: (fn) => cleanups.push(fn), path };
    try {
      await r.render(params, ctx);
    } catch (err) {
      clear(el, h("h1", {}, "Something went wrong"), h("p", { class: "error-text", role: "alert" }, err.message || String(err)));
    }
    if (el.isConnected) main.focus({ preventScroll: true }); // not if a newer page replaced it meanwhile
    return;
  }
  clear(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/executions" }, "Executions")));
}

// -- the shell: sign-in, or the navigation and the page ------------------------------------

function applyTheme() {
  const theme = localStorage.getItem("squall.theme");
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function signInPage(root) {
  const error = h("p", { class: "error-text", role: "alert" });
  const user = h("input", { id: "user", name: "user", autocomplete: "username" });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" });
  const apiKey = h("input", { id: "apikey", name: "apikey", type: "password", autocomplete: "off" });
  const form = h("form", {
    class: "panel signin",
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        if (apiKey.value) {
          session.set({ kind: "apikey", secret: apiKey.value, user: null });
          const me = await api("/api/v1/user");
          session.set({ kind: "apikey", secret: apiKey.value, user: me.username || me.user || me.name });
        } else {
          const response = await fetch("/auth/v1/tokens", {
            method: "POST",
            headers: { Authorization: `Basic ${btoa(unescape(encodeURIComponent(`${user.value}:${password.value}`)))}`, "Content-Type": "application/json" },
            body: "{}",
          });
          const data = await response.json().catch(() => ({}));
          if (!response.ok) throw new Error(data.faultstring || "sign-in failed");
          session.set({ kind: "token", secret: data.token, user: data.user, expiry: data.expiry });
        }
        renderShell();
      } catch (err) {
        session.clear();
        error.textContent = err.message === "your session has expired: sign in again" ? "invalid API key" : err.message;
      } finally {
        button.disabled = false;
      }
    },
  },
  h("h1", {}, "Sign in to Squall"),
  h("div", { class: "field" }, h("label", { for: "user" }, "User"), user),
  h("div", { class: "field" }, h("label", { for: "password" }, "Password"), password),
  h("p", { class: "muted" }, "or"),
  h("div", { class: "field" }, h("label", { for: "apikey" }, "API key"), apiKey),
  error,
  h("button", { type: "submit", class: "primary" }, "Sign in"));
  clear(root, h("main", { id: "main" }, form));
  user.focus();
}

async function signOut() {
  const s = session.get();
  if (s && s.kind === "token") {
    try { await fetch("/auth/v1/tokens", { method: "DELETE", headers: session.headers() }); } catch { /* gone anyway */ }
  }
  session.clear();
  stream.stop();
  location.hash = "#/executions";
  renderShell();
}

export function renderShell() {
  const root = document.getElementById("app");
  const s = session.get();
  if (!s) { signInPage(root); return; }
  const theme = h("select", {
    "aria-label": "colour theme",
    onchange: (e) => { if (e.target.value) localStorage.setItem("squall.theme", e.target.value); else localStorage.removeItem("squall.theme"); applyTheme(); },
  }, [["", "System theme"], ["light", "Light"], ["dark", "Dark"]].map(([v, t]) => h("option", { value: v, selected: (localStorage.getItem("squall.theme") || "") === v }, t)));
  clear(root, h("div", { class: "shell" },
    h("aside", { class: "side" },
      h("div", { class: "brand" }, h("img", { src: "/ui/favicon.svg", alt: "", width: 22, height: 22 }), "Squall"),
      h("nav", { "aria-label": "sections" }, nav.map((n) => h("a", { href: n.href }, n.title))),
      h("div", { class: "who" },
        h("div", {}, "Signed in as ", h("strong", { id: "whoami" }, s.user || "API key")),
        h("div", { class: "row" }, h("button", { onclick: signOut, id: "signout" }, "Sign out"), theme))),
    h("main", { id: "main", tabindex: "-1" })));
  stream.start();
  navigate();
}

// Each expiring token ends the session when it expires, even on an idle page.
setInterval(() => {
  const root = document.getElementById("app");
  if (!session.get() && root && root.querySelector(".shell")) renderShell();
}, 15000);

applyTheme();
window.addEventListener("hashchange", navigate);
// Pages register their routes when imported; then the first render.
import("./pages/index.js").then(() => renderShell());
