// The inventory: hosts and their facts, groups, and a targeting box that
// shows which hosts an expression matches as it is typed (or where it is
// wrong).

import { api, h, clear, route, addNav, setQuery, table, pager, jsonView, fmtTime, ApiError } from "../app.js";
import { enc, field, kv, scalar, debounce } from "./content-kit.js";

addNav("Inventory", "#/inventory", 75);
route("/inventory", inventoryPage, { title: "Inventory" });
route("/inventory/hosts/:name", hostPage, { title: "Host" });

const LIMIT = 100;
const FACT_COLUMNS = 5;
// Connection and bookkeeping facts make poor columns.
const NOT_COLUMNS = new Set(["gathered_at", "boot_id", "uptime_seconds", "ipv4", "ipv6", "hostname", "fqdn"]);

/** The fact names most hosts have a plain value for: the table's extra columns. */
function factColumns(hosts) {
  const counts = new Map();
  for (const host of hosts) {
    for (const [k, v] of Object.entries(host.facts || {})) {
      if (NOT_COLUMNS.has(k) || v === null || typeof v === "object") continue;
      counts.set(k, (counts.get(k) || 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, FACT_COLUMNS).map(([k]) => k);
}

function address(host) {
  return `${host.user ? `${host.user}@` : ""}${host.address}${host.port && host.port !== 22 ? `:${host.port}` : ""}`;
}

function groupChips(groups, onGroup) {
  return h("span", { class: "chips" }, (groups || []).map((g) => (onGroup
    ? h("button", { class: "chip", title: `Target @${g}`, onclick: () => onGroup(g) }, g)
    : h("span", { class: "chip" }, g))));
}

async function inventoryPage(_params, ctx) {
  const { el, query } = ctx;
  let offset = Number(query.offset) || 0;
  const target = h("input", {
    id: "target", name: "target", type: "text", value: query.target || "", autocomplete: "off",
    spellcheck: "false", class: "mono target-input", placeholder: "all, web-*, @webservers, role=web and hagroup=a",
    "aria-describedby": "target-help target-status target-error",
  });
  const status = h("p", { id: "target-status", class: "target-status", "aria-live": "polite" });
  const error = h("div", { id: "target-error", class: "target-error", role: "alert" });
  const hostsBox = h("div", { class: "loading" }, "Loading…");
  const groupsBox = h("div", { class: "loading" }, "Loading…");
  const about = h("div");
  el.append(
    h("h1", {}, "Inventory"),
    h("section", { class: "panel target-box", "aria-label": "Select hosts" },
      h("div", { class: "field wide" },
        h("label", { for: "target" }, "Target"),
        target,
        h("div", { class: "help", id: "target-help" },
          "Names and globs, @group, fact=value, fact~regex, cpus>=8, and/or/not, ( ). The hosts below are those it matches.")),
      status, error),
    h("section", { "aria-labelledby": "inv-hosts" }, h("h2", { id: "inv-hosts" }, "Hosts"), hostsBox),
    h("section", { "aria-labelledby": "inv-groups" }, h("h2", { id: "inv-groups" }, "Groups"), groupsBox),
    about);

  let columns = null;
  let seq = 0;
  const useGroup = (g) => { target.value = `@${g}`; offset = 0; run(); target.focus(); };

  function showError(expr, err) {
    const body = err instanceof ApiError ? err.body || {} : {};
    const message = String(body.faultstring || err.message || err);
    const reason = message.split("\n")[0];
    const position = Number.isInteger(body.position) ? body.position : null;
    target.setAttribute("aria-invalid", "true");
    target.parentElement.classList.add("invalid");
    status.textContent = "";
    clear(error,
      h("p", { class: "error-text" }, reason),
      position !== null
        ? h("pre", { class: "caret", "aria-label": `the problem is at position ${position}` },
          expr.slice(0, position), h("mark", {}, expr.slice(position, position + 1) || " "), expr.slice(position + 1),
          "\n", " ".repeat(position), "^")
        : null);
    hostsBox.classList.add("stale");
  }

  async function run() {
    const expr = target.value.trim() ? target.value : "";
    const mine = ++seq;
    setQuery({ target: expr, offset: offset || "" });
    let data;
    try {
      data = await api("/api/v1/inventory/hosts", { params: { target: expr, limit: LIMIT, offset } });
    } catch (err) {
      if (mine === seq) showError(target.value, err);
      return;
    }
    if (mine !== seq) return; // a newer expression was typed meanwhile
    target.removeAttribute("aria-invalid");
    target.parentElement.classList.remove("invalid");
    clear(error);
    hostsBox.classList.remove("loading", "stale");
    if (columns === null) columns = factColumns(data.hosts);
    status.textContent = expr
      ? `${data.count} of ${data.total} host${data.total === 1 ? "" : "s"} match`
      : `${data.total} host${data.total === 1 ? "" : "s"}`;
    clear(hostsBox,
      table({
        rows: data.hosts,
        href: (host) => `#/inventory/hosts/${enc(host.name)}`,
        empty: data.total ? "No host matches." : "The inventory is empty: set SQUALL_INVENTORY (see the fleet guide).",
        columns: [
          { title: "Name", value: (host) => host.name },
          { title: "Address", value: (host) => h("span", { class: "mono" }, address(host)) },
          { title: "Groups", value: (host) => groupChips(host.groups, useGroup) },
          ...columns.map((k) => ({ title: k, value: (host) => scalar(host.facts?.[k]) })),
        ],
      }),
      data.count > LIMIT ? pager({ total: data.count, limit: LIMIT, offset, onPage: (o) => { offset = o; run(); } }) : null);
    if (!about.childElementCount) {
      clear(about,
        data.problems?.length ? [h("h2", {}, "Problems"), h("ul", { class: "inv-problems" }, data.problems.map((p) => h("li", { class: "error-text" }, p)))] : null,
        data.sources?.length ? h("p", { class: "muted" }, "Read from ", data.sources.map((s, i) => [i ? ", " : "",
          h("span", { class: "mono", title: s }, s.split("/").filter(Boolean).pop() || s)])) : null);
    }
  }
  const typed = debounce(() => { offset = 0; run(); }, 300);
  target.addEventListener("input", typed);
  target.addEventListener("keydown", (e) => { if (e.key === "Enter") { typed.cancel(); offset = 0; run(); } });
  ctx.cleanup(() => typed.cancel());

  const groupsLoad = api("/api/v1/inventory/groups").then((groups) => {
    groupsBox.classList.remove("loading");
    clear(groupsBox, table({
      rows: groups.filter((g) => (g.name !== "all" && g.name !== "ungrouped") || g.hosts.length),
      empty: "No groups.",
      columns: [
        { title: "Group", value: (g) => h("button", { class: "chip", title: `Target @${g.name}`, onclick: () => useGroup(g.name) }, `@${g.name}`) },
        { title: "Hosts", value: (g) => String(g.hosts.length) },
        { title: "Members", value: (g) => h("span", { class: "mono" }, g.hosts.slice(0, 8).join(", ") + (g.hosts.length > 8 ? ` and ${g.hosts.length - 8} more` : "")) },
        { title: "Children", value: (g) => (g.children.length ? g.children.join(", ") : "—") },
        { title: "Vars", value: (g) => (Object.keys(g.vars || {}).length ? h("span", { class: "mono" }, JSON.stringify(g.vars)) : "—") },
      ],
    }));
  }).catch((err) => clear(groupsBox, h("p", { class: "error-text" }, err.message)));
  await Promise.all([run(), groupsLoad]);
}

/** Facts flattened to dotted names (packages.openssl), lists kept whole. */
function flatten(facts, prefix = "", out = []) {
  for (const [k, v] of Object.entries(facts || {})) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) flatten(v, name, out);
    else out.push([name, v]);
  }
  return out;
}

async function hostPage({ name }, ctx) {
  const { el } = ctx;
  const host = await api(`/api/v1/inventory/hosts/${enc(name)}`);
  document.title = `${host.name} · Inventory · Squall`;
  const facts = flatten(host.facts).sort((a, b) => a[0].localeCompare(b[0]));
  const gathered = host.facts?.gathered_at;
  el.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/inventory" }, "Inventory")),
    h("h1", {}, host.name),
    h("div", { class: "panel" }, kv([
      ["Address", h("span", { class: "mono" }, address(host))],
      ["Groups", host.groups?.length ? groupChips(host.groups, null) : null],
      ["Jump host", host.jump],
      ["Key file", host.key_file ? h("span", { class: "mono" }, host.key_file) : null],
      ["Certificate", host.certificate ? h("span", { class: "mono" }, host.certificate) : null],
      ["Password", host.password ? "set (hidden)" : null],
      ["Defined in", host.source ? h("span", { class: "mono" }, host.source) : null],
      ["Facts gathered", gathered ? fmtTime(gathered * 1000) : "never (declared facts only)"],
    ])),
    h("h2", {}, `Facts (${facts.length})`),
    table({
      rows: facts,
      empty: "No facts.",
      columns: [
        { title: "Fact", value: ([k]) => h("span", { class: "mono" }, k) },
        { title: "Value", value: ([, v]) => (v && typeof v === "object" ? jsonView(v) : h("span", { class: "mono" }, v === null ? "null" : String(v))) },
      ],
    }),
    h("p", {}, h("a", { href: `#/inventory?target=${enc(host.name)}` }, "Target this host")));
}
