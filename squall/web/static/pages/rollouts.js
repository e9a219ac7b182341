// Rollouts: the list, a rollout's page (its batches and hosts, the gate it
// waits on, the budget, metric analyses, failures, outputs, the decision
// log, and the buttons that steer it), and starting one from a spec.
// Everything is live from squall.rollout__update events.

import {
  api, h, svg, clear, route, addNav, setQuery, stream, throttle, pager, statusBadge,
  fmtTime, duration, between, ago, busy, toast, can,
} from "../app.js";

addNav("Rollouts", "#/rollouts", 40);

const FINAL = new Set(["succeeded", "failed", "aborted", "rolled_back"]);
// The segments of a progress bar, in order; other host statuses join one.
const SEGMENTS = ["succeeded", "failed", "running", "pending", "skipped", "rolled_back"];
const SEGMENT_OF = { unreachable: "failed", timeout: "failed", canceled: "skipped" };
const STATUS_ORDER = ["succeeded", "failed", "unreachable", "timeout", "running", "pending", "skipped", "canceled", "rolled_back"];
const HOSTS_PER_PAGE = 100;
const DRAFT_KEY = "squall.rollout.draft";

const plural = (n, word, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;
const enc = encodeURIComponent;

// -- shared pieces ---------------------------------------------------------------------------

/** "3 succeeded · 1 failed · 2 pending" */
export function countsText(counts = {}) {
  const keys = Object.keys(counts).filter((k) => k !== "total" && counts[k]);
  keys.sort((a, b) => (STATUS_ORDER.indexOf(a) + 1 || 99) - (STATUS_ORDER.indexOf(b) + 1 || 99));
  return keys.map((k) => `${counts[k]} ${k.replace("_", " ")}`).join(" · ") || "no hosts";
}

/** A bar of the hosts by status (the .bar style), with the counts as its label. */
export function progressBar(counts = {}, label = "hosts") {
  const total = counts.total ?? Object.entries(counts).reduce((s, [k, n]) => (k === "total" ? s : s + n), 0);
  const groups = Object.fromEntries(SEGMENTS.map((s) => [s, 0]));
  for (const [status, n] of Object.entries(counts)) {
    if (status === "total") continue;
    const seg = SEGMENT_OF[status] || (SEGMENTS.includes(status) ? status : "pending");
    groups[seg] += n;
  }
  const text = `${label}: ${countsText(counts)}`;
  const bar = h("div", { class: "bar", role: "img", "aria-label": text, title: text, "data-total": total });
  for (const seg of SEGMENTS) {
    if (!groups[seg] || !total) continue;
    const part = h("span", { class: seg, "data-status": seg, "data-count": groups[seg] });
    part.style.width = `${(100 * groups[seg]) / total}%`;
    bar.append(part);
  }
  return bar;
}

function budgetText(budget = {}) {
  const failures = budget.failures || 0;
  const limit = budget.max_failures;
  if (limit === null || limit === undefined) return `${plural(failures, "failure")} (no limit)`;
  return `${failures} of ${limit} failure${limit === 1 ? "" : "s"}${failures > limit ? " (breached)" : ""}`;
}

function toleratedText(limit) {
  if (limit === null || limit === undefined) return "no limit";
  if (limit === 0) return "stops at the first failure";
  return `${plural(limit, "failure")} tolerated`;
}

function gateText(g) {
  switch (g.kind) {
    case "pause": return `soak ${duration(g.seconds)}`;
    case "hold": return "hold until resumed";
    case "approval": {
      const who = [...(g.users || []), ...(g.roles || []).map((r) => `role ${r}`)];
      let text = "approval";
      if (who.length) text += ` by ${who.join(", ")}`;
      if (g.timeout) text += ` within ${duration(g.timeout)} (then ${g.on_timeout || "abort"})`;
      return text;
    }
    case "analysis": return `analysis ${g.analysis || ""}`.trim();
    case "window": return `window ${g.cron || ""}${g.duration ? ` for ${duration(g.duration)}` : ""} (${g.timezone || "UTC"})`;
    default: return g.kind || "gate";
  }
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// -- the list -----------------------------------------------------------------------------------

route("/rollouts", async (_params, ctx) => {
  const limit = 50;
  let offset = Math.max(0, Number(ctx.query.offset) || 0);
  const body = h("div", { class: "rollout-list" }, h("p", { class: "loading" }, "Loading…"));
  ctx.el.append(
    h("div", { class: "row between" }, h("h1", {}, "Rollouts"),
      can("rollout_start") ? h("a", { class: "button primary", href: "#/rollouts/new" }, "New rollout") : null),
    body);
  const rows = new Map(); // id → {data, tr}

  function cells(r) {
    const total = (r.counts && r.counts.total) || 0;
    const done = total - ((r.counts && (r.counts.pending || 0) + (r.counts.running || 0)) || 0);
    return [
      h("td", {}, h("a", { href: `#/rollouts/${enc(r.id)}` }, r.name || r.id)),
      h("td", {}, statusBadge(r.status)),
      h("td", { class: "progress" }, progressBar(r.counts, r.name || "hosts"), h("span", { class: "muted small" }, `${done}/${total} hosts done`)),
      h("td", {}, r.batch === undefined || r.batch === null ? "—" : `batch ${r.batch}`),
      h("td", { class: "error-cell" }, r.error || ""),
      h("td", { title: fmtTime(r.created_at) }, ago(r.created_at)),
      h("td", {}, r.ended_at ? fmtTime(r.ended_at) : "—"),
    ];
  }
  function rowOf(r) {
    const link = `#/rollouts/${enc(r.id)}`;
    return h("tr", {
      class: "clickable",
      "data-id": r.id,
      "data-status": r.status,
      onclick: (e) => { if (!e.target.closest("a,button,input")) location.hash = link; },
    }, cells(r));
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    let list;
    try {
      list = await api("/api/v1/rollouts", { params: { limit, offset } });
    } catch (err) {
      if (mine === seq) clear(body, h("p", { class: "error-text", role: "alert" }, err.message));
      return;
    }
    if (mine !== seq) return;
    rows.clear();
    if (!list.length) {
      clear(body, h("p", { class: "muted" }, offset ? "No more rollouts." : "No rollout yet. ",
        offset ? null : h("a", { href: "#/rollouts/new" }, "Start one from a spec")));
    } else {
      const tbody = h("tbody", {}, list.map((r) => { const tr = rowOf(r); rows.set(r.id, { data: r, tr }); return tr; }));
      clear(body,
        h("table", { class: "list rollouts" },
          h("thead", {}, h("tr", {}, ["Name", "Status", "Progress", "Batch", "Error", "Created", "Ended"].map((t) => h("th", { scope: "col" }, t)))),
          tbody));
    }
    const total = list.total ?? (list.length < limit ? offset + list.length : undefined);
    body.append(pager({ total, limit, offset, onPage: (o) => { offset = o; setQuery({ offset: o || undefined }); load(); } }));
  }
  const reload = throttle(load, 1000);
  ctx.cleanup(stream.on("squall.rollout__update", (e) => {
    const known = rows.get(e.id);
    // New ones, and ended ones (for their end time), come from the list.
    if (!known || FINAL.has(e.status)) { if (known || offset === 0) reload(); if (!known) return; }
    known.data = { ...known.data, ...e };
    known.tr.dataset.status = e.status;
    clear(known.tr, cells(known.data));
  }));
  await load();
}, { title: "Rollouts" });

// -- a new rollout from a spec --------------------------------------------------------------------

const PLACEHOLDER = `name: patch-openssl
target: "role=web"
action: examples.patch_host
parameters: {package: openssl}
batches: [1, "10%", "100%"]
max_failures: 2
gates:
  - after: 0
    approval: {}`;

function problemsView(err) {
  const problems = (err.body && Array.isArray(err.body.problems)) ? err.body.problems : [];
  const head = problems.length
    ? `The spec has ${plural(problems.length, "problem")}:`
    : (err.message || "The spec was refused");
  return h("div", { class: "panel problems", role: "alert" },
    h("h2", {}, problems.length ? "Problems" : "Refused"),
    h("p", {}, head),
    problems.length
      ? h("ul", { class: "problem-list" }, problems.map((p) =>
        h("li", { "data-path": p.path || "" }, h("code", { class: "path" }, p.path || "(spec)"), " ", p.message)))
      : null);
}

function planView(plan) {
  const batches = plan.batches || [];
  const gates = plan.gates || [];
  const budget = plan.budget || {};
  const perBatch = budget.batches || [];
  const limited = perBatch.some((b) => b !== null && b !== undefined);
  const summary = kv([
    ["Name", plan.name],
    ["Target", h("code", {}, plan.target || "")],
    ["Hosts", String(plan.count ?? (plan.hosts || []).length)],
    ["Batches", plan.mode === "window"
      ? `sliding window: ${plural((plan.concurrency || [0])[0], "host")} in flight`
      : `${batches.length} (${batches.map((b) => b.length).join(", ")} hosts)`],
    ["Failure budget", toleratedText(budget.max_failures) + " (whole rollout)"],
    budget.count_as_failure ? ["Counted as failures", budget.count_as_failure.join(", ")] : null,
    budget.on_breach ? ["On a breach", budget.on_breach === "cancel" ? "hosts in flight are canceled" : "hosts in flight finish"] : null,
    (plan.before_first || []).length ? ["Before the first batch", plan.before_first.map(gateText).join(", ")] : null,
    ["Estimated duration", duration(plan.estimated_seconds)],
  ]);
  const rows = batches.map((hosts, i) => {
    const shown = hosts.slice(0, 40);
    return h("tr", { "data-batch": i },
      h("td", {}, String(i)),
      h("td", {}, String(hosts.length)),
      h("td", {}, String((plan.concurrency || [])[i] ?? hosts.length)),
      limited ? h("td", {}, perBatch[i] === null || perBatch[i] === undefined ? "no limit" : String(perBatch[i])) : null,
      h("td", {}, (gates[i] || []).map(gateText).join(", ") || "—"),
      h("td", { class: "hosts-cell" }, hosts.length > shown.length
        ? h("details", {}, h("summary", {}, `${shown.slice(0, 5).join(", ")} … (${hosts.length})`), hosts.join(", "))
        : shown.join(", ")));
  });
  return h("section", { class: "panel plan", "aria-label": "the plan" },
    h("h2", {}, `Plan: ${plan.name} — ${plural(plan.count ?? 0, "host")} in ${plural(batches.length, "batch", "batches")}`),
    summary,
    (plan.notes || []).length ? h("ul", { class: "notes" }, plan.notes.map((n) => h("li", {}, n))) : null,
    h("table", { class: "list plan-batches" },
      h("thead", {}, h("tr", {}, ["Batch", "Hosts", "In flight", limited ? "Tolerated" : null, "Then", "Which"].filter(Boolean).map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

route("/rollouts/new", (_params, ctx) => {
  const text = h("textarea", { id: "spec-text", name: "spec", rows: 18, spellcheck: "false", placeholder: PLACEHOLDER },
    sessionStorage.getItem(DRAFT_KEY) || "");
  const source = h("input", { id: "spec-source", name: "source", value: "spec.yaml", autocomplete: "off" });
  const result = h("div", { class: "plan-result", "aria-live": "polite" });
  const planButton = h("button", { type: "submit", class: "primary" }, "Plan");
  const startButton = h("button", { type: "button", disabled: true, title: "Plan the spec first" }, "Start");
  let planned = null; // the body that was planned

  const bodyOf = () => ({ spec_text: text.value, source: source.value.trim() || "spec.yaml" });
  text.addEventListener("input", () => {
    sessionStorage.setItem(DRAFT_KEY, text.value);
    if (planned && planned.spec_text !== text.value) { planned = null; startButton.disabled = true; }
  });
  const form = h("form", {
    class: "panel",
    onsubmit: (e) => {
      e.preventDefault();
      busy(planButton, async () => {
        const body = bodyOf();
        if (!body.spec_text.trim()) { clear(result, h("p", { class: "error-text", role: "alert" }, "Write or paste a spec first.")); return; }
        try {
          const plan = await api("/api/v1/rollouts/plan", { method: "POST", body });
          planned = body;
          startButton.disabled = false;
          startButton.classList.add("primary");
          planButton.classList.remove("primary");
          startButton.removeAttribute("title");
          clear(result, planView(plan));
        } catch (err) {
          planned = null;
          startButton.disabled = true;
          startButton.classList.remove("primary");
          planButton.classList.add("primary");
          if (err.status === 400) clear(result, problemsView(err));
          else throw err;
        }
      });
    },
  },
  h("div", { class: "field wide" }, h("label", { for: "spec-text" }, "Spec (YAML)"), text,
    h("div", { class: "help" }, "The fields are in the rollouts guide: target, action, batches, budget, gates, checks, hooks, rollback.")),
  h("div", { class: "field" }, h("label", { for: "spec-source" }, "File name ", h("span", { class: "help" }, "for messages")), source),
  h("div", { class: "row" }, planButton, startButton));
  startButton.addEventListener("click", () => busy(startButton, async () => {
    const body = planned || bodyOf();
    try {
      const view = await api("/api/v1/rollouts", { method: "POST", body });
      sessionStorage.removeItem(DRAFT_KEY);
      toast(`Rollout ${view.name} started`);
      location.hash = `#/rollouts/${enc(view.id)}`;
    } catch (err) {
      if (err.status === 400) { clear(result, problemsView(err)); startButton.disabled = true; return; }
      throw err;
    }
  }));
  ctx.el.append(
    h("p", { class: "back" }, h("a", { href: "#/rollouts" }, "← Rollouts")),
    h("h1", {}, "New rollout"),
    h("p", { class: "muted" }, "Plan first: the hosts, batches, budget and gates are laid out and nothing is touched. Start runs exactly that plan."),
    h("div", { class: "rollout-new" }, form, result));
  ctx.el.classList.add("rollout-new-page");
  text.focus();
}, { title: "New rollout" });

// -- a rollout's page ---------------------------------------------------------------------------------

/** A number to plot from a measurement's value, or null. */
function numeric(value) {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  if (Array.isArray(value)) { for (const v of value) { const n = numeric(v); if (n !== null) return n; } }
  return null;
}

const clock = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString(undefined, { hour12: false });
};

/** Measurement values over time: outcome-coloured points, errors on the floor. */
export function analysisChart(measurements) {
  const W = 380, H = 150, L = 48, R = 14, T = 12, B = 28;
  const pts = measurements.map((m) => ({ ...m, t: Date.parse(m.at), v: numeric(m.value) })).filter((m) => !Number.isNaN(m.t));
  const chart = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${plural(pts.length, "measurement")}: ${pts.map((p) => `${p.v ?? "no value"} ${p.outcome}`).join(", ")}` });
  if (!pts.length) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, "no measurement yet"));
    return chart;
  }
  let t0 = Math.min(...pts.map((p) => p.t)), t1 = Math.max(...pts.map((p) => p.t));
  if (t1 - t0 < 1000) { t0 -= 1000; t1 += 1000; }
  const values = pts.map((p) => p.v).filter((v) => v !== null);
  let v0 = Math.min(0, ...values), v1 = Math.max(0, ...values);
  if (v1 - v0 === 0) v1 = v0 + 1;
  v1 += (v1 - v0) * 0.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const fmt = (v) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Math.round(v * 1000) / 1000));
  chart.append(
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }),
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
    svg("text", { x: L - 4, y: T + 4, "text-anchor": "end", class: "tick" }, fmt(v1)),
    svg("text", { x: L - 4, y: y(v0) + 4, "text-anchor": "end", class: "tick" }, fmt(v0)),
    svg("text", { x: L, y: H - 8, "text-anchor": "start", class: "tick" }, clock(new Date(t0).toISOString())),
    svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "tick" }, clock(new Date(t1).toISOString())));
  const line = pts.filter((p) => p.v !== null).map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  if (line.includes(" ")) chart.append(svg("polyline", { points: line, class: "trend" }));
  for (const p of pts) {
    const tip = `${fmtTime(p.at)}: ${p.value === null || p.value === undefined ? "no value" : JSON.stringify(p.value)} — ${p.outcome}${p.message ? `: ${p.message}` : ""}`;
    const shape = p.v === null
      ? svg("path", { d: `M ${x(p.t) - 4} ${H - B - 4} l 8 8 m 0 -8 l -8 8`, class: `pt cross ${p.outcome}` })
      : svg("circle", { cx: x(p.t), cy: y(p.v), r: 4.5, class: `pt ${p.outcome}` });
    shape.dataset.outcome = p.outcome;
    shape.append(svg("title", {}, tip));
    chart.append(shape);
  }
  return chart;
}

function hostDuration(host) {
  if (!host.started_at) return "—";
  return duration(between(host.started_at, host.ended_at));
}

route("/rollouts/:id", async ({ id }, ctx) => {
  const el = ctx.el;
  const parts = {
    head: h("div", { class: "rollout-head" }),
    actions: h("div", { class: "rollout-actions" }),
    confirm: h("div", { class: "rollout-confirm" }),
    gate: h("div", { class: "rollout-gate", "aria-live": "polite" }),
    rollback: h("div", {}),
    progress: h("section", { class: "panel rollout-progress", "aria-label": "progress" }),
    hosts: h("section", { class: "panel rollout-batches", "aria-label": "batches and hosts" }),
    analysis: h("div", {}),
    failures: h("div", {}),
    outputs: h("div", {}),
    log: h("div", {}),
  };
  el.append(h("p", { class: "back" }, h("a", { href: "#/rollouts" }, "← Rollouts")),
    parts.head, parts.actions, parts.confirm, parts.gate, parts.rollback,
    h("div", { class: "rollout-top" }, parts.progress, parts.analysis),
    parts.hosts,
    h("div", { class: "grid2" }, parts.failures, parts.outputs), parts.log);
  el.classList.add("rollout-page");

  let view = null;
  const last = new Map();
  /** Re-draw a part only when what it shows has changed (keeps focus and open details). */
  const part = (name, data, draw) => {
    const sig = JSON.stringify(data);
    if (last.get(name) === sig) return;
    last.set(name, sig);
    clear(parts[name], draw(data));
  };

  // -- steering ----------------------------------------------------------
  async function control(action, body) {
    const v = await api(`/api/v1/rollouts/${enc(id)}/${action}`, { method: "POST", body: body || {} });
    clear(parts.confirm);
    last.delete("actions");
    if (v && v.id) show(v);
    refresh();
    return v;
  }
  function confirmBox(question, detail, yes, onYes, extra) {
    const box = h("div", { class: "panel confirm", role: "alertdialog", "aria-label": question },
      h("p", {}, h("strong", {}, question), " ", detail),
      extra || null,
      h("div", { class: "row" },
        h("button", { class: "danger", onclick: (e) => busy(e.currentTarget, onYes) }, yes),
        h("button", { onclick: () => clear(parts.confirm) }, "Cancel")));
    clear(parts.confirm, box);
    box.querySelector("button").focus();
  }
  function askAbort() {
    const cancel = h("input", { type: "checkbox", id: "abort-cancel" });
    confirmBox("Abort this rollout?", "No new host starts; the hosts not started yet are skipped.", "Abort now",
      () => control("abort", { cancel: cancel.checked }),
      h("div", { class: "row" }, cancel, h("label", { for: "abort-cancel" }, "Also cancel the hosts in flight")));
  }
  function askRollback() {
    confirmBox("Roll this rollout back?", "The spec's rollback runs on every host the change reached, last batch first.",
      "Roll back now", () => control("rollback"));
  }
  function actionButtons(v) {
    const buttons = [];
    const rollingBack = v.rollback && v.rollback.state === "running";
    // Only what the user's roles allow (the permission each route needs).
    const btn = (label, onclick, cls, permission) => (can(permission)
      ? h("button", { class: cls || null, onclick: (e) => busy(e.currentTarget, async () => onclick()) }, label)
      : null);
    if (!FINAL.has(v.status)) {
      if (v.status === "paused") buttons.push(btn("Resume", () => control("resume"), "primary", "rollout_approve"));
      else if (!v.ending) buttons.push(btn("Pause", () => control("pause"), null, "rollout_pause"));
      buttons.push(btn(rollingBack ? "Abort the rollback" : "Abort", askAbort, "danger", "rollout_abort"));
      if (v.has_rollback && !rollingBack && !(v.rollback && v.rollback.state)) buttons.push(btn("Roll back", askRollback, "danger", "rollout_rollback"));
    } else {
      const c = v.counts || {};
      const failed = (c.failed || 0) + (c.unreachable || 0) + (c.timeout || 0) + (c.canceled || 0);
      if (failed && !v.rollback && v.status !== "rolled_back") {
        buttons.push(btn(`Retry ${plural(failed, "failed host")}`, () => control("retry", { skipped: false }), null, "rollout_start"));
      }
      if (c.skipped && !v.rollback && v.status !== "rolled_back" && v.status !== "succeeded") {
        buttons.push(btn("Retry the failed and skipped hosts", () => control("retry", { skipped: true }), null, "rollout_start"));
      }
      if (v.has_rollback && v.status !== "rolled_back" && !(v.rollback && v.rollback.state)) {
        buttons.push(btn("Roll back", askRollback, "danger", "rollout_rollback"));
      }
    }
    return h("div", { class: "row" }, buttons.filter(Boolean));
  }

  async function answer(inquiry, approve, button) {
    await busy(button, async () => {
      await api(`/api/v1/inquiries/${enc(inquiry)}`, { method: "PUT", body: { id: inquiry, response: { approve } } });
      toast(approve ? "Approved: the rollout goes on" : "Refused: the rollout stops");
      refresh();
    });
  }

  // -- drawing -------------------------------------------------------------
  function headView(v) {
    const took = v.started_at ? duration(between(v.started_at, v.ended_at)) : "—";
    return [
      h("div", { class: "row" }, h("h1", {}, v.name), statusBadge(v.status),
        v.ending && !FINAL.has(v.status) ? h("span", { class: "muted" }, `winding down (${v.ending})`) : null),
      v.error ? h("p", { class: "error-text rollout-error" }, v.error) : null,
      h("ul", { class: "facts" },
        h("li", {}, h("span", { class: "muted" }, "id "), h("span", { class: "mono" }, v.id)),
        h("li", {}, h("span", { class: "muted" }, "by "), v.user || "—"),
        h("li", { title: `created ${fmtTime(v.created_at)}` }, h("span", { class: "muted" }, "started "), v.started_at ? fmtTime(v.started_at) : "not yet"),
        v.ended_at ? h("li", {}, h("span", { class: "muted" }, "ended "), fmtTime(v.ended_at)) : null,
        h("li", {}, h("span", { class: "muted" }, v.ended_at ? "took " : "running for "), took),
        v.estimated_seconds ? h("li", {}, h("span", { class: "muted" }, "estimated "), duration(v.estimated_seconds)) : null,
        v.execution ? h("li", {}, h("span", { class: "muted" }, "execution "), h("a", { href: `#/executions/${enc(v.execution)}`, class: "mono" }, v.execution)) : null),
    ];
  }

  function gateView(v) {
    if (FINAL.has(v.status)) return null;
    const g = v.gate || {};
    const where = g.after_batch !== undefined && g.after_batch !== null ? ` after batch ${g.after_batch}` : "";
    const until = g.until ? ` until ${fmtTime(g.until)}` : "";
    const panel = (kind, title, text, ...rest) => h("section", { class: "panel gate", "data-kind": kind, "aria-label": title },
      h("h2", {}, title), h("p", {}, text), ...rest);
    const resume = () => (can("rollout_approve")
      ? h("button", { class: "primary", onclick: (e) => busy(e.currentTarget, () => control("resume")) }, "Resume")
      : null);
    const panels = [];
    let gateHolds = true; // whether the gate still needs its own panel
    if (v.status === "paused") {
      if (g.kind === "analysis" && g.inconclusive) {
        panels.push(panel("inconclusive", "Analysis inconclusive", `Analysis ${g.name || ""}${where} is inconclusive: resume to go on, or abort.`,
          h("div", { class: "row" }, resume(), h("button", { class: "danger", onclick: askAbort }, "Abort"))));
        gateHolds = false;
      } else if (g.kind === "hold") {
        panels.push(panel("hold", "Held", `Held${where}: resume to go on.`, h("div", { class: "row" }, resume())));
        gateHolds = false;
      } else {
        panels.push(panel("paused", "Paused", "No new host starts; the hosts in flight finish. Resume to go on.", h("div", { class: "row" }, resume())));
      }
    }
    if (g.kind && gateHolds) {
      if (g.kind === "approval") {
        const approve = h("button", { class: "primary", onclick: (e) => answer(g.inquiry, true, e.currentTarget) }, "Approve");
        const refuse = h("button", { class: "danger", onclick: (e) => answer(g.inquiry, false, e.currentTarget) }, "Refuse and abort");
        panels.push(panel("approval", "Approval", `Waiting for approval${where}${until}: the next batch starts when someone approves.`,
          h("div", { class: "row" }, ...(can("inquiry_respond") ? [approve, refuse] : []),
            g.inquiry ? h("span", { class: "muted" }, "inquiry ", h("a", { href: `#/inquiries/${enc(g.inquiry)}`, class: "mono" }, g.inquiry)) : null)));
      } else if (g.kind === "pause") {
        panels.push(panel("pause", "Soak time", `Soaking${where}${until}: the next batch starts then.`));
      } else if (g.kind === "analysis") {
        panels.push(panel("analysis", "Analysis", `Analysis ${g.name || ""} running${where}${until}.`));
      } else if (g.kind === "window") {
        panels.push(panel("window", "Time window", g.until ? `Waiting for the time window: it opens at ${fmtTime(g.until)}.` : "Waiting for the time window to open."));
      } else {
        panels.push(panel(g.kind, "Gate", `Waiting at a ${g.kind} gate${where}${until}.`));
      }
    }
    return panels;
  }

  /** A compact bar per batch (the first few), for the overview. */
  function batchBars(v) {
    const batches = v.batches || [];
    if (batches.length < 2) return null;
    const shown = batches.slice(0, 12);
    return h("div", { class: "batch-bars" },
      shown.map((b) => {
        const total = b.counts.total || 0;
        const waiting = (b.counts.pending || 0) + (b.counts.running || 0);
        return h("div", { class: "batch-bar-row", "data-batch": b.index },
          h("span", {}, `Batch ${b.index}`), progressBar(b.counts, `batch ${b.index}`),
          h("span", { class: "muted small" }, `${total - waiting}/${total}`));
      }),
      batches.length > shown.length ? h("p", { class: "muted small" }, `and ${plural(batches.length - shown.length, "more batch", "more batches")}`) : null);
  }

  function rollbackView(rb) {
    if (!rb) return null;
    return h("section", { class: "panel rollback", "aria-label": "rollback" },
      h("h2", {}, "Rollback ", statusBadge(rb.state)),
      kv([
        ["Why", rb.reason || "—"],
        ["Automatic", rb.automatic ? "yes" : "no"],
        rb.batch !== undefined && rb.batch !== null ? ["Batch", String(rb.batch)] : null,
        ["Started", fmtTime(rb.started_at)],
        rb.ended_at ? ["Ended", fmtTime(rb.ended_at)] : null,
      ]));
  }

  function progressView(v) {
    const c = v.counts || {};
    const d = v.durations;
    return [
      h("h2", {}, "Progress"),
      h("div", { class: "row progress-row" }, progressBar(c, "all hosts"),
        v.batch_count ? h("span", {}, FINAL.has(v.status) ? plural(v.batch_count, "batch", "batches")
          : `batch ${Math.min(v.batch, v.batch_count - 1)} (of 0–${v.batch_count - 1})`) : null),
      h("p", { class: "counts" }, countsText(c)),
      batchBars(v),
      h("p", { class: "budget", "data-failures": v.budget ? v.budget.failures : 0 }, "Failure budget: ", h("strong", {}, budgetText(v.budget))),
      d ? h("p", { class: "muted" }, `Per host: median ${duration(d.median)}, 95th percentile ${duration(d.p95)}, longest ${duration(d.max)} (${plural(d.count, "host")})`) : null,
      (v.new_hosts || []).length ? h("p", { class: "muted" }, `${plural(v.new_hosts.length, "new host")} match the target but are not in this rollout: ${v.new_hosts.slice(0, 20).join(", ")}${v.new_hosts.length > 20 ? "…" : ""}`) : null,
    ];
  }

  // The hosts: one collapsible part per batch, paged, with a filter.
  const ui = { open: new Map(), page: new Map(), expanded: new Set(), output: new Map(), filter: "", status: "" };
  const filterInput = h("input", { id: "host-filter", type: "search", placeholder: "host name", autocomplete: "off" });
  const statusSelect = h("select", { id: "host-status" },
    h("option", { value: "" }, "any status"), STATUS_ORDER.map((s) => h("option", { value: s }, s.replace("_", " "))));
  const batchList = h("div", { class: "batch-list" });
  const batchEls = new Map();
  const redrawHosts = () => { for (const k of [...last.keys()]) if (k.startsWith("batch:")) last.delete(k); if (view) drawBatches(view); };
  filterInput.addEventListener("input", throttle(() => { ui.filter = filterInput.value.trim().toLowerCase(); ui.page.clear(); redrawHosts(); }, 250));
  statusSelect.addEventListener("change", () => { ui.status = statusSelect.value; ui.page.clear(); redrawHosts(); });
  parts.hosts.append(
    h("div", { class: "row between" }, h("h2", {}, "Batches and hosts"),
      h("div", { class: "filters" },
        h("div", { class: "field" }, h("label", { for: "host-filter" }, "Host"), filterInput),
        h("div", { class: "field" }, h("label", { for: "host-status" }, "Status"), statusSelect))),
    batchList);

  function matches(host) {
    if (ui.status && host.status !== ui.status) return false;
    return !ui.filter || host.name.toLowerCase().includes(ui.filter);
  }

  async function toggleOutput(host, button) {
    const key = host.name;
    if (ui.expanded.has(key)) ui.expanded.delete(key);
    else {
      ui.expanded.add(key);
      const cacheKey = `${host.execution}:${host.status}`;
      const cached = ui.output.get(key);
      if (!cached || cached.key !== cacheKey) {
        await busy(button, async () => {
          let text;
          try {
            text = await api(`/api/v1/executions/${enc(host.execution)}/output`, { text: true });
          } catch (err) {
            text = `(the output could not be read: ${err.message})`;
          }
          ui.output.set(key, { key: cacheKey, text });
        });
      }
    }
    redrawHosts();
    const again = batchList.querySelector(`button[data-host="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }

  function hostRows(hosts) {
    const rows = [];
    for (const host of hosts) {
      const expanded = ui.expanded.has(host.name);
      const button = host.execution
        ? h("button", { class: "small", "data-host": host.name, "aria-expanded": expanded ? "true" : "false", onclick: (e) => toggleOutput(host, e.currentTarget) }, expanded ? "Hide output" : "Output")
        : null;
      rows.push(h("tr", { "data-host": host.name, "data-status": host.status },
        h("td", {}, host.name),
        h("td", {}, statusBadge(host.status)),
        h("td", {}, host.phase || "—"),
        h("td", { class: "error-cell" }, host.error || ""),
        h("td", {}, host.execution ? h("a", { href: `#/executions/${enc(host.execution)}`, class: "mono" }, host.execution) : "—"),
        h("td", {}, host.started_at ? fmtTime(host.started_at) : "—"),
        h("td", {}, hostDuration(host)),
        h("td", {}, button)));
      if (expanded) {
        const out = ui.output.get(host.name);
        rows.push(h("tr", { class: "host-output" }, h("td", { colspan: 8 },
          h("pre", { "aria-label": `output of ${host.name}` }, out ? out.text || "(no output)" : "…"))));
      }
    }
    return rows;
  }

  function batchView(b, v) {
    const hosts = (b.hosts || []).filter(matches);
    const pages = Math.max(1, Math.ceil(hosts.length / HOSTS_PER_PAGE));
    const page = Math.min(ui.page.get(b.index) || 0, pages - 1);
    const shown = hosts.slice(page * HOSTS_PER_PAGE, (page + 1) * HOSTS_PER_PAGE);
    const failures = b.budget ? b.budget.failures : 0;
    const current = !FINAL.has(v.status) && b.index === v.batch;
    const open = ui.open.has(b.index) ? ui.open.get(b.index) : current || (FINAL.has(v.status) && failures > 0);
    const details = h("details", { class: `batch ${b.status}`, "data-batch": b.index, open },
      h("summary", {},
        h("span", { class: "batch-title" }, `Batch ${b.index}`),
        h("span", { class: "muted" }, plural(b.counts.total || 0, "host")),
        statusBadge(b.status === "done" ? "done" : b.status),
        progressBar(b.counts, `batch ${b.index}`),
        h("span", { class: "batch-counts" }, countsText(b.counts)),
        b.budget && b.budget.max_failures !== null && b.budget.max_failures !== undefined
          ? h("span", { class: "muted" }, budgetText(b.budget)) : null),
      hosts.length
        ? h("table", { class: "list hosts" },
          h("thead", {}, h("tr", {}, ["Host", "Status", "Phase", "Error", "Execution", "Started", "Took", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, hostRows(shown)))
        : h("p", { class: "muted" }, (b.hosts || []).length ? "No host of this batch matches the filter." : "No host."),
      pages > 1 ? h("div", { class: "pager" },
        h("button", { disabled: page === 0, onclick: () => { ui.page.set(b.index, page - 1); redrawHosts(); } }, "‹ Previous"),
        h("span", {}, `${page * HOSTS_PER_PAGE + 1}–${Math.min(hosts.length, (page + 1) * HOSTS_PER_PAGE)} of ${hosts.length}`),
        h("button", { disabled: page >= pages - 1, onclick: () => { ui.page.set(b.index, page + 1); redrawHosts(); } }, "Next ›")) : null);
    details.addEventListener("toggle", () => { ui.open.set(b.index, details.open); });
    return details;
  }

  function drawBatches(v) {
    const seen = new Set();
    for (const b of v.batches || []) {
      seen.add(b.index);
      let holder = batchEls.get(b.index);
      if (!holder) {
        holder = h("div", { class: "batch-holder" });
        batchEls.set(b.index, holder);
      }
      batchList.append(holder); // in order
      const names = new Set((b.hosts || []).map((x) => x.name));
      const sig = JSON.stringify([b, v.status, v.batch, ui.filter, ui.status, ui.page.get(b.index) || 0,
        [...ui.expanded].filter((n) => names.has(n)).map((n) => [n, ui.output.get(n) && ui.output.get(n).key])]);
      if (last.get(`batch:${b.index}`) === sig) continue;
      last.set(`batch:${b.index}`, sig);
      clear(holder, batchView(b, v));
    }
    for (const [index, holder] of batchEls) {
      if (!seen.has(index)) { holder.remove(); batchEls.delete(index); last.delete(`batch:${index}`); }
    }
    if (!(v.batches || []).length) clear(batchList, h("p", { class: "muted" }, "No batch."));
  }

  function analysisView(runs) {
    if (!runs.length) return null;
    return h("section", { class: "panel analyses", "aria-label": "metric analysis" },
      h("h2", {}, "Metric analysis"),
      h("div", { class: "analysis-runs" }, runs.map((run, i) => h("div", { class: "analysis", "data-name": run.name, "data-status": run.status, "data-run": i },
        h("h3", {}, `${run.name} after batch ${run.after_batch} `, statusBadge(run.status)),
        run.summary ? h("p", { class: "muted" }, run.summary) : null,
        analysisChart(run.measurements || []),
        h("ul", { class: "analysis-legend" }, ["successful", "failed", "inconclusive", "error"].map((o) =>
          h("li", {}, h("span", { class: `pt-swatch ${o}` }), o)))))));
  }

  function failuresView(failures) {
    return h("section", { class: "panel failures", "aria-label": "failures" },
      h("h2", {}, "Failures"),
      failures.length
        ? h("ul", { class: "grouped" }, failures.map((f) => h("li", {},
          h("strong", {}, plural(f.count, "host")), ": ", h("span", { class: "error-text" }, f.error),
          h("div", { class: "muted small" }, f.hosts.slice(0, 12).join(", "), f.hosts.length > 12 ? ` and ${f.hosts.length - 12} more` : ""))))
        : h("p", { class: "muted" }, "None."));
  }

  function outputsView(outputs) {
    return h("section", { class: "panel outputs", "aria-label": "outputs" },
      h("h2", {}, "Outputs"),
      outputs.length
        ? outputs.map((o) => h("details", { class: "folded" },
          h("summary", {}, h("strong", {}, plural(o.count, "host")), ": ", h("span", { class: "mono" }, (o.output || "").split("\n")[0].slice(0, 80) || "(empty)")),
          h("pre", {}, o.output || ""),
          h("p", { class: "muted small" }, o.hosts.join(", "), o.count > o.hosts.length ? ` and ${o.count - o.hosts.length} more` : "")))
        : h("p", { class: "muted" }, "No output yet."));
  }

  function logView(log) {
    return h("section", { class: "panel log", "aria-label": "decision log" },
      h("h2", {}, "Decision log"),
      log.length
        ? h("table", { class: "list" },
          h("thead", {}, h("tr", {}, ["When", "What", "", "Who"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, [...log].reverse().map((e) => h("tr", { "data-kind": e.kind },
            h("td", { title: fmtTime(e.at) }, clock(e.at)),
            h("td", {}, h("span", { class: "badge" }, e.kind)),
            h("td", {}, e.message),
            h("td", {}, e.user || "")))))
        : h("p", { class: "muted" }, "Nothing yet."));
  }

  function show(v) {
    view = v;
    el.dataset.status = v.status;
    document.title = `${v.name} · Rollouts · Squall`;
    part("head", v, headView);
    part("actions", [v.status, v.ending, v.has_rollback, v.rollback && v.rollback.state, v.counts], () => actionButtons(v));
    part("gate", [v.status, v.gate], () => gateView(v));
    part("rollback", v.rollback, rollbackView);
    part("progress", [v.status, v.counts, v.budget, v.batch, v.batch_count, v.durations, v.new_hosts, (v.batches || []).map((b) => b.counts)], () => progressView(v));
    drawBatches(v);
    part("analysis", v.analysis || [], analysisView);
    part("failures", v.failures || [], failuresView);
    part("outputs", v.outputs || [], outputsView);
    part("log", v.log || [], logView);
    if (FINAL.has(v.status)) clear(parts.confirm);
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    try {
      const v = await api(`/api/v1/rollouts/${enc(id)}`);
      if (mine === seq) show(v);
    } catch (err) {
      if (mine !== seq) return;
      if (!view) throw err;
      toast(err.message, "error");
    }
  }
  // Big rollouts send many updates: fetch them less often.
  const quick = throttle(load, 500), slow = throttle(load, 1500);
  const refresh = () => ((view && view.counts && view.counts.total > 1000) ? slow() : quick());
  ctx.cleanup(stream.on("squall.rollout__update", (e) => {
    if (!e || e.id !== id) return;
    if (view && e.status) { el.dataset.status = e.status; }
    refresh();
  }));
  await load();
}, { title: "Rollout" });
