// Packs (and, imported from here, the datastore and the inventory): what is
// installed, and what each pack brings — actions, rules, sensors, triggers.

import { api, h, clear, route, addNav, setQuery, table, statusBadge } from "../app.js";
import { enc, field, kv, triggerText, debounce } from "./content-kit.js";
import "./datastore.js";
import "./inventory.js";

addNav("Packs", "#/packs", 65);
route("/packs", packsPage, { title: "Packs" });
route("/packs/:ref", packPage, { title: "Pack" });

async function packsPage(_params, ctx) {
  const { el, query } = ctx;
  const search = h("input", { id: "pack-search", class: "wide-search", type: "search", value: query.q || "", autocomplete: "off", placeholder: "name, description or keyword" });
  const list = h("div", { class: "loading" }, "Loading…");
  el.append(h("h1", {}, "Packs"), h("div", { class: "filters", role: "search" }, field("Search", search)), list);
  const packs = await api("/api/v1/packs");
  function show() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    setQuery({ q: search.value.trim() });
    list.classList.remove("loading");
    clear(list, table({
      rows: packs.filter((p) => words.every((w) =>
        [p.ref, p.name, p.description, ...(p.keywords || [])].join(" ").toLowerCase().includes(w))),
      href: (p) => `#/packs/${enc(p.ref)}`,
      empty: "No pack matches.",
      columns: [
        { title: "Pack", value: (p) => p.ref },
        { title: "Version", value: (p) => p.version || "—" },
        { title: "Description", value: (p) => p.description || "" },
        { title: "Author", value: (p) => p.author || "" },
      ],
    }));
  }
  search.addEventListener("input", debounce(show, 150));
  show();
}

function section(title, box) {
  const id = `pack-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), box);
}

async function packPage({ ref }, ctx) {
  const { el } = ctx;
  const pack = await api(`/api/v1/packs/${enc(ref)}`);
  document.title = `${pack.ref} · Packs · Squall`;
  el.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/packs" }, "Packs")),
    h("h1", {}, pack.name || pack.ref, pack.version ? h("span", { class: "muted" }, ` ${pack.version}`) : null),
    pack.description ? h("p", {}, pack.description) : null,
    h("div", { class: "panel" }, kv([
      ["Ref", h("span", { class: "mono" }, pack.ref)],
      ["Author", pack.author ? `${pack.author}${pack.email ? ` <${pack.email}>` : ""}` : null],
      ["Keywords", (pack.keywords || []).join(", ")],
      ["Path", pack.path ? h("span", { class: "mono" }, pack.path) : null],
      ["Dependencies", (pack.dependencies || []).join(", ")],
    ])));
  const boxes = {
    actions: h("div", { class: "loading" }, "Loading…"),
    rules: h("div", { class: "loading" }, "Loading…"),
    sensors: h("div", { class: "loading" }, "Loading…"),
    triggers: h("div", { class: "loading" }, "Loading…"),
  };
  el.append(section("Actions", boxes.actions), section("Rules", boxes.rules),
    section("Sensors", boxes.sensors), section("Trigger types", boxes.triggers));
  const fill = (box, promise, render) => promise
    .then((rows) => { box.classList.remove("loading"); clear(box, render(rows)); })
    .catch((err) => { box.classList.remove("loading"); clear(box, h("p", { class: "error-text" }, err.message)); });
  await Promise.all([
    fill(boxes.actions, api("/api/v1/actions", { params: { pack: pack.ref, limit: 0 } }), (rows) => table({
      rows,
      href: (a) => `#/actions/${enc(a.ref)}`,
      empty: "No actions.",
      columns: [
        { title: "Action", value: (a) => a.ref },
        { title: "Runner", value: (a) => h("span", { class: "mono" }, a.runner_type || "") },
        { title: "Description", value: (a) => a.description || "" },
      ],
    })),
    fill(boxes.rules, api("/api/v1/rules", { params: { pack: pack.ref } }), (rows) => table({
      rows,
      href: (r) => `#/rules/${enc(r.ref)}`,
      empty: "No rules.",
      columns: [
        { title: "Rule", value: (r) => r.ref },
        { title: "Trigger", value: (r) => h("span", { class: "mono" }, triggerText(r.trigger)) },
        { title: "Action", value: (r) => h("span", { class: "mono" }, r.action?.ref || "") },
        { title: "State", value: (r) => statusBadge(r.enabled ? "enabled" : "disabled") },
      ],
    })),
    fill(boxes.sensors, api("/api/v1/sensortypes", { params: { pack: pack.ref } }), (rows) => table({
      rows,
      href: (s) => `#/sensors?q=${enc(s.ref)}`,
      empty: "No sensors.",
      columns: [
        { title: "Sensor", value: (s) => s.ref },
        { title: "Enabled", value: (s) => statusBadge(s.enabled ? "enabled" : "disabled") },
        { title: "Process", value: (s) => statusBadge(s.status?.state) },
        { title: "Description", value: (s) => s.description || "" },
      ],
    })),
    fill(boxes.triggers, api("/api/v1/triggertypes", { params: { pack: pack.ref } }), (rows) => table({
      rows,
      href: (t) => `#/triggerinstances?trigger=${enc(t.ref)}`,
      empty: "No trigger types.",
      columns: [
        { title: "Trigger type", value: (t) => t.ref },
        { title: "Description", value: (t) => t.description || "" },
      ],
    })),
  ]);
}
