// Sensors: the pack sensors, whether they run, how often they crashed and
// why; enable or disable each.

import { api, h, clear, route, addNav, setQuery, table, statusBadge, fmtTime, ago, busy, toast } from "../app.js";
import { enc, field, debounce } from "./content-kit.js";

addNav("Sensors", "#/sensors", 60);
route("/sensors", sensorsPage, { title: "Sensors" });

const REFRESH_MS = 5000;

function problem(status) {
  const parts = [];
  if (status.reason && status.state !== "running" && status.state !== "starting") {
    parts.push(h("div", { class: status.state === "stopped" && status.exit_code === 0 ? "muted" : "error-text" }, status.reason));
  }
  if (status.state === "backoff" && status.next_start_at) {
    parts.push(h("div", { class: "muted" }, `restarts at ${fmtTime(status.next_start_at * 1000)}`
      + (status.failures ? ` (failure ${status.failures} in a row)` : "")));
  }
  if (status.last_error) {
    parts.push(h("details", { class: "peek" },
      h("summary", {}, "last error output"),
      h("pre", { class: "log" }, status.last_error)));
  }
  return parts.length ? h("div", {}, parts) : h("span", { class: "muted" }, "—");
}

async function sensorsPage(_params, ctx) {
  const { el, query } = ctx;
  const search = h("input", { id: "sensor-search", class: "wide-search", type: "search", value: query.q || "", autocomplete: "off", placeholder: "ref, pack or trigger type" });
  const list = h("div", { class: "loading" }, "Loading…");
  el.append(h("h1", {}, "Sensors"),
    h("p", { class: "muted" }, "Each enabled sensor runs in a process of its own; Squall restarts one that crashes, waiting longer each time."),
    h("div", { class: "filters", role: "search" }, field("Search", search)),
    list);
  let sensors = [];
  // Don't redraw under an open "last error" or a button being pressed.
  const openDetails = new Set();

  function show() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    setQuery({ q: search.value.trim() });
    list.classList.remove("loading");
    const rows = sensors.filter((s) => words.every((w) =>
      [s.ref, s.pack, s.description, ...(s.trigger_types || [])].join(" ").toLowerCase().includes(w)));
    const t = table({
      rows,
      empty: sensors.length ? "No sensor matches." : "No sensors: packs bring them (sensors/*.yaml).",
      columns: [
        { title: "Sensor", value: (s) => h("div", {}, h("span", { class: "mono" }, s.ref), s.description ? h("div", { class: "muted" }, s.description) : null) },
        {
          title: "Trigger types",
          value: (s) => h("div", {}, (s.trigger_types || []).map((t2) =>
            h("div", {}, h("a", { href: `#/triggerinstances?trigger=${enc(t2)}`, class: "mono" }, t2)))),
        },
        {
          title: "Enabled",
          value: (s) => {
            const b = h("button", {
              class: s.enabled ? "" : "primary",
              "aria-label": `${s.enabled ? "Disable" : "Enable"} ${s.ref}`,
              onclick: () => busy(b, async () => {
                const updated = await api(`/api/v1/sensortypes/${enc(s.ref)}`, { method: "PUT", body: { enabled: !s.enabled } });
                toast(`${updated.ref} is ${updated.enabled ? "enabled" : "disabled"}`);
                sensors = sensors.map((x) => (x.ref === updated.ref ? updated : x));
                show();
              }),
            }, s.enabled ? "Disable" : "Enable");
            return h("span", { class: "row nowrap" }, statusBadge(s.enabled ? "enabled" : "disabled"), b);
          },
        },
        {
          title: "Process",
          value: (s) => {
            const st = s.status || {};
            return h("div", {}, statusBadge(st.state),
              st.since ? h("div", { class: "muted small", title: fmtTime(st.since) }, `since ${ago(st.since)}`) : null,
              st.pid && st.state === "running" ? h("div", { class: "muted small" }, `pid ${st.pid}`) : null);
          },
        },
        { title: "Restarts", value: (s) => String(s.status?.restarts ?? 0) },
        { title: "Last failure", value: (s) => problem(s.status || {}) },
      ],
    });
    if (t.tagName === "TABLE") {
      t.querySelectorAll("tbody tr").forEach((tr, n) => {
        const ref = rows[n].ref;
        const d = tr.querySelector("details");
        if (!d) return;
        d.open = openDetails.has(ref);
        d.addEventListener("toggle", () => { if (d.open) openDetails.add(ref); else openDetails.delete(ref); });
      });
    }
    clear(list, t);
  }

  async function load() {
    sensors = await api("/api/v1/sensortypes");
    if (!list.contains(document.activeElement) || document.activeElement === document.body) show();
  }
  search.addEventListener("input", debounce(show, 150));
  const timer = setInterval(() => { load().catch(() => {}); }, REFRESH_MS);
  ctx.cleanup(() => clearInterval(timer));
  await load();
  show();
}
