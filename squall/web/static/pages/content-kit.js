// Small pieces the rules, triggers, sensors, packs, datastore and inventory
// pages share. Everything from the API goes in as text, through h().

import { h, clear, table } from "../app.js";

/** Call fn(...args) once the calls stop for `ms` (for typing in a box). */
export function debounce(fn, ms = 300) {
  let timer = null;
  const run = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  run.cancel = () => clearTimeout(timer);
  return run;
}

export const enc = encodeURIComponent;

/** One line of JSON, cut to `max` characters. */
export function preview(value, max = 100) {
  let text;
  try { text = JSON.stringify(value); } catch { text = String(value); }
  if (text === undefined) text = "";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A value as text for a table cell: scalars as they are, the rest as JSON. */
export function scalar(value) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "object") return preview(value, 80);
  return String(value);
}

/** A labelled control for a filter bar. */
export function field(label, control, help) {
  if (!control.id) control.id = `f-${label.toLowerCase().replace(/\W+/g, "-")}`;
  return h("div", { class: "field" },
    h("label", { for: control.id }, label),
    control,
    help ? h("div", { class: "help" }, help) : null);
}

/** A select whose option `current` is chosen: [[value, text], ...]. */
export function select(attrs, options, current = "") {
  return h("select", attrs, options.map(([value, text]) =>
    h("option", { value, selected: String(current ?? "") === String(value) }, text)));
}

/** Links between sibling pages (Trigger types | Trigger instances). */
export function subnav(links, current) {
  return h("nav", { class: "subnav", "aria-label": "views" },
    links.map(([href, text]) => h("a", { href, "aria-current": href === current ? "page" : null }, text)));
}

/** What a payload's preview shows first: a webhook's body, not its headers. */
function essence(value) {
  if (value && typeof value === "object" && !Array.isArray(value) && "body" in value && "headers" in value) {
    const { headers: _h, headers_lower: _l, ...rest } = value;
    return rest;
  }
  return value;
}

/** A JSON value folded behind a one-line preview. */
export function folded(value, max = 90) {
  return h("details", { class: "peek" },
    h("summary", { class: "mono" }, preview(essence(value), max)),
    h("pre", { class: "json" }, JSON.stringify(value, null, 2)));
}

/** A danger button that asks again, in place, before doing anything. */
export function confirmButton(label, question, onConfirm, attrs = {}) {
  const box = h("span", { class: "ask-again" });
  const ask = () => {
    const yes = h("button", {
      class: "danger",
      onclick: async () => {
        yes.disabled = true;
        try { await onConfirm(); } finally { yes.disabled = false; }
      },
    }, `Yes, ${label.toLowerCase()}`);
    clear(box, h("span", { class: "question", role: "alert" }, question), " ", yes, " ",
      h("button", { onclick: () => { reset(); start.focus(); } }, "Cancel"));
    yes.focus();
  };
  const start = h("button", { class: "danger", onclick: ask, ...attrs }, label);
  const reset = () => clear(box, start);
  reset();
  return box;
}

/** What a rule's trigger listens to, in a few words. */
export function triggerText(trigger) {
  if (!trigger) return "—";
  const params = trigger.parameters || {};
  if (trigger.type === "core.st2.webhook" && params.url !== undefined) {
    return `${trigger.type} (POST /api/v1/webhooks/${String(params.url).replace(/^\/+/, "")})`;
  }
  const keys = Object.keys(params);
  return keys.length ? `${trigger.type} ${preview(params, 60)}` : trigger.type;
}

export function shortId(id) {
  return id ? String(id).slice(-8) : "—";
}

/** A definition list from [[term, value], ...], skipping empty values. */
export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** What an enforcement led to: the execution, the failure, or what hygiene did. */
export function outcome(e) {
  const parts = [];
  if (e.execution_id) {
    parts.push(h("a", { href: `#/executions/${enc(e.execution_id)}`, class: "mono" }, `execution ${e.execution_id}`));
  }
  if (e.failure_reason) parts.push(h("span", { class: "error-text" }, e.failure_reason));
  const d = e.details || {};
  if (e.status === "throttled") parts.push(h("span", { class: "muted" }, `dropped by the throttle (${d.count ?? "?"} events in the window)`));
  if (e.status === "deferred") parts.push(h("span", { class: "muted" }, `held in the window (${d.count ?? "?"} so far)`));
  if (Array.isArray(d.instances) && d.instances.length > 1) parts.push(h("span", { class: "muted" }, `for ${d.instances.length} events`));
  if (d.group) parts.push(h("span", { class: "muted mono" }, `group ${d.group}`));
  return parts.length ? h("div", { class: "outcome" }, parts) : "—";
}

export function instanceLink(id) {
  return h("a", { href: `#/triggerinstances/${enc(id)}`, class: "mono", title: id }, shortId(id));
}

/** The explain answer: the summary, then each criterion's verdict. */
export function explanation(data) {
  const fired = data.enforcements?.some((e) => e.execution_id);
  return h("div", { class: "explain" },
    h("p", { class: fired ? "" : "why" }, h("strong", {}, "Why: "), data.summary),
    data.verdicts?.length ? table({
      rows: data.verdicts,
      columns: [
        { title: "Criterion", value: (v) => h("span", { class: "mono" }, v.key) },
        { title: "Operator", value: (v) => v.operator },
        { title: "Pattern", value: (v) => h("span", { class: "mono" }, JSON.stringify(v.pattern)) },
        { title: "Value", value: (v) => h("span", { class: "mono" }, v.value === undefined ? "—" : JSON.stringify(v.value)) },
        { title: "Verdict", value: (v) => h("span", { class: `verdict ${v.passed ? "pass" : "fail"}` }, v.passed ? "pass" : "fail") },
        { title: "Reason", value: (v) => v.reason },
      ],
    }) : null);
}
