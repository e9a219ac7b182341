// The audit trail: who did what, when — filterable, paged on the server,
// with the hash chain's check one click away.
import { addNav, api, busy, clear, fmtTime, h, jsonView, pager, route, setQuery, statusBadge, table } from "../app.js";

const KINDS = ["", "api", "execution", "sign_in", "inquiry", "rollout", "denied"];
const LIMIT = 50;

addNav("Audit", "#/audit", 90);

route("/audit", async (_params, ctx) => {
  const q = { ...ctx.query };
  const offset = Number(q.offset || 0);
  const field = (name, label, input) => h("div", { class: "field" }, h("label", { for: `audit-${name}` }, label), input);
  const inputs = {
    actor: h("input", { id: "audit-actor", value: q.actor || "", placeholder: "user or rule:REF" }),
    kind: h("select", { id: "audit-kind" }, KINDS.map((k) => h("option", { value: k, selected: (q.kind || "") === k }, k || "any"))),
    search: h("input", { id: "audit-search", value: q.search || "", placeholder: "action or target" }),
    after: h("input", { id: "audit-after", type: "datetime-local", value: q.after || "" }),
    before: h("input", { id: "audit-before", type: "datetime-local", value: q.before || "" }),
  };
  const results = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const verdict = h("div", { "aria-live": "polite" });
  const apply = (extra = {}) => {
    const next = { ...Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value])), ...extra };
    setQuery(next);
    load(next);
  };
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply({ offset: 0 }); } },
    field("actor", "User", inputs.actor), field("kind", "Kind", inputs.kind), field("search", "Search", inputs.search),
    field("after", "Since", inputs.after), field("before", "Until", inputs.before),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  const verify = h("button", {
    onclick: (e) => busy(e.target, async () => {
      const r = await api("/api/v1/audit/verify");
      clear(verdict, r.ok
        ? h("p", {}, statusBadge("ok"), ` intact: ${r.records} records sealed, ${r.unsealed} waiting; head ${r.head.position} `, h("code", {}, r.head.hash.slice(0, 16)), "…")
        : h("p", { class: "error-text", role: "alert" }, `BROKEN: ${r.problem}`));
    }),
  }, "Verify the chain");
  ctx.el.append(h("div", { class: "row between" }, h("h1", {}, "Audit"), verify), verdict, form, results);

  async function load(filters) {
    const params = { limit: LIMIT, offset: Number(filters.offset || 0) };
    for (const key of ["actor", "kind", "search"]) if (filters[key]) params[key] = filters[key];
    for (const key of ["after", "before"]) if (filters[key]) params[key] = new Date(filters[key]).toISOString();
    let rows;
    try {
      rows = await api("/api/v1/audit", { params });
    } catch (err) {
      clear(results, h("p", { class: "error-text", role: "alert" }, err.message));
      return;
    }
    const open = new Set();
    clear(results,
      table({
        columns: [
          { title: "When", value: (r) => fmtTime(r.at) },
          { title: "Who", value: (r) => r.actor },
          { title: "Kind", value: (r) => r.kind },
          { title: "What", value: (r) => r.action },
          { title: "On", value: (r) => (r.kind === "execution" && r.target ? h("a", { href: `#/executions/${r.target}` }, r.target)
            : r.kind === "rollout" && r.target ? h("a", { href: `#/rollouts/${r.target}` }, r.target) : r.target || "") },
          { title: "Outcome", value: (r) => statusBadge(r.outcome) },
          { title: "From", value: (r) => r.source || "" },
          { title: "", value: (r) => h("details", { onclick: () => open.add(r.seq) }, h("summary", {}, "details"), jsonView(r.details)) },
        ],
        rows,
        empty: "No records match.",
      }),
      pager({ total: rows.total, limit: LIMIT, offset: params.offset, onPage: (o) => apply({ offset: o }) }));
  }
  load({ ...q, offset });
}, { title: "Audit" });
