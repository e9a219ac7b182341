// Rules: browse and search them, enable or disable them, and see on a rule's
// page what it does and what it did — its enforcements and the recent events
// of its trigger, each with why it fired or did not.

import {
  api, h, clear, route, addNav, setQuery, stream, throttle, table, pager,
  statusBadge, jsonView, fmtTime, ago, busy, toast, can, uidOf,
} from "../app.js";
import {
  enc, field, select, folded, triggerText, kv, debounce, outcome, instanceLink, explanation,
} from "./content-kit.js";
import "./triggers.js";
import "./sensors.js";

addNav("Rules", "#/rules", 50);
route("/rules", rulesPage, { title: "Rules" });
route("/rules/:ref", rulePage, { title: "Rule" });

/** PUT the rule back with `enabled` changed (the API takes the whole rule). */
export async function setRuleEnabled(ref, enabled) {
  const rule = await api(`/api/v1/rules/${enc(ref)}`);
  return api(`/api/v1/rules/${enc(ref)}`, { method: "PUT", body: { ...rule, enabled } });
}

function enabledBadge(enabled) {
  return statusBadge(enabled ? "enabled" : "disabled");
}

function toggleButton(rule, onChanged) {
  if (!can("rule_modify", uidOf("rule", rule.ref))) return null; // not for this user's roles
  const button = h("button", {
    class: rule.enabled ? "" : "primary",
    "aria-label": `${rule.enabled ? "Disable" : "Enable"} ${rule.ref}`,
    onclick: () => busy(button, async () => {
      const updated = await setRuleEnabled(rule.ref, !rule.enabled);
      toast(`${updated.ref} is ${updated.enabled ? "enabled" : "disabled"}`);
      onChanged(updated);
    }),
  }, rule.enabled ? "Disable" : "Enable");
  return button;
}

function matches(rule, words) {
  const hay = [
    rule.ref, rule.pack, rule.description, rule.trigger?.type, rule.trigger?.ref,
    rule.action?.ref, rule.trigger?.parameters?.url,
  ].filter(Boolean).join(" ").toLowerCase();
  return words.every((w) => hay.includes(w));
}

async function rulesPage(_params, ctx) {
  const { el, query } = ctx;
  const search = h("input", {
    id: "rule-search", class: "wide-search", type: "search", value: query.q || "", autocomplete: "off",
    placeholder: "ref, pack, trigger or action",
  });
  const packs = h("select", { id: "rule-pack" }, h("option", { value: "" }, "All packs"));
  const state = select({ id: "rule-state" },
    [["", "Enabled and disabled"], ["true", "Enabled"], ["false", "Disabled"]], query.enabled || "");
  const count = h("p", { class: "muted", "aria-live": "polite" });
  const list = h("div", { class: "loading" }, "Loading…");
  el.append(
    h("h1", {}, "Rules"),
    h("div", { class: "filters", role: "search" },
      field("Search", search), field("Pack", packs), field("State", state)),
    count, list);

  let rules = await api("/api/v1/rules");
  const packNames = [...new Set(rules.map((r) => r.pack))].sort();
  for (const p of packNames) packs.append(h("option", { value: p, selected: p === query.pack }, p));

  function show() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = rules.filter((r) =>
      (!packs.value || r.pack === packs.value)
      && (!state.value || String(!!r.enabled) === state.value)
      && matches(r, words));
    setQuery({ q: search.value.trim(), pack: packs.value, enabled: state.value });
    count.textContent = shown.length === rules.length
      ? `${rules.length} rule${rules.length === 1 ? "" : "s"}`
      : `${shown.length} of ${rules.length} rules`;
    list.classList.remove("loading");
    clear(list, table({
      rows: shown,
      href: (r) => `#/rules/${enc(r.ref)}`,
      empty: rules.length ? "No rule matches." : "No rules yet: packs bring them, or POST /api/v1/rules.",
      columns: [
        { title: "Rule", value: (r) => r.ref },
        { title: "Trigger", value: (r) => h("span", { class: "mono" }, triggerText(r.trigger)) },
        { title: "Action", value: (r) => h("span", { class: "mono" }, r.action?.ref || "—") },
        { title: "Description", value: (r) => h("span", { class: "muted" }, r.description || "") },
        {
          title: "State",
          value: (r) => h("span", { class: "row nowrap" }, enabledBadge(r.enabled), toggleButton(r, (updated) => {
            rules = rules.map((x) => (x.ref === updated.ref ? updated : x));
            show();
          })),
        },
      ],
    }));
  }
  search.addEventListener("input", debounce(show, 150));
  packs.addEventListener("change", show);
  state.addEventListener("change", show);
  show();
}

// -- one rule ----------------------------------------------------------------------------

function describeHygiene(rule) {
  const out = [];
  const t = rule.throttle, a = rule.accumulate;
  const by = (spec) => (spec.group_by?.length ? `, per ${spec.group_by.join(", ")}` : "");
  if (t) {
    if (t.once_within) out.push(`Throttle: runs for the first event, then drops the others for ${t.once_within}${by(t)}.`);
    else if (t.once_after) out.push(`Throttle: runs once, ${t.once_after} after the first event, with the last one${by(t)}.`);
    out.push(jsonView(t));
  }
  if (a) {
    const parts = [];
    if (a.count) parts.push(`${a.count} events arrived`);
    if (a.within) parts.push(`${a.within} passed`);
    out.push(`Accumulate: runs once with all the events when ${parts.join(" or ") || "the window closes"}${by(a)}.`);
    out.push(jsonView(a));
  }
  return out;
}

function criteriaTable(criteria) {
  const keys = Object.keys(criteria || {});
  if (!keys.length) return h("p", { class: "muted" }, "No criteria: every event of the trigger matches.");
  return table({
    rows: keys.map((key) => ({ key, spec: criteria[key] || {} })),
    columns: [
      { title: "Key", value: (c) => h("span", { class: "mono" }, c.key) },
      { title: "Operator", value: (c) => c.spec.type || "—" },
      {
        title: "Pattern",
        value: (c) => h("span", { class: "mono" },
          typeof c.spec.pattern === "string" ? c.spec.pattern : JSON.stringify(c.spec.pattern)),
      },
    ],
  });
}

async function rulePage({ ref }, ctx) {
  const { el } = ctx;
  let rule = await api(`/api/v1/rules/${enc(ref)}`);
  document.title = `${rule.ref} · Rules · Squall`;
  const head = h("div", { class: "row between" });
  const definition = h("div");

  function renderHead() {
    clear(head,
      h("div", {},
        h("p", { class: "crumbs" }, h("a", { href: "#/rules" }, "Rules"), " / ",
          h("a", { href: `#/packs/${enc(rule.pack)}` }, rule.pack)),
        h("h1", { class: "row" }, rule.ref, " ", enabledBadge(rule.enabled))),
      toggleButton(rule, (updated) => { rule = updated; renderHead(); }));
  }
  renderHead();

  const trigger = rule.trigger || {};
  const action = rule.action || {};
  clear(definition,
    rule.description ? h("p", {}, rule.description) : null,
    h("div", { class: "grid2" },
      h("section", { class: "panel defn", "aria-labelledby": "rule-when" },
        h("h2", { id: "rule-when" }, "When"),
        kv([
          ["Trigger type", h("span", { class: "mono" }, trigger.type)],
          ["Trigger", h("a", { href: `#/triggerinstances?trigger=${enc(trigger.ref)}`, class: "mono" }, trigger.ref)],
          ["Listens at", trigger.type === "core.st2.webhook" && trigger.parameters?.url !== undefined
            ? h("span", { class: "mono" }, `POST /api/v1/webhooks/${String(trigger.parameters.url).replace(/^\/+/, "")}`) : null],
        ]),
        Object.keys(trigger.parameters || {}).length ? [h("h3", {}, "Trigger parameters"), jsonView(trigger.parameters)] : null,
        h("h3", {}, "Criteria"),
        criteriaTable(rule.criteria)),
      h("section", { class: "panel defn", "aria-labelledby": "rule-then" },
        h("h2", { id: "rule-then" }, "Then"),
        kv([
          ["Action", h("a", { href: `#/actions/${enc(action.ref)}`, class: "mono" }, action.ref)],
          ["Runs as", rule.context?.user],
        ]),
        h("h3", {}, "Action parameters"),
        Object.keys(action.parameters || {}).length ? jsonView(action.parameters) : h("p", { class: "muted" }, "None."),
        rule.throttle || rule.accumulate ? [h("h3", {}, "Event hygiene"), describeHygiene(rule)] : null)));

  const enfBox = h("div", { class: "loading" }, "Loading…");
  const eventsBox = h("div", { class: "loading" }, "Loading…");
  el.append(head, definition,
    h("section", { "aria-labelledby": "rule-enforcements" },
      h("h2", { id: "rule-enforcements" }, "Enforcements"),
      h("p", { class: "muted" }, "Each time the rule matched an event: the execution it started, or why it could not."),
      enfBox),
    h("section", { "aria-labelledby": "rule-events" },
      h("h2", { id: "rule-events" }, "Recent events of its trigger"),
      h("p", { class: "muted" }, "Events that did not fire the rule left no enforcement: ask why."),
      eventsBox));

  const ENF_LIMIT = 20;
  let enfOffset = 0;
  async function loadEnforcements() {
    const rows = await api("/api/v1/ruleenforcements", { params: { rule_ref: rule.ref, limit: ENF_LIMIT, offset: enfOffset } });
    enfBox.classList.remove("loading");
    clear(enfBox,
      table({
        rows,
        empty: "No enforcements yet: the rule has not matched an event.",
        columns: [
          { title: "When", value: (e) => h("span", { class: "nowrap", title: fmtTime(e.enforced_at) }, ago(e.enforced_at)) },
          { title: "Status", value: (e) => statusBadge(e.status) },
          { title: "Trigger instance", value: (e) => (e.trigger_instance_id ? instanceLink(e.trigger_instance_id) : "—") },
          { title: "Outcome", value: (e) => outcome(e) },
        ],
      }),
      rows.total > ENF_LIMIT ? pager({ total: rows.total, limit: ENF_LIMIT, offset: enfOffset, onPage: (o) => { enfOffset = o; loadEnforcements(); } }) : null);
  }

  // Explanations asked for stay open when the list is redrawn for a new event.
  const explained = new Map();
  function showWhy(button, data) {
    // The verdicts get a row of their own, under the event, as wide as the table.
    const row = button.closest("tr");
    row.after(h("tr", { class: "explain-row" }, h("td", { colspan: row.cells.length }, explanation(data))));
    button.setAttribute("aria-expanded", "true");
  }

  async function loadEvents() {
    const [instances, enforcements] = await Promise.all([
      api("/api/v1/triggerinstances", { params: { trigger: trigger.ref, limit: 15 } }),
      api("/api/v1/ruleenforcements", { params: { rule_ref: rule.ref, limit: 200 } }),
    ]);
    const byInstance = new Map();
    for (const e of enforcements) {
      const ids = new Set([e.trigger_instance_id, ...((e.details && e.details.instances) || [])]);
      for (const id of ids) if (id) byInstance.set(id, [...(byInstance.get(id) || []), e]);
    }
    eventsBox.classList.remove("loading");
    clear(eventsBox, table({
      rows: instances,
      empty: "No events of this trigger yet.",
      columns: [
        { title: "When", value: (i) => h("span", { class: "nowrap", title: fmtTime(i.occurrence_time) }, ago(i.occurrence_time)) },
        { title: "Event", value: (i) => instanceLink(i.id) },
        { title: "Status", value: (i) => statusBadge(i.status) },
        { title: "Payload", value: (i) => folded(i.payload, 70) },
        {
          title: "Outcome",
          value: (i) => {
            const found = byInstance.get(i.id);
            if (found) return h("div", {}, found.map((e) => h("div", { class: "row" }, statusBadge(e.status), outcome(e))));
            const ask = h("button", {
              "aria-label": `Why did event ${i.id} not fire the rule?`,
              "aria-expanded": "false",
              dataset: { instance: i.id },
              onclick: () => busy(ask, async () => {
                const row = ask.closest("tr");
                if (explained.has(i.id)) {
                  explained.delete(i.id);
                  if (row.nextElementSibling?.classList.contains("explain-row")) row.nextElementSibling.remove();
                  ask.setAttribute("aria-expanded", "false");
                  return;
                }
                const data = await api(`/api/v1/rules/${enc(rule.ref)}/explain`, { params: { trigger_instance: i.id } });
                explained.set(i.id, data);
                showWhy(ask, data);
              }),
            }, "Why not?");
            return h("div", { class: "why-box" },
              h("span", { class: "muted" }, i.status === "pending" ? "not processed yet" : "did not fire"), ask);
          },
        },
      ],
    }));
    for (const button of eventsBox.querySelectorAll("button[data-instance]")) {
      const data = explained.get(button.dataset.instance);
      if (data) showWhy(button, data);
    }
  }

  const reloadEnf = throttle(() => { if (enfOffset === 0) loadEnforcements().catch(() => {}); }, 700);
  const reloadEvents = throttle(() => loadEvents().catch(() => {}), 700);
  ctx.cleanup(stream.on("st2.rule_enforcement__create", (e) => {
    if (e.rule?.ref === rule.ref) { reloadEnf(); reloadEvents(); }
  }));
  const timers = [];
  ctx.cleanup(() => timers.forEach(clearTimeout));
  ctx.cleanup(stream.on("st2.trigger_instance__create", (i) => {
    if (i.trigger !== trigger.ref) return;
    reloadEvents();
    // Its status changes once the rules engine has looked at it (no event says so).
    timers.push(setTimeout(reloadEvents, 1500));
  }));
  await Promise.all([loadEnforcements(), loadEvents()]);
}
