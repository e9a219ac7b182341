// Executions: the list (paged by the server, filtered, live) and the page of
// one execution (its output as it is written, result, timings, children,
// per-host results, inquiries, and the buttons to cancel, re-run, pause and
// resume).

import {
  api, h, clear, route, addNav, setQuery, stream, throttle, table, pager, statusBadge,
  jsonView, fmtTime, duration, between, ago, busy, toast, can, canOnExecution, uidOf,
} from "../app.js";
import { parametersForm } from "./actions.js";
import { inquiryForm } from "./inquiries.js";

addNav("Executions", "#/executions", 10);

const enc = encodeURIComponent;
const PAGE = 50;
const STATUSES = [
  "requested", "scheduled", "delayed", "running", "pending", "pausing", "paused", "resuming",
  "canceling", "succeeded", "failed", "timeout", "canceled", "abandoned",
];
const FINAL = new Set(["succeeded", "failed", "timeout", "canceled", "abandoned"]);
const WORKFLOW_RUNNERS = new Set(["orquesta", "action-chain"]);
const REMOTE_RUNNERS = new Set(["remote-shell-cmd", "remote-shell-script", "remote-reboot"]);
const LIST_ATTRIBUTES = [
  "id", "action.ref", "status", "start_timestamp", "end_timestamp", "elapsed_seconds",
  "context.user", "context.rule", "context.workflow", "parent", "runner.name",
].join(",");

const isFinal = (status) => FINAL.has(status);

function when(value) {
  return value ? h("time", { datetime: value, title: fmtTime(value) }, ago(value)) : "—";
}

function took(ex) {
  if (!ex.start_timestamp) return "—";
  if (isFinal(ex.status) && ex.end_timestamp) return duration(between(ex.start_timestamp, ex.end_timestamp));
  if (isFinal(ex.status)) return "—";
  return `${duration(between(ex.start_timestamp))} so far`;
}

/** "2026-11-22T10:00" (a datetime-local field, local time) as ISO 8601 UTC. */
function localToIso(value) {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function triggeredBy(ex) {
  const ctx = ex.context || {};
  if (ctx.rule && ctx.rule.ref) return h("span", {}, "rule ", h("a", { href: `#/executions?rule=${enc(ctx.rule.ref)}&all=1` }, ctx.rule.ref));
  if (ex.parent) {
    const task = ctx.workflow && ctx.workflow.task;
    return h("span", {}, task ? `task ${task} of ` : "part of ", h("a", { href: `#/executions/${ex.parent}`, class: "mono" }, ex.parent.slice(-8)));
  }
  return ctx.user ? `${ctx.user}` : "—";
}

// -- the list ------------------------------------------------------------------------

route("/executions", async (_params, ctx) => {
  const { el, query } = ctx;
  el.classList.add("xpage");
  const f = {
    q: query.q || "", action: query.action || "", status: query.status || "", rule: query.rule || "",
    user: query.user || "", after: query.after || "", before: query.before || "", all: query.all === "1",
  };
  let offset = Math.max(0, Number(query.offset) || 0);
  let rows = [];
  let seq = 0;

  const count = h("span", { class: "muted", id: "executions-count", "aria-live": "polite" });
  const listEl = h("div", { class: "executions-list" });
  const input = (id, label, value, attrs = {}) => {
    const el = h("input", { id, name: id, value, autocomplete: "off", ...attrs });
    return [el, h("div", { class: "field" }, h("label", { for: id }, label), el)];
  };
  const [qIn, qField] = input("f-q", "Search", f.q, { type: "search", placeholder: "id or action", size: 16 });
  const [actionIn, actionField] = input("f-action", "Action", f.action, { list: "f-action-list", placeholder: "pack.action", size: 16 });
  const [ruleIn, ruleField] = input("f-rule", "Rule", f.rule, { list: "f-rule-list", placeholder: "pack.rule", size: 14 });
  const [userIn, userField] = input("f-user", "User", f.user, { size: 10 });
  const [afterIn, afterField] = input("f-after", "After", f.after, { type: "datetime-local" });
  const [beforeIn, beforeField] = input("f-before", "Before", f.before, { type: "datetime-local" });
  const statusIn = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "Any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === f.status }, s)));
  const allIn = h("input", { id: "f-all", type: "checkbox", checked: f.all });
  const actionList = h("datalist", { id: "f-action-list" });
  const ruleList = h("datalist", { id: "f-rule-list" });

  const readFilters = () => {
    Object.assign(f, {
      q: qIn.value.trim(), action: actionIn.value.trim(), status: statusIn.value, rule: ruleIn.value.trim(),
      user: userIn.value.trim(), after: afterIn.value, before: beforeIn.value, all: allIn.checked,
    });
  };
  const applyFilters = () => { readFilters(); offset = 0; load(); };
  let typing = null;
  const onType = () => { clearTimeout(typing); typing = setTimeout(applyFilters, 300); };
  ctx.cleanup(() => clearTimeout(typing));
  for (const i of [qIn, actionIn, ruleIn, userIn]) i.addEventListener("input", onType);
  for (const i of [statusIn, allIn, afterIn, beforeIn]) i.addEventListener("change", applyFilters);

  el.append(
    h("div", { class: "row between" },
      h("h1", {}, "Executions"),
      h("div", { class: "row" }, count,
        can("action_execute") ? h("a", { class: "button primary", href: "#/actions" }, "Run an action") : null)),
    h("form", {
      class: "filters", role: "search", "aria-label": "filter executions",
      onsubmit: (e) => { e.preventDefault(); clearTimeout(typing); applyFilters(); },
    },
    qField, actionField,
    h("div", { class: "field" }, h("label", { for: "f-status" }, "Status"), statusIn),
    ruleField, userField, afterField, beforeField,
    h("div", { class: "field check" }, h("label", { for: "f-all" }, allIn, " Workflow tasks too")),
    h("div", { class: "field" }, h("button", {
      type: "button",
      onclick: () => {
        for (const i of [qIn, actionIn, ruleIn, userIn, afterIn, beforeIn]) i.value = "";
        statusIn.value = ""; allIn.checked = false; applyFilters();
      },
    }, "Clear")),
    actionList, ruleList),
    listEl);

  // Suggestions for the action and rule fields; the list does not wait for them.
  api("/api/v1/actions", { params: { limit: 0, include_attributes: "ref" } })
    .then((all) => clear(actionList, all.map((a) => h("option", { value: a.ref }))))
    .catch(() => {});
  api("/api/v1/rules", { params: { include_attributes: "ref" } })
    .then((all) => clear(ruleList, all.map((r) => h("option", { value: r.ref }))))
    .catch(() => {});

  function params() {
    return {
      limit: PAGE, offset, include_attributes: LIST_ATTRIBUTES,
      q: f.q, action: f.action, status: f.status, rule: f.rule, user: f.user,
      timestamp_gt: localToIso(f.after), timestamp_lt: localToIso(f.before),
      parent: f.all ? undefined : "null",
    };
  }

  let loading = false;
  // Once the page is left a late refresh must not touch the address, not
  // even in the moment between a new address and the router noticing it.
  let gone = false;
  let shown = location.hash;
  ctx.cleanup(() => { gone = true; });
  async function load() {
    if (gone || location.hash !== shown) { gone = true; return; }
    const mine = ++seq;
    setQuery({ ...f, all: f.all ? "1" : "", offset: offset || "" });
    shown = location.hash;
    listEl.setAttribute("aria-busy", "true");
    loading = true;
    let data;
    try {
      data = await api("/api/v1/executions", { params: params() });
    } catch (err) {
      if (mine !== seq) return;
      loading = false;
      listEl.removeAttribute("aria-busy");
      const fieldOf = { timestamp_gt: afterIn, timestamp_lt: beforeIn };
      const bad = Object.keys(fieldOf).find((k) => (err.message || "").includes(k));
      clear(listEl, h("p", { class: "error-text", role: "alert" }, err.message || String(err)));
      if (bad) fieldOf[bad].setAttribute("aria-invalid", "true");
      return;
    }
    if (mine !== seq) return; // an older answer arriving late
    loading = false;
    listEl.removeAttribute("aria-busy");
    afterIn.removeAttribute("aria-invalid"); beforeIn.removeAttribute("aria-invalid");
    const total = data.total;
    if (!data.length && offset > 0 && total > 0) { // past the end: the last page
      offset = Math.floor((total - 1) / PAGE) * PAGE;
      load();
      return;
    }
    rows = data;
    count.textContent = total === undefined ? "" : total === 1 ? "1 execution" : `${total.toLocaleString()} executions`;
    render(total);
  }

  function render(total) {
    const focused = document.activeElement && listEl.contains(document.activeElement)
      ? document.activeElement.closest("tr")?.dataset.id : null;
    const filtered = f.q || f.action || f.status || f.rule || f.user || f.after || f.before;
    const t = table({
      columns: [
        { title: "Action", value: (ex) => (ex.action && ex.action.ref) || "?" },
        { title: "Status", value: (ex) => statusBadge(ex.status) },
        { title: "Started", value: (ex) => when(ex.start_timestamp) },
        { title: "Took", value: (ex) => took(ex) },
        { title: "Started by", value: (ex) => triggeredBy(ex) },
        { title: "Id", value: (ex) => h("span", { class: "mono" }, ex.id) },
      ],
      rows,
      href: (ex) => `#/executions/${ex.id}`,
      empty: filtered ? "No execution matches these filters." : "No executions yet: run an action.",
    });
    t.querySelectorAll("tbody tr").forEach((tr, i) => { tr.dataset.id = rows[i].id; tr.dataset.status = rows[i].status; });
    clear(listEl, t, (total ?? 0) > PAGE || offset > 0
      ? pager({ total, limit: PAGE, offset, onPage: (o) => { offset = o; load(); } }) : null);
    if (focused) listEl.querySelector(`tr[data-id="${focused}"] a`)?.focus();
  }

  // Live: new executions show up on the first page; a row's status changes in place.
  const refresh = throttle(() => { load(); }, 1000);
  ctx.cleanup(stream.on("st2.execution__create", (ex) => {
    if (offset === 0 && (f.all || !ex.parent)) refresh();
  }));
  ctx.cleanup(stream.on("st2.execution__update", (ex) => {
    if (loading) { refresh(); return; } // the answer on its way may be older than this
    const i = rows.findIndex((r) => r.id === ex.id);
    if (i < 0) return;
    rows[i] = { ...rows[i], status: ex.status, end_timestamp: ex.end_timestamp, elapsed_seconds: ex.elapsed_seconds };
    const tr = listEl.querySelector(`tr[data-id="${ex.id}"]`);
    if (tr) {
      tr.dataset.status = ex.status;
      clear(tr.children[1], statusBadge(ex.status));
      clear(tr.children[3], took(rows[i]));
    }
    if (f.status) refresh(); // it may have left (or joined) the filtered list
  }));
  // The running ones' durations tick.
  const ticker = setInterval(() => {
    rows.forEach((r) => {
      if (isFinal(r.status)) return;
      const tr = listEl.querySelector(`tr[data-id="${r.id}"]`);
      if (tr) clear(tr.children[3], took(r));
    });
  }, 1000);
  ctx.cleanup(() => clearInterval(ticker));
  await load();
}, { title: "Executions" });

// -- one execution ----------------------------------------------------------------------

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function paramValue(value) {
  if (value !== null && typeof value === "object") return h("pre", { class: "json inline" }, JSON.stringify(value, null, 2));
  return h("span", { class: "mono" }, value === null ? "null" : String(value));
}

/** The stored and the streamed output of one execution, in one block. */
function outputView() {
  const pre = h("pre", { class: "output", id: "output", tabindex: "0", "aria-label": "output", hidden: true });
  const empty = h("p", { class: "muted" }, "No output yet.");
  let stored = ""; // the timestamp of the newest stored chunk shown
  const atBottom = () => pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  function add(chunk) {
    if (!chunk || !chunk.data) return;
    const follow = atBottom();
    empty.hidden = true;
    pre.hidden = false;
    pre.append(h("span", { class: chunk.output_type === "stderr" ? "stderr" : "stdout" }, chunk.data));
    if (follow) pre.scrollTop = pre.scrollHeight;
  }
  /** Show the stored chunks, then those streamed meanwhile that they do not hold. */
  function reset(chunks, streamed = []) {
    pre.replaceChildren();
    empty.hidden = false;
    pre.hidden = true;
    chunks.forEach(add);
    stored = chunks.length ? chunks[chunks.length - 1].timestamp || "" : "";
    streamed.filter((c) => !stored || !c.timestamp || c.timestamp > stored).forEach(add);
  }
  return { element: h("div", {}, pre, empty), add, reset, length: () => pre.textContent.length };
}

route("/executions/:id", async ({ id }, ctx) => {
  const { el } = ctx;
  el.classList.add("xpage");
  // Follow the stream before reading the execution: a change in between is kept.
  let onUpdate = null;
  const missed = [];
  ctx.cleanup(stream.on("st2.execution__update", (next) => {
    if (onUpdate) onUpdate(next); else if (next.id === id) missed.push(next);
  }));
  // Output: followed from now, show the stored output, then what came meanwhile.
  const output = outputView();
  let outputLoaded = false;
  const early = [];
  ctx.cleanup(stream.on("st2.execution.output__create", (chunk) => {
    if (chunk.execution_id !== id) return;
    if (outputLoaded) output.add(chunk); else early.push(chunk);
  }));
  let ex = await api(`/api/v1/executions/${enc(id)}`);
  const runnerName = (ex.runner && ex.runner.name) || (ex.action && ex.action.runner_type) || "";
  const isWorkflow = WORKFLOW_RUNNERS.has(runnerName);

  async function loadOutput() {
    const chunks = await api(`/api/v1/executions/${enc(id)}/output`, { params: { output_format: "json" } });
    output.reset(Array.isArray(chunks) ? chunks : [], outputLoaded ? [] : early.splice(0));
    outputLoaded = true;
  }

  // The header and the buttons.
  const title = h("h1", { class: "row" });
  const subtitle = h("p", { class: "muted" });
  const cancelBtn = h("button", { class: "danger", id: "cancel", onclick: () => busy(cancelBtn, async () => {
    apply(await api(`/api/v1/executions/${enc(id)}`, { method: "DELETE" }));
    toast("Cancel requested.");
  }) }, "Cancel");
  const pauseBtn = h("button", { id: "pause", onclick: () => busy(pauseBtn, async () => {
    apply(await api(`/api/v1/executions/${enc(id)}`, { method: "PUT", body: { status: "pausing" } }));
  }) }, "Pause");
  const resumeBtn = h("button", { id: "resume", onclick: () => busy(resumeBtn, async () => {
    apply(await api(`/api/v1/executions/${enc(id)}`, { method: "PUT", body: { status: "resuming" } }));
  }) }, "Resume");
  const rerunPanel = h("section", { class: "panel", id: "rerun", hidden: true, "aria-label": "re-run" });
  const rerunBtn = h("button", { id: "rerun-toggle", "aria-expanded": "false", "aria-controls": "rerun", onclick: () => toggleRerun() }, "Re-run…");
  const runAgain = h("a", { class: "button", id: "run-again", href: `#/actions/${enc(ex.action.ref)}` }, "Run again…");

  const details = h("div", {});
  const params = h("div", {});
  const result = h("div", {});
  const log = h("div", {});
  const inquiriesPanel = h("section", { class: "panel attention", hidden: true, "aria-label": "waiting for an answer" },
    h("h2", {}, "Waiting for an answer"));
  const inquiryForms = new Map();
  const childrenPanel = h("section", { class: "panel", hidden: true, "aria-label": "children" }, h("h2", {}, isWorkflow ? "Tasks" : "Children"));
  const childrenList = h("div", {});
  childrenPanel.append(childrenList);
  const hostsPanel = h("section", { class: "panel", hidden: true, "aria-label": "hosts" }, h("h2", {}, "Hosts"));
  const hostsList = h("div", {});
  hostsPanel.append(hostsList);
  const graphPanel = h("section", { class: "panel", hidden: !isWorkflow, "aria-label": "workflow" }, h("h2", {}, "Workflow"));

  el.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/executions" }, "Executions"), " / ", h("span", { class: "mono" }, id)),
    h("div", { class: "row between" }, title,
      h("div", { class: "row toolbar" }, cancelBtn, pauseBtn, resumeBtn, rerunBtn, runAgain)),
    subtitle,
    rerunPanel,
    inquiriesPanel,
    h("div", { class: "grid2" },
      h("section", { class: "panel", "aria-label": "details" }, h("h2", {}, "Details"), details),
      h("section", { class: "panel", "aria-label": "parameters" }, h("h2", {}, "Parameters"), params)),
    h("section", { class: "panel", "aria-label": "output" },
      h("div", { class: "row between" }, h("h2", {}, "Output"), h("span", { class: "muted live-note" })),
      output.element),
    h("section", { class: "panel", "aria-label": "result" }, h("h2", {}, "Result"), result),
    graphPanel,
    childrenPanel,
    hostsPanel,
    h("section", { class: "panel", "aria-label": "history" }, h("h2", {}, "History"), log));

  function apply(next) {
    const wasFinal = isFinal(ex.status);
    // A reply can arrive after a newer state from the stream (the cancel call answers
    // "canceling" after "canceled" was streamed): an ended execution never goes back.
    if (wasFinal && next.status && !isFinal(next.status)) next = { ...next, status: ex.status };
    ex = { ...ex, ...next };
    document.title = `${ex.action.ref} ${ex.status} · Squall`;
    clear(title, h("span", { class: "mono" }, ex.action.ref), " ", statusBadge(ex.status));
    const ctxInfo = ex.context || {};
    clear(subtitle,
      `Started ${fmtTime(ex.start_timestamp)}`,
      ctxInfo.user ? ` by ${ctxInfo.user}` : "",
      ctxInfo.rule && ctxInfo.rule.ref ? [" through rule ", h("a", { href: `#/executions?rule=${enc(ctxInfo.rule.ref)}&all=1` }, ctxInfo.rule.ref)] : null);
    const final = isFinal(ex.status);
    // What the user's roles do not allow is not offered.
    const mayStop = canOnExecution("execution_stop", ex.action.ref);
    cancelBtn.hidden = final || !mayStop;
    pauseBtn.hidden = !isWorkflow || final || !["running", "resuming"].includes(ex.status) || !mayStop;
    resumeBtn.hidden = !isWorkflow || !["paused", "pausing"].includes(ex.status) || !mayStop;
    rerunBtn.hidden = !canOnExecution("execution_re_run", ex.action.ref);
    runAgain.hidden = !can("action_execute", uidOf("action", ex.action.ref));
    el.querySelector(".live-note").textContent = final ? "" : "live";
    const rerunOf = ctxInfo["re-run"] && ctxInfo["re-run"].ref;
    clear(details, kv([
      ["Action", h("a", { href: `#/actions/${enc(ex.action.ref)}`, class: "mono" }, ex.action.ref)],
      ["Runner", h("span", { class: "mono" }, runnerName)],
      ["Status", statusBadge(ex.status)],
      ["Id", h("span", { class: "mono" }, ex.id)],
      ["Started", fmtTime(ex.start_timestamp)],
      ["Ended", ex.end_timestamp ? fmtTime(ex.end_timestamp) : "—"],
      ["Duration", h("span", { id: "duration" }, took(ex))],
      ["User", ctxInfo.user || "—"],
      ex.parent && ["Parent", h("a", { href: `#/executions/${ex.parent}`, class: "mono" }, ex.parent)],
      ctxInfo.workflow && ctxInfo.workflow.task && ["Task", ctxInfo.workflow.task],
      ctxInfo.rule && ["Rule", h("a", { href: `#/executions?rule=${enc(ctxInfo.rule.ref)}&all=1` }, ctxInfo.rule.ref)],
      ctxInfo.trigger_instance && ctxInfo.trigger_instance.id && ["Trigger instance", h("span", { class: "mono" }, ctxInfo.trigger_instance.id)],
      rerunOf && ["Re-run of", h("a", { href: `#/executions/${rerunOf}`, class: "mono" }, rerunOf)],
      ctxInfo.canceled_by && ["Canceled by", ctxInfo.canceled_by],
      ctxInfo.responded_by && ["Answered by", ctxInfo.responded_by],
    ]));
    const p = ex.parameters || {};
    clear(params, Object.keys(p).length
      ? kv(Object.keys(p).sort().map((k) => [k, paramValue(p[k])]))
      : h("p", { class: "muted" }, "None."));
    const hasResult = ex.result && (typeof ex.result !== "object" || Object.keys(ex.result).length);
    clear(result, hasResult ? jsonView(ex.result) : h("p", { class: "muted" }, final ? "No result." : "Not finished yet."));
    clear(log, table({
      columns: [
        { title: "Status", value: (e) => statusBadge(e.status) },
        { title: "At", value: (e) => fmtTime(e.timestamp) },
        { title: "After", value: (e) => duration(between(ex.start_timestamp, e.timestamp)) },
      ],
      rows: ex.log || [],
    }));
    if (runnerName === "inquirer") showInquiries([ex]);
    if (final && !wasFinal && outputLoaded) {
      // If the stream missed some output (it reconnects by itself), the stored output has it.
      api(`/api/v1/executions/${enc(id)}/output`, { params: { output_format: "json" } }).then((chunks) => {
        if (chunks.reduce((n, c) => n + c.data.length, 0) > output.length()) output.reset(chunks);
      }).catch(() => {});
    }
    if (final && !wasFinal) {
      if (REMOTE_RUNNERS.has(runnerName)) loadHosts().catch(() => {});
    }
  }

  async function showInquiries(candidates) {
    const waiting = candidates.filter((c) => c.status === "pending" && ((c.runner && c.runner.name) || c.action?.runner_type) === "inquirer");
    const ids = new Set(waiting.map((c) => c.id));
    for (const [qid, node] of inquiryForms) {
      if (!ids.has(qid) && !node.dataset.answered) { node.remove(); inquiryForms.delete(qid); }
    }
    for (const c of waiting) {
      if (inquiryForms.has(c.id)) continue;
      const node = h("div", { class: "inquiry", "data-inquiry": c.id });
      inquiryForms.set(c.id, node);
      inquiriesPanel.append(node);
      try {
        const inquiry = await api(`/api/v1/inquiries/${enc(c.id)}`);
        const task = c.context && c.context.workflow && c.context.workflow.task;
        node.append(
          h("p", { class: "muted" }, task ? ["Task ", h("strong", {}, task), " asks. "] : null,
            h("a", { href: `#/inquiries/${c.id}` }, "The inquiry's page")),
          inquiryForm(inquiry, () => { node.dataset.answered = "1"; }));
      } catch (err) {
        node.append(h("p", { class: "muted" }, err.message || String(err)));
      }
    }
    inquiriesPanel.hidden = inquiryForms.size === 0;
  }

  async function loadChildren() {
    const kids = await api(`/api/v1/executions/${enc(id)}/children`);
    childrenPanel.hidden = kids.length === 0;
    clear(childrenList, table({
      columns: [
        { title: isWorkflow ? "Task" : "Action", value: (c) => (c.context && c.context.workflow && c.context.workflow.task) || c.action.ref },
        { title: "Action", value: (c) => h("span", { class: "mono" }, c.action.ref) },
        { title: "Status", value: (c) => statusBadge(c.status) },
        { title: "Started", value: (c) => when(c.start_timestamp) },
        { title: "Took", value: (c) => took(c) },
      ],
      rows: kids,
      href: (c) => `#/executions/${c.id}`,
    }));
    showInquiries(kids);
  }

  async function loadHosts() {
    const data = await api(`/api/v1/executions/${enc(id)}/hosts`, { params: { limit: 1000 } });
    if (!data || !data.summary || !data.summary.total) return;
    hostsPanel.hidden = false;
    const counts = Object.entries(data.summary).filter(([k]) => k !== "total");
    const firstLine = (text) => String(text || "").split("\n")[0].slice(0, 160);
    clear(hostsList,
      h("p", { class: "row" }, `${data.summary.total} hosts: `, counts.map(([k, v]) => [statusBadge(k), ` ${v} `])),
      table({
        columns: [
          { title: "Host", value: (r) => h("span", { class: "mono" }, r.host) },
          { title: "Status", value: (r) => statusBadge(r.status) },
          { title: "Exit", value: (r) => (r.result && r.result.return_code !== undefined ? String(r.result.return_code) : "—") },
          { title: "Output", value: (r) => h("span", { class: "mono" }, firstLine(r.result && (r.result.error || r.result.stderr || r.result.stdout))) },
        ],
        rows: data.hosts || [],
      }),
      data.summary.total > (data.hosts || []).length ? h("p", { class: "muted" }, `The first ${(data.hosts || []).length} hosts are shown.`) : null);
  }

  async function toggleRerun() {
    const open = rerunPanel.hidden;
    rerunPanel.hidden = !open;
    rerunBtn.setAttribute("aria-expanded", String(open));
    if (!open) return;
    clear(rerunPanel, h("h2", {}, "Re-run with these parameters"), h("p", { class: "loading" }, "Loading the parameters…"));
    try {
      const view = await api(`/api/v1/actions/views/parameters/${enc(ex.action.ref)}`);
      const schema = view.parameters || {};
      // Secrets come back masked: left empty, the re-run keeps the old value.
      const initial = {};
      for (const [k, v] of Object.entries(ex.parameters || {})) {
        if (!(schema[k] && schema[k].secret)) initial[k] = v;
      }
      const { element, form } = parametersForm({
        parameters: schema,
        initial,
        submitLabel: "Re-run",
        note: Object.values(schema).some((p) => p.secret)
          ? h("p", { class: "help" }, "Secret fields left empty keep the value of this execution.") : null,
        onSubmit: async (values) => {
          const next = await api(`/api/v1/executions/${enc(id)}/re_run`, { method: "POST", body: { parameters: values } });
          location.hash = `#/executions/${next.id}`;
        },
      });
      clear(rerunPanel, h("h2", {}, "Re-run with these parameters"), element);
      Object.values(form.fields)[0]?.input.focus();
    } catch (err) {
      clear(rerunPanel, h("p", { class: "error-text", role: "alert" }, err.message || String(err)));
    }
  }

  // A newer state of this execution has a longer log.
  const newer = (next) => (next.log || []).length >= (ex.log || []).length;
  apply(ex);
  missed.filter(newer).forEach(apply);

  // Live: this execution, and its children.
  let gone = false;
  ctx.cleanup(() => { gone = true; });
  const refreshChildren = throttle(() => { if (!gone) loadChildren().catch(() => {}); }, 700);
  onUpdate = (next) => {
    if (next.id === id) { if (newer(next)) apply(next); } else if (next.parent === id) refreshChildren();
  };
  ctx.cleanup(stream.on("st2.execution__create", (next) => { if (next.parent === id) refreshChildren(); }));
  let polls = 0;
  const ticker = setInterval(() => {
    if (isFinal(ex.status)) return;
    const d = el.querySelector("#duration");
    if (d) d.textContent = took(ex);
    // In case the stream dropped a change (it reconnects by itself), look every 5 s.
    if (++polls % 5 === 0) {
      api(`/api/v1/executions/${enc(id)}`).then((next) => { if (newer(next)) apply(next); }).catch(() => {});
    }
  }, 1000);
  ctx.cleanup(() => clearInterval(ticker));

  await loadOutput().catch((err) => {
    outputLoaded = true;
    output.element.append(h("p", { class: "error-text" }, err.message || String(err)));
  });
  if (isWorkflow || (ex.children && ex.children.length)) await loadChildren().catch(() => {});
  if (REMOTE_RUNNERS.has(runnerName)) {
    await loadHosts().catch(() => {});
    const poll = setInterval(() => { if (!isFinal(ex.status)) loadHosts().catch(() => {}); }, 2000);
    ctx.cleanup(() => clearInterval(poll));
  }
  if (isWorkflow) {
    try {
      const m = await import("./workflow.js");
      graphPanel.append(m.workflowGraph(id, ctx));
    } catch (err) {
      graphPanel.append(h("p", { class: "muted" }, "The workflow's graph cannot be shown here."));
    }
  }
}, { title: "Execution" });

