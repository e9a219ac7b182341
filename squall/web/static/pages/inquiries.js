// Inquiries: the questions waiting for a person (core.ask, usually inside a
// workflow), and a form per inquiry made from its response schema.
// inquiryForm() is also used by the execution and rollout pages.

import {
  api, h, clear, route, addNav, setQuery, stream, throttle, table, pager, schemaForm,
  parameterErrors, ago, fmtTime, ApiError,
} from "../app.js";

addNav("Inquiries", "#/inquiries", 30);

const enc = encodeURIComponent;
const PAGE = 50;

/**
 * An inquiry's JSON schema as the parameters schemaForm() takes: each
 * property a field (boolean a checkbox, enum a choice, numbers, strings,
 * objects and arrays as JSON); required from the schema's `required` list or
 * the property's own `required: true` (StackStorm's form).
 */
export function schemaToParameters(schema) {
  const props = (schema && typeof schema === "object" && schema.properties) || {};
  const required = new Set(Array.isArray(schema && schema.required) ? schema.required : []);
  const out = {};
  Object.entries(props).forEach(([name, p], position) => {
    const prop = p && typeof p === "object" ? p : {};
    out[name] = {
      type: prop.type || "string",
      description: prop.description || prop.title || "",
      default: prop.default,
      enum: prop.enum,
      required: required.has(name) || prop.required === true,
      position,
    };
  });
  return out;
}

/** The question in a line: the descriptions of its fields, or their names. */
export function questionText(inquiry) {
  const props = (inquiry.schema && inquiry.schema.properties) || {};
  const parts = Object.entries(props).map(([name, p]) => (p && (p.description || p.title)) || name);
  return parts.join(" · ") || "(no fields)";
}

/**
 * The answer form of a pending inquiry. onDone(answer) is called once the
 * API accepted it. Schema errors the API reports are shown under the field
 * they name.
 */
export function inquiryForm(inquiry, onDone) {
  const parameters = schemaToParameters(inquiry.schema || {});
  const form = schemaForm(parameters);
  const names = Object.keys(form.fields);
  for (const [name, f] of Object.entries(form.fields)) {
    // Ids of this inquiry's own: a page may show several forms.
    const id = `q-${inquiry.id}-${name}`;
    const label = f.field.querySelector("label");
    const help = f.field.querySelector(`#f-${CSS.escape(name)}-help`);
    f.input.id = id;
    label.htmlFor = id;
    if (help) help.id = `${id}-help`;
    f.error.id = `${id}-error`;
    f.input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    // The question is the label; the field's name follows it, small.
    const text = parameters[name].description;
    if (!text) continue;
    clear(label, text, f.p.required ? " *" : "", " ", h("span", { class: "help mono" }, name));
    if (help) clear(help);
  }
  const formError = h("p", { class: "error-text form-error", role: "alert" });
  const done = h("p", { class: "ok-text", role: "status" });
  const submit = h("button", { type: "submit", class: "primary" }, "Send the answer");
  const element = h("form", {
    class: "inquiry-form",
    "data-inquiry": inquiry.id,
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      formError.textContent = "";
      const { values, errors } = form.values();
      // A checkbox is an answer either way: false is sent too.
      for (const [name, f] of Object.entries(form.fields)) {
        if (f.type === "boolean") values[name] = f.input.checked;
      }
      form.showErrors(errors);
      if (Object.keys(errors).length) {
        formError.textContent = "Some fields need attention: see the messages under them.";
        return;
      }
      submit.disabled = true;
      try {
        const answer = await api(`/api/v1/inquiries/${enc(inquiry.id)}`, {
          method: "PUT", body: { id: inquiry.id, response: values },
        });
        for (const f of Object.values(form.fields)) f.input.disabled = true;
        submit.hidden = true;
        done.textContent = "Answered. Thank you.";
        if (onDone) onDone(answer);
      } catch (err) {
        submit.disabled = false;
        const mapped = err instanceof ApiError && err.status === 400
          ? parameterErrors(err.message || "", names) : {};
        form.showErrors(mapped);
        // The API's rule says what is wrong (it already names the field).
        for (const [name, message] of Object.entries(mapped)) {
          form.fields[name].error.textContent = message.replace(/^field '[^']*' /, "");
        }
        formError.textContent = Object.keys(mapped).length
          ? "The answer does not fit the question: see the message under the field."
          : (err.message || String(err));
      }
    },
  },
  names.length ? form.element : h("p", { class: "muted" }, "The question has no fields: send an empty answer."),
  formError, done,
  h("div", { class: "row" }, submit));
  return element;
}

function whoMayAnswer(inquiry) {
  const users = inquiry.users || [], roles = inquiry.roles || [];
  if (!users.length && !roles.length) return "anyone";
  return [...users, ...roles.map((r) => `role ${r}`)].join(", ");
}

// -- the list ------------------------------------------------------------------------

route("/inquiries", async (_params, ctx) => {
  const { el } = ctx;
  el.classList.add("xpage");
  let offset = Math.max(0, Number(ctx.query.offset) || 0);
  const list = h("div", {});
  const count = h("span", { class: "muted", id: "inquiries-count", "aria-live": "polite" });
  el.append(h("div", { class: "row between" }, h("h1", {}, "Inquiries"), count),
    h("p", { class: "muted" }, "Questions that actions and workflows are waiting on, newest first."),
    list);
  let seq = 0;
  async function load() {
    const mine = ++seq;
    const [inquiries, executions] = await Promise.all([
      api("/api/v1/inquiries", { params: { limit: PAGE, offset } }),
      // The same list as executions, for when each was asked.
      api("/api/v1/executions", {
        params: { runner: "inquirer", status: "pending", limit: PAGE, offset, include_attributes: "id,start_timestamp,action.ref,context.user" },
      }),
    ]);
    if (mine !== seq) return;
    const asked = Object.fromEntries(executions.map((e) => [e.id, e]));
    count.textContent = inquiries.total === 1 ? "1 waiting" : `${inquiries.total ?? inquiries.length} waiting`;
    clear(list,
      table({
        columns: [
          { title: "Question", value: (i) => questionText(i) },
          { title: "Asked", value: (i) => (asked[i.id] ? h("time", { datetime: asked[i.id].start_timestamp, title: fmtTime(asked[i.id].start_timestamp) }, ago(asked[i.id].start_timestamp)) : "—") },
          { title: "Who may answer", value: (i) => whoMayAnswer(i) },
          { title: "Route", value: (i) => i.route || "—" },
          { title: "Workflow", value: (i) => (i.parent ? h("a", { href: `#/executions/${i.parent}`, class: "mono" }, i.parent) : "—") },
          { title: "Inquiry", value: (i) => h("span", { class: "mono" }, i.id) },
        ],
        rows: inquiries,
        href: (i) => `#/inquiries/${i.id}`,
        empty: "Nothing is waiting for an answer.",
      }),
      inquiries.total > PAGE ? pager({
        total: inquiries.total, limit: PAGE, offset,
        onPage: (o) => { offset = o; setQuery({ offset: o || "" }); load().catch(showError); },
      }) : null);
  }
  function showError(err) { clear(list, h("p", { class: "error-text", role: "alert" }, err.message || String(err))); }
  let gone = false;
  ctx.cleanup(() => { gone = true; });
  const refresh = throttle(() => { if (!gone) load().catch(showError); }, 1000);
  const onChange = (ex) => { if (ex && ex.runner && ex.runner.name === "inquirer") refresh(); };
  ctx.cleanup(stream.on("st2.execution__create", onChange));
  ctx.cleanup(stream.on("st2.execution__update", onChange));
  await load();
}, { title: "Inquiries" });

// -- one inquiry ------------------------------------------------------------------------

route("/inquiries/:id", async ({ id }, ctx) => {
  const { el } = ctx;
  el.classList.add("xpage");
  el.append(h("p", { class: "crumbs" }, h("a", { href: "#/inquiries" }, "Inquiries"), " / ", h("span", { class: "mono" }, id)));
  let inquiry;
  try {
    inquiry = await api(`/api/v1/inquiries/${enc(id)}`);
  } catch (err) {
    if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 409)) throw err;
    el.append(h("h1", {}, "Inquiry"),
      h("p", { class: "muted", role: "status" }, err.message),
      err.status === 409 ? h("p", {}, h("a", { href: `#/executions/${enc(id)}` }, "See its execution")) : null);
    return;
  }
  const execution = await api(`/api/v1/executions/${enc(id)}`, {
    params: { include_attributes: "id,start_timestamp,context,parent,action.ref" },
  }).catch(() => null);
  const started = execution && execution.start_timestamp;
  const expires = started && Number(inquiry.ttl) > 0 ? new Date(Date.parse(started) + Number(inquiry.ttl) * 60000) : null;
  const after = h("div", {});
  el.append(
    h("h1", {}, "A question is waiting for an answer"),
    h("div", { class: "grid-main" },
      h("section", { class: "panel", "aria-label": "answer" },
        inquiryForm(inquiry, () => {
          clear(after, h("p", {},
            h("a", { href: `#/executions/${inquiry.id}` }, "See the inquiry's execution"),
            inquiry.parent ? [" · ", h("a", { href: `#/executions/${inquiry.parent}` }, "the workflow")] : null,
            " · ", h("a", { href: "#/inquiries" }, "other inquiries")));
        }),
        after),
      h("aside", { class: "panel" },
        h("dl", { class: "kv" },
          h("dt", {}, "Inquiry"), h("dd", {}, h("a", { href: `#/executions/${inquiry.id}`, class: "mono" }, inquiry.id)),
          inquiry.parent ? [h("dt", {}, "Workflow"), h("dd", {}, h("a", { href: `#/executions/${inquiry.parent}`, class: "mono" }, inquiry.parent))] : null,
          h("dt", {}, "Asked"), h("dd", {}, started ? fmtTime(started) : "—"),
          h("dt", {}, "Expires"), h("dd", {}, expires ? fmtTime(expires.toISOString()) : "never"),
          h("dt", {}, "Who may answer"), h("dd", {}, whoMayAnswer(inquiry)),
          h("dt", {}, "Route"), h("dd", {}, inquiry.route || "—")))));
  const first = el.querySelector(".inquiry-form input, .inquiry-form select, .inquiry-form textarea");
  if (first) setTimeout(() => first.focus(), 0);
}, { title: "Inquiry" });
