// Trigger types (with their schemas), the triggers rules use, and trigger
// instances — every event Squall received — live, with their payloads.

import {
  api, h, clear, route, addNav, setQuery, stream, throttle, table, pager,
  statusBadge, jsonView, fmtTime, ago, busy, toast,
} from "../app.js";
import {
  enc, field, select, folded, preview, subnav, kv, debounce, outcome, explanation,
} from "./content-kit.js";

addNav("Triggers", "#/triggers", 55);
route("/triggers", typesPage, { title: "Triggers" });
route("/triggerinstances", instancesPage, { title: "Trigger instances" });
route("/triggerinstances/:id", instancePage, { title: "Trigger instance" });

const VIEWS = [["#/triggers", "Trigger types"], ["#/triggerinstances", "Trigger instances"]];
const STATUSES = ["pending", "processed", "processing_failed", "rejected"];

async function typesPage(_params, ctx) {
  const { el, query } = ctx;
  const search = h("input", { id: "type-search", class: "wide-search", type: "search", value: query.q || "", autocomplete: "off", placeholder: "ref or description" });
  const list = h("div", { class: "loading" }, "Loading…");
  const used = h("div");
  el.append(h("h1", {}, "Triggers"), subnav(VIEWS, "#/triggers"),
    h("div", { class: "filters", role: "search" }, field("Search", search)),
    list,
    h("h2", {}, "Triggers in use"),
    h("p", { class: "muted" }, "A trigger is a trigger type with parameters (a webhook's URL, a timer's schedule), as rules name it."),
    used);
  const [types, triggers] = await Promise.all([api("/api/v1/triggertypes"), api("/api/v1/triggers")]);

  let shown = null;
  function show() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    // The same search again (a late keystroke event): keep what is open.
    if (shown === words.join(" ")) return;
    shown = words.join(" ");
    const hit = (...texts) => words.every((w) => texts.join(" ").toLowerCase().includes(w));
    setQuery({ q: search.value.trim() });
    list.classList.remove("loading");
    clear(list, table({
      rows: types.filter((t) => hit(t.ref, t.description || "")),
      empty: "No trigger type matches.",
      columns: [
        { title: "Trigger type", value: (t) => h("span", { class: "mono" }, t.ref) },
        { title: "Description", value: (t) => t.description || "" },
        {
          title: "Parameters",
          value: (t) => (Object.keys(t.parameters_schema?.properties || {}).length
            ? folded(t.parameters_schema, 50) : h("span", { class: "muted" }, "none")),
        },
        {
          title: "Payload schema",
          value: (t) => (t.payload_schema && Object.keys(t.payload_schema).length
            ? folded(t.payload_schema, 50) : h("span", { class: "muted" }, "any")),
        },
        { title: "Events", value: (t) => h("a", { href: `#/triggerinstances?trigger=${enc(t.ref)}` }, "events") },
      ],
    }));
    clear(used, table({
      rows: triggers.filter((t) => hit(t.ref, t.type, preview(t.parameters), t.description || "")),
      empty: "No trigger in use.",
      columns: [
        { title: "Trigger", value: (t) => h("span", { class: "mono" }, t.ref) },
        { title: "Type", value: (t) => h("span", { class: "mono" }, t.type) },
        { title: "Parameters", value: (t) => t.description || h("span", { class: "mono" }, preview(t.parameters, 80)) },
        { title: "Events", value: (t) => h("a", { href: `#/triggerinstances?trigger=${enc(t.ref)}` }, "events") },
      ],
    }));
  }
  search.addEventListener("input", debounce(show, 150));
  show();
}

/** trigger ref -> "type (parameters)", for the triggers rules use. */
async function triggerNames() {
  const names = new Map();
  try {
    for (const t of await api("/api/v1/triggers")) {
      if (t.ref !== t.type) {
        const url = t.parameters?.url;
        names.set(t.ref, url !== undefined ? `${t.type} ${url}` : t.description ? `${t.type}: ${t.description}` : t.type);
      }
    }
  } catch { /* only labels */ }
  return names;
}

function triggerCell(ref, names) {
  const label = names.get(ref);
  const href = `#/triggerinstances?trigger=${enc(ref)}`;
  if (!label) return h("a", { href, class: "mono" }, ref);
  return h("div", {}, h("a", { href, class: "mono" }, label), h("div", { class: "muted mono small" }, ref));
}

async function reEmit(button, id) {
  return busy(button, async () => {
    const data = await api(`/api/v1/triggerinstances/${enc(id)}/re_emit`, { method: "POST" });
    const created = data.trigger_instance?.id;
    toast(`Event re-emitted as ${created}`);
    return created;
  });
}

async function instancesPage(_params, ctx) {
  const { el, query } = ctx;
  const LIMIT = 25;
  let offset = Number(query.offset) || 0;
  const trigger = h("input", { id: "ti-trigger", class: "wide-search", list: "ti-triggers", value: query.trigger || "", autocomplete: "off", placeholder: "trigger or trigger type" });
  const options = h("datalist", { id: "ti-triggers" });
  const status = select({ id: "ti-status" }, [["", "Any status"], ...STATUSES.map((s) => [s, s])], query.status || "");
  const live = h("span", { class: "muted stream-note", "aria-live": "polite" });
  const list = h("div", { class: "loading" }, "Loading…");
  el.append(h("div", { class: "row between" }, h("h1", {}, "Trigger instances"), live),
    subnav(VIEWS, "#/triggerinstances"),
    h("div", { class: "filters", role: "search" }, field("Trigger", trigger), options, field("Status", status)),
    list);
  const names = await triggerNames();
  api("/api/v1/triggertypes", { params: { include_attributes: "ref" } })
    .then((types) => { for (const ref of [...types.map((t) => t.ref), ...names.keys()]) options.append(h("option", { value: ref })); })
    .catch(() => {});

  const seen = new Set();
  let first = true;
  async function load() {
    setQuery({ trigger: trigger.value.trim(), status: status.value, offset: offset || "" });
    const rows = await api("/api/v1/triggerinstances", {
      params: { trigger: trigger.value.trim(), status: status.value, limit: LIMIT, offset },
    });
    list.classList.remove("loading");
    const el2 = table({
      rows,
      empty: "No trigger instances.",
      columns: [
        { title: "When", value: (i) => h("a", { href: `#/triggerinstances/${enc(i.id)}`, class: "nowrap", title: fmtTime(i.occurrence_time) }, ago(i.occurrence_time)) },
        { title: "Trigger", value: (i) => triggerCell(i.trigger, names) },
        { title: "Status", value: (i) => statusBadge(i.status) },
        { title: "Payload", value: (i) => folded(i.payload, 90) },
        {
          title: "",
          value: (i) => {
            const b = h("button", { "aria-label": `Re-emit event ${i.id}`, onclick: () => reEmit(b, i.id) }, "Re-emit");
            return b;
          },
        },
      ],
    });
    if (el2.tagName === "TABLE") {
      el2.classList.add("instances");
      el2.querySelectorAll("tbody tr").forEach((tr, n) => {
        tr.dataset.id = rows[n].id;
        if (!first && !seen.has(rows[n].id)) tr.classList.add("fresh");
      });
    }
    rows.forEach((r) => seen.add(r.id));
    first = false;
    clear(list, el2, pager({ total: rows.total, limit: LIMIT, offset, onPage: (o) => { offset = o; load(); } }));
    live.textContent = offset === 0 ? "new events appear as they come" : "";
  }
  const refresh = throttle(() => { if (offset === 0) load().catch(() => {}); }, 800);
  ctx.cleanup(stream.on("st2.trigger_instance__create", refresh));
  const reload = () => { offset = 0; load(); };
  trigger.addEventListener("input", debounce(reload, 350));
  status.addEventListener("change", reload);
  await load();
}

async function instancePage({ id }, ctx) {
  const { el } = ctx;
  const instance = await api(`/api/v1/triggerinstances/${enc(id)}`);
  const names = await triggerNames();
  const context = instance.context || {};
  const again = h("button", {
    onclick: async () => {
      const created = await reEmit(again, instance.id);
      if (created) location.hash = `#/triggerinstances/${enc(created)}`;
    },
  }, "Re-emit");
  el.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/triggerinstances" }, "Trigger instances")),
    h("div", { class: "row between" }, h("h1", { class: "row" }, "Event ", h("span", { class: "mono" }, instance.id), " ", statusBadge(instance.status)), again),
    h("div", { class: "grid2" },
      h("section", { class: "panel" },
        kv([
          ["Trigger", triggerCell(instance.trigger, names)],
          ["Received", `${fmtTime(instance.occurrence_time)} (${ago(instance.occurrence_time)})`],
          ["Source", context.source || (context.sensor ? "sensor" : null)],
          ["Sensor", context.sensor],
          ["Re-emitted from", context.re_emitted_from
            ? h("a", { href: `#/triggerinstances/${enc(context.re_emitted_from)}`, class: "mono" }, context.re_emitted_from) : null],
          ["Rejected because", context.reason ? h("span", { class: "error-text" }, context.reason) : null],
        ]),
        Object.keys(context).length ? [h("h3", {}, "Context"), jsonView(context)] : null),
      h("section", { class: "panel" }, h("h2", {}, "Payload"), jsonView(instance.payload))));

  const enfBox = h("div", { class: "loading" }, "Loading…");
  const rulesBox = h("div", { class: "loading" }, "Loading…");
  el.append(h("h2", {}, "Enforcements"), enfBox, h("h2", {}, "Rules on this trigger"),
    h("p", { class: "muted" }, "What each rule listening to this trigger makes of the event."), rulesBox);
  const [enforcements, rules] = await Promise.all([
    api("/api/v1/ruleenforcements", { params: { trigger_instance: instance.id } }),
    api("/api/v1/rules", { params: { trigger: instance.trigger } }),
  ]);
  enfBox.classList.remove("loading");
  clear(enfBox, table({
    rows: enforcements,
    empty: "No rule enforced this event.",
    columns: [
      { title: "Rule", value: (e) => h("a", { href: `#/rules/${enc(e.rule.ref)}` }, e.rule.ref) },
      { title: "Status", value: (e) => statusBadge(e.status) },
      { title: "Outcome", value: (e) => outcome(e) },
      { title: "When", value: (e) => fmtTime(e.enforced_at) },
    ],
  }));
  rulesBox.classList.remove("loading");
  if (!rules.length) { clear(rulesBox, h("p", { class: "muted" }, "No rule listens to this trigger.")); return; }
  clear(rulesBox);
  for (const rule of rules) {
    const box = h("div", { class: "panel" }, h("h3", {}, h("a", { href: `#/rules/${enc(rule.ref)}` }, rule.ref), " ", statusBadge(rule.enabled ? "enabled" : "disabled")));
    rulesBox.append(box);
    api(`/api/v1/rules/${enc(rule.ref)}/explain`, { params: { trigger_instance: instance.id } })
      .then((data) => box.append(explanation(data)))
      .catch((err) => box.append(h("p", { class: "error-text" }, err.message)));
  }
}
