// A workflow's graph: its tasks as boxes, its transitions as arrows labelled
// with their conditions, each task coloured by the state of its last
// instance, live. Under it, the task instances as a table (the same facts,
// for screen readers and for copying). workflowGraph() is what the execution
// page embeds; #/executions/:id/workflow shows it on a page of its own.

import {
  api, h, svg, clear, route, stream, throttle, table, statusBadge, fmtTime, duration, between,
} from "../app.js";

const NODE_H = 46;
const LAYER_GAP = 70; // vertical room between layers, for the arrows and their labels
const NODE_GAP = 36; // horizontal room between two boxes of a layer
const DUMMY_W = 14; // the width a long edge takes in the layers it crosses
const MARGIN = 20;
const LABEL_CHARS = 24;

// The commands Orquesta accepts in `do` besides task names.
const COMMANDS = new Set(["fail", "noop", "continue", "retry"]);

let graphs = 0; // to give each drawing's arrowhead its own id

/** The condition as written, without its <% %> or {{ }} wrapper. */
export function shortCondition(when) {
  if (when === undefined || when === null || when === "") return "";
  let text = String(when).trim();
  const m = /^(<%|\{\{)([\s\S]*?)(%>|\}\})$/.exec(text);
  if (m) text = m[2].trim();
  return text.length > LABEL_CHARS ? `${text.slice(0, LABEL_CHARS - 1)}…` : text;
}

function nodeWidth(name) {
  // Wide enough for the state line too ("running · 12/40 items").
  return Math.max(136, Math.min(220, Math.round(String(name).length * 7.4) + 30));
}

function truncate(text, width, perChar = 7.2) {
  const max = Math.max(4, Math.floor((width - 14) / perChar));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// -- the layout -------------------------------------------------------------------------

/**
 * Lay a graph out in layers, top to bottom: a task's layer is the longest
 * path to it from the start tasks, back edges (those closing a cycle) left
 * out; edges longer than one layer pass through placeholders, so that the
 * ordering within each layer (a few barycenter sweeps, the order with the
 * fewest crossings kept) sees them. Returns the nodes with x, y and the
 * edges with their points.
 */
export function layout(graph) {
  const nodes = new Map();
  const addNode = (id, kind) => {
    if (!nodes.has(id)) nodes.set(id, { id, kind, width: kind === "command" ? Math.max(64, Math.round(id.length * 7.4) + 30) : nodeWidth(id) });
    return nodes.get(id);
  };
  for (const t of graph.tasks || []) addNode(t.id, "task");
  const edges = [];
  for (const tr of graph.transitions || []) {
    if (!nodes.has(tr.from)) addNode(tr.from, "task");
    if (!nodes.has(tr.to)) addNode(tr.to, COMMANDS.has(tr.to) ? "command" : "task");
    edges.push({ from: tr.from, to: tr.to, when: tr.when, index: tr.index });
  }
  const out = new Map([...nodes.keys()].map((id) => [id, []]));
  for (const e of edges) out.get(e.from).push(e);

  // Back edges: an edge to a node still on the depth-first path closes a cycle.
  const state = new Map(); // 1: on the path, 2: done
  const visit = (id) => {
    state.set(id, 1);
    for (const e of out.get(id)) {
      const s = state.get(e.to);
      if (s === 1) e.back = true;
      else if (!s) visit(e.to);
    }
    state.set(id, 2);
  };
  const starts = (graph.start || []).filter((id) => nodes.has(id));
  for (const id of starts) if (!state.get(id)) visit(id);
  // Tasks no start task reaches: those without a way in first.
  const indegree = new Map([...nodes.keys()].map((id) => [id, 0]));
  for (const e of edges) if (e.from !== e.to) indegree.set(e.to, indegree.get(e.to) + 1);
  for (const id of nodes.keys()) if (!state.get(id) && indegree.get(id) === 0) visit(id);
  for (const id of nodes.keys()) if (!state.get(id)) visit(id);

  // Layers: the longest path, in topological order of the forward edges.
  const forward = edges.filter((e) => !e.back);
  const remaining = new Map([...nodes.keys()].map((id) => [id, 0]));
  for (const e of forward) remaining.set(e.to, remaining.get(e.to) + 1);
  const queue = [...nodes.keys()].filter((id) => remaining.get(id) === 0);
  const layerOf = new Map(queue.map((id) => [id, 0]));
  while (queue.length) {
    const id = queue.shift();
    for (const e of forward) {
      if (e.from !== id) continue;
      layerOf.set(e.to, Math.max(layerOf.get(e.to) ?? 0, layerOf.get(id) + 1));
      remaining.set(e.to, remaining.get(e.to) - 1);
      if (remaining.get(e.to) === 0) queue.push(e.to);
    }
  }
  for (const id of nodes.keys()) if (!layerOf.has(id)) layerOf.set(id, 0);

  // The layers' members, placeholders for long edges included.
  const depth = Math.max(0, ...layerOf.values()) + 1;
  const layers = Array.from({ length: depth }, () => []);
  for (const [id, n] of nodes) { n.layer = layerOf.get(id); layers[n.layer].push(n); }
  const links = []; // adjacent-layer links, for ordering
  let dummies = 0;
  for (const e of forward) {
    const a = nodes.get(e.from), b = nodes.get(e.to);
    e.chain = [a];
    for (let l = a.layer + 1; l < b.layer; l++) {
      const d = { id: `\u0000${dummies++}`, kind: "dummy", width: DUMMY_W, layer: l };
      layers[l].push(d);
      e.chain.push(d);
    }
    e.chain.push(b);
    for (let i = 1; i < e.chain.length; i++) links.push([e.chain[i - 1], e.chain[i]]);
  }

  // Ordering: barycenter sweeps down and up; keep the order with the fewest crossings.
  const position = () => { for (const layer of layers) layer.forEach((n, i) => { n.pos = i; }); };
  const crossings = () => {
    let count = 0;
    for (let l = 0; l + 1 < depth; l++) {
      const between_ = links.filter(([a]) => a.layer === l);
      for (let i = 0; i < between_.length; i++) {
        for (let j = i + 1; j < between_.length; j++) {
          const [a1, b1] = between_[i], [a2, b2] = between_[j];
          if ((a1.pos - a2.pos) * (b1.pos - b2.pos) < 0) count++;
        }
      }
    }
    return count;
  };
  position();
  let best = layers.map((layer) => [...layer]), fewest = crossings();
  const sweep = (down) => {
    const order = down ? [...Array(depth).keys()].slice(1) : [...Array(depth).keys()].reverse().slice(1);
    for (const l of order) {
      const layer = layers[l];
      const neighbour = new Map(layer.map((n) => [n, []]));
      for (const [a, b] of links) {
        if (down && b.layer === l && neighbour.has(b)) neighbour.get(b).push(a.pos);
        if (!down && a.layer === l && neighbour.has(a)) neighbour.get(a).push(b.pos);
      }
      const key = new Map(layer.map((n) => {
        const ps = neighbour.get(n);
        return [n, ps.length ? ps.reduce((s, p) => s + p, 0) / ps.length : n.pos];
      }));
      layer.sort((x, y) => key.get(x) - key.get(y) || x.pos - y.pos);
      layer.forEach((n, i) => { n.pos = i; });
    }
  };
  for (let round = 0; round < 4 && fewest > 0; round++) {
    sweep(round % 2 === 0);
    const now = crossings();
    if (now < fewest) { fewest = now; best = layers.map((layer) => [...layer]); }
  }
  for (let l = 0; l < depth; l++) layers[l] = best[l];
  position();

  // Coordinates: each layer centred on the widest.
  const widthOf = (layer) => layer.reduce((s, n) => s + n.width, 0) + NODE_GAP * Math.max(0, layer.length - 1);
  const widest = Math.max(0, ...layers.map(widthOf));
  layers.forEach((layer, l) => {
    let x = MARGIN + (widest - widthOf(layer)) / 2;
    for (const n of layer) {
      n.x = x + n.width / 2; // the centre
      n.y = MARGIN + l * (NODE_H + LAYER_GAP) + NODE_H / 2;
      x += n.width + NODE_GAP;
    }
  });

  // Back edges go round the right of the drawing, each a little further out.
  const backs = edges.filter((e) => e.back);
  const right = MARGIN + widest;
  backs.forEach((e, i) => { e.lane = right + 26 + i * 18; });
  // Parallel forward edges (one pair of tasks, several conditions) fan out.
  const pairs = new Map();
  for (const e of forward) {
    const k = `${e.from}\u0000${e.to}`;
    if (!pairs.has(k)) pairs.set(k, []);
    pairs.get(k).push(e);
  }
  for (const group of pairs.values()) group.forEach((e, i) => { e.spread = (i - (group.length - 1) / 2) * 22; });

  return {
    nodes: [...nodes.values()],
    edges,
    // Back edges' lanes and their labels need room on the right.
    width: widest + MARGIN * 2 + (backs.length ? 30 + backs.length * 18 + 160 : 0),
    height: MARGIN * 2 + depth * NODE_H + (depth - 1) * LAYER_GAP,
    crossings: fewest,
  };
}

function edgePath(e) {
  const top = (n) => ({ x: n.x, y: n.y - NODE_H / 2 });
  const bottom = (n) => ({ x: n.x, y: n.y + NODE_H / 2 });
  if (e.back) {
    const a = e.chainFrom, b = e.chainTo;
    const sx = a.x + a.width / 2, tx = b.x + b.width / 2;
    const sy = a.y + (a === b ? -8 : 0), ty = b.y + (a === b ? 8 : 0);
    const d = `M ${sx} ${sy} C ${e.lane} ${sy}, ${e.lane} ${ty}, ${tx + 2} ${ty}`;
    // The label goes right of the lane, outside the drawing.
    return { d, curve: null, label: { x: 0.75 * e.lane + 0.125 * (sx + tx) + 4, y: (sy + ty) / 2 + 4, anchor: "start" } };
  }
  const pts = e.chain.map((n, i) => {
    if (n.kind === "dummy") return [{ x: n.x, y: n.y - NODE_H / 2 }, { x: n.x, y: n.y + NODE_H / 2 }];
    return i === 0 ? [bottom(n)] : [top(n)];
  }).flat();
  const spread = e.spread || 0;
  pts[0] = { x: pts[0].x + spread / 2, y: pts[0].y };
  let d = `M ${pts[0].x} ${pts[0].y}`;
  const bend = LAYER_GAP / 2;
  let curve = null;
  for (let i = 1; i < pts.length; i++) {
    const p = pts[i - 1], q = pts[i];
    if (i % 2 === 0 && e.chain.length > 2) { d += ` L ${q.x} ${q.y}`; continue; } // through a placeholder
    const end = { x: q.x, y: i === pts.length - 1 ? q.y - 2 : q.y };
    const c1 = { x: p.x + spread, y: p.y + bend }, c2 = { x: q.x + spread, y: q.y - bend };
    d += ` C ${c1.x} ${c1.y}, ${c2.x} ${c2.y}, ${end.x} ${end.y}`;
    if (!curve) curve = [p, c1, c2, end];
  }
  return { d, curve, label: null };
}

function bezier([p0, p1, p2, p3], t) {
  const u = 1 - t;
  const at = (k) => u * u * u * p0[k] + 3 * u * u * t * p1[k] + 3 * u * t * t * p2[k] + t * t * t * p3[k];
  return { x: at("x"), y: at("y") };
}

/** Where a label goes: on the first stretch of its edge, where it overlaps
 * neither a box nor a label already placed (the middle if nowhere is free). */
function placeLabel(curve, text, taken) {
  const w = text.length * 6.2 + 8, hgt = 15;
  const boxAt = (pt) => ({ x0: pt.x - w / 2, x1: pt.x + w / 2, y0: pt.y - hgt / 2, y1: pt.y + hgt / 2 });
  const free = (b) => !taken.some((o) => b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1);
  let choice = null;
  for (const t of [0.5, 0.34, 0.66, 0.22, 0.78]) {
    const box = boxAt(bezier(curve, t));
    if (free(box)) { choice = box; break; }
  }
  choice = choice || boxAt(bezier(curve, 0.5));
  taken.push(choice);
  return { x: (choice.x0 + choice.x1) / 2, y: choice.y1 - 4, anchor: "middle" };
}

// -- drawing --------------------------------------------------------------------------

const RUNNING = new Set(["running", "scheduled", "requested", "delayed", "canceling", "pausing", "resuming"]);

/** The state class of a task: its last instance's status, or "none" before it runs. */
function stateClass(status) {
  if (!status) return "none";
  if (status === "succeeded") return "succeeded";
  if (["failed", "timeout", "abandoned"].includes(status)) return "failed";
  if (RUNNING.has(status)) return "running";
  if (["pending", "paused"].includes(status)) return "pending";
  if (status === "canceled") return "canceled";
  return "none";
}

function draw(laid, marker) {
  const root = svg("svg", {
    class: "wf-svg",
    width: laid.width,
    height: laid.height,
    viewBox: `0 0 ${laid.width} ${laid.height}`,
    role: "group",
    "aria-label": "workflow graph",
  });
  root.append(svg("defs", {},
    svg("marker", { id: marker, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "wf-arrowhead" }))));
  const byId = new Map(laid.nodes.map((n) => [n.id, n]));
  const edgeLayer = svg("g", { class: "wf-edges" });
  const labelLayer = svg("g", { class: "wf-labels" });
  const taken = laid.nodes.filter((n) => n.kind !== "dummy").map((n) => (
    { x0: n.x - n.width / 2, x1: n.x + n.width / 2, y0: n.y - NODE_H / 2, y1: n.y + NODE_H / 2 }));
  for (const e of laid.edges) {
    e.chainFrom = byId.get(e.from);
    e.chainTo = byId.get(e.to);
    const { d, curve, label: beside } = edgePath(e);
    let label = beside;
    const full = e.when ? String(e.when) : "always";
    const g = svg("g", { class: `wf-edge${e.back ? " back" : ""}`, "data-from": e.from, "data-to": e.to },
      svg("title", {}, `${e.from} → ${e.to}: ${full}`),
      svg("path", { d, "marker-end": `url(#${marker})` }));
    edgeLayer.append(g);
    const text = shortCondition(e.when);
    if (text && curve) label = placeLabel(curve, text, taken);
    if (text) {
      labelLayer.append(svg("g", { class: "wf-label-g" }, svg("title", {}, full),
        svg("text", { x: label.x, y: label.y, "text-anchor": label.anchor, class: "wf-label" }, text)));
    }
  }
  const nodeLayer = svg("g", { class: "wf-nodes" });
  const nodeEls = new Map();
  for (const n of laid.nodes) {
    if (n.kind === "dummy") continue;
    const x = n.x - n.width / 2, y = n.y - NODE_H / 2;
    const title = svg("title", {}, n.id);
    const status = svg("text", { x: n.x, y: n.y + 13, "text-anchor": "middle", class: "wf-status" }, "");
    const g = svg(n.kind === "command" ? "g" : "a", {
      class: `wf-node ${n.kind} none`,
      "data-task": n.id,
      "data-status": "",
    },
    title,
    svg("rect", { x, y, width: n.width, height: NODE_H, rx: n.kind === "command" ? NODE_H / 2 : 6 }),
    svg("text", { x: n.x, y: n.kind === "command" ? n.y + 4 : n.y - 3, "text-anchor": "middle", class: "wf-name" }, truncate(n.id, n.width)),
    n.kind === "command" ? null : status);
    nodeEls.set(n.id, { g, title, status, node: n });
    nodeLayer.append(g);
  }
  root.append(edgeLayer, nodeLayer, labelLayer);
  return { root, nodeEls };
}

/** The last instance of each top-level task, by name. */
function lastInstances(tasks) {
  const last = new Map();
  for (const t of tasks) if (!t.depth) last.set(t.task, t);
  return last;
}

function taskNote(t) {
  if (!t) return "not started";
  const parts = [t.status || "—"];
  if (t.items) parts.push(`${t.items.done}/${t.items.total} items`);
  else if (t.executions > 1) parts.push(`${t.executions} runs`);
  return parts.join(" · ");
}

function paint(nodeEls, tasks) {
  const last = lastInstances(tasks);
  for (const [id, el] of nodeEls) {
    if (el.node.kind === "command") continue;
    const t = last.get(id);
    const cls = stateClass(t && t.status);
    el.g.setAttribute("class", `wf-node task ${cls}`);
    el.g.dataset.status = t ? t.status || "" : "";
    el.status.textContent = truncate(taskNote(t), el.node.width, 6.1);
    el.title.textContent = `${id}: ${taskNote(t)}${t && t.execution_id ? " (open its execution)" : ""}`;
    if (t && t.execution_id) {
      el.g.setAttribute("href", `#/executions/${t.execution_id}`);
      el.g.setAttribute("aria-label", `task ${id}: ${taskNote(t)}`);
      el.g.removeAttribute("tabindex");
      el.g.removeAttribute("role");
    } else {
      el.g.removeAttribute("href");
      // Still reachable with the keyboard, to read its state.
      el.g.setAttribute("tabindex", "0");
      el.g.setAttribute("role", "img");
      el.g.setAttribute("aria-label", `task ${id}: not started`);
    }
  }
}

function tasksTable(tasks) {
  return table({
    columns: [
      {
        title: "Task",
        value: (t) => {
          const name = h("span", { class: "wf-task-name" }, t.task || "—");
          if (t.depth) name.style.paddingLeft = `${t.depth * 1.2}em`;
          return name;
        },
      },
      { title: "Status", value: (t) => statusBadge(t.status) },
      {
        title: "Execution",
        value: (t) => (t.execution_id
          ? h("a", { href: `#/executions/${t.execution_id}`, class: "mono" }, t.execution_id)
          : h("span", { class: "muted" }, "—")),
      },
      { title: "Runs", value: (t) => (t.items ? `${t.items.done}/${t.items.total} items` : String(t.executions ?? 0)) },
      { title: "Started", value: (t) => fmtTime(t.start_timestamp) },
      { title: "Duration", value: (t) => duration(between(t.start_timestamp, t.end_timestamp)) },
    ],
    rows: tasks,
    empty: "No task has started yet.",
  });
}

function legend() {
  return h("ul", { class: "wf-legend", "aria-label": "colours" },
    [["succeeded", "succeeded"], ["failed", "failed"], ["running", "running"], ["pending", "waiting"],
      ["canceled", "canceled"], ["none", "not started"]].map(([cls, text]) =>
      h("li", {}, h("span", { class: `wf-swatch ${cls}` }), text)));
}

/**
 * The graph of workflow execution `executionId`, kept up to date from the
 * event stream while it is on the page. ctx.cleanup(fn), when given, is
 * called to stop listening when the page is left.
 */
export function workflowGraph(executionId, ctx = {}) {
  const marker = `wf-arrow-${++graphs}`;
  const status = h("span", { class: "wf-overall" });
  const canvas = h("div", { class: "wf-graph", tabindex: "-1" }, h("p", { class: "loading" }, "Loading the workflow…"));
  const list = h("div", { class: "wf-tasks" });
  const error = h("p", { class: "error-text", role: "alert" });
  const root = h("section", { class: "wf", "data-execution": executionId, "aria-label": "workflow" },
    h("div", { class: "row between wf-head" }, h("div", { class: "row" }, h("span", { class: "muted" }, "Workflow"), status), legend()),
    error, canvas,
    h("h3", {}, "Task instances"), list);

  let drawn = null, shape = "", seq = 0, rendered = false;
  const known = new Set([executionId]);

  function render(view) {
    const graphKey = JSON.stringify(view.graph || {});
    if (graphKey !== shape || !drawn) {
      shape = graphKey;
      if (!(view.graph && view.graph.tasks && view.graph.tasks.length)) {
        drawn = { root: null, nodeEls: new Map() };
        clear(canvas, h("p", { class: "muted" }, "This workflow's definition cannot be drawn."));
      } else {
        const laid = layout(view.graph);
        drawn = draw(laid, marker);
        root.dataset.nodes = String(laid.nodes.filter((n) => n.kind !== "dummy").length);
        root.dataset.edges = String(laid.edges.length);
        clear(canvas, drawn.root);
      }
    }
    paint(drawn.nodeEls, view.tasks || []);
    clear(status, statusBadge(view.status));
    for (const t of view.tasks || []) if (t.execution_id) known.add(t.execution_id);
    clear(list, tasksTable(view.tasks || []));
    root.dataset.status = view.status || "";
    rendered = true;
  }

  async function load() {
    const mine = ++seq;
    try {
      const view = await api(`/api/v1/executions/${encodeURIComponent(executionId)}/workflow`);
      if (mine !== seq) return;
      error.textContent = "";
      render(view);
    } catch (err) {
      if (mine !== seq) return;
      error.textContent = err.message || String(err);
      if (!rendered) clear(canvas);
    }
  }

  const refresh = throttle(load, 500);
  const onEvent = (e) => {
    if (!ctx.cleanup && rendered && !root.isConnected) { stop(); return; }
    if (!e) return;
    const parent = e.parent || (e.context && e.context.parent && e.context.parent.execution_id);
    if (e.id === executionId || known.has(e.id) || (parent && known.has(parent))) refresh();
  };
  const offs = [stream.on("st2.execution__create", onEvent), stream.on("st2.execution__update", onEvent)];
  function stop() { for (const off of offs) off(); }
  if (ctx.cleanup) ctx.cleanup(stop);
  load();
  return root;
}

// -- the page of its own --------------------------------------------------------------------

route("/executions/:id/workflow", async ({ id }, ctx) => {
  const title = h("h1", {}, "Workflow");
  const sub = h("p", { class: "muted" }, h("a", { href: `#/executions/${encodeURIComponent(id)}` }, "← the execution"), " ", h("span", { class: "mono" }, id));
  const graph = workflowGraph(id, ctx);
  graph.classList.add("full");
  ctx.el.append(title, sub, graph);
  try {
    const ex = await api(`/api/v1/executions/${encodeURIComponent(id)}`);
    const ref = (ex.action && ex.action.ref) || (ex.liveaction && ex.liveaction.action);
    if (ref) { title.textContent = `Workflow ${ref}`; document.title = `${ref} · Workflow · Squall`; }
  } catch {
    // The graph says what is wrong.
  }
}, { title: "Workflow" });
