// Actions: the list (search by ref, pack or description) and the page that
// runs one, with a form made from its parameter schema (the runner's
// parameters merged with the action's, as the API gives them).

import {
  api, h, clear, route, addNav, setQuery, table, schemaForm, parameterErrors, ApiError, can, uidOf,
} from "../app.js";

addNav("Actions", "#/actions", 20);

const enc = encodeURIComponent;

/**
 * The fields a refused request is about. The API names the parameter of a
 * ParameterError ({faultstring, parameter, rule}); other messages name it
 * in their text.
 */
export function apiFieldErrors(err, names) {
  const body = err && err.body;
  if (body && typeof body === "object" && typeof body.parameter === "string" && names.includes(body.parameter)) {
    return { [body.parameter]: body.rule || err.message };
  }
  return parameterErrors((err && err.message) || "", names);
}

/**
 * A form for an action's parameters that checks what it can before sending
 * (required, numbers, JSON) and shows the API's refusals next to the field
 * they are about. onSubmit(values) sends; what it throws is shown.
 * Returns {element, form}.
 */
export function parametersForm({ parameters, initial = {}, submitLabel = "Run", onSubmit, note }) {
  const form = schemaForm(parameters, initial);
  const names = Object.keys(form.fields);
  const formError = h("p", { class: "error-text form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const element = h("form", {
    class: "run-form",
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      formError.textContent = "";
      const { values, errors } = form.values();
      form.showErrors(errors);
      if (Object.keys(errors).length) {
        formError.textContent = "Some fields need attention: see the messages under them.";
        return;
      }
      submit.disabled = true;
      try {
        await onSubmit(values);
      } catch (err) {
        const mapped = err instanceof ApiError && err.status === 400 ? apiFieldErrors(err, names) : {};
        form.showErrors(mapped);
        formError.textContent = Object.keys(mapped).length
          ? "The server refused a parameter: see the message under the field."
          : (err.message || String(err));
      } finally {
        submit.disabled = false;
      }
    },
  },
  names.length ? form.element : h("p", { class: "muted" }, "This action takes no parameters."),
  note,
  formError,
  h("div", { class: "row" }, submit));
  return { element, form };
}

// -- the list ------------------------------------------------------------------------

route("/actions", async (_params, ctx) => {
  const { el } = ctx;
  el.classList.add("xpage");
  const state = { q: ctx.query.q || "", pack: ctx.query.pack || "" };
  el.append(h("div", { class: "row between" }, h("h1", {}, "Actions")));
  const actions = await api("/api/v1/actions", {
    params: { limit: 0, include_attributes: "ref,pack,name,description,runner_type,enabled" },
  });
  actions.sort((a, b) => a.ref.localeCompare(b.ref));
  const packs = [...new Set(actions.map((a) => a.pack))].sort();
  const count = h("span", { class: "muted", "aria-live": "polite" });
  const list = h("div", {});
  const search = h("input", {
    id: "action-search", type: "search", value: state.q, placeholder: "ref, pack or description",
    oninput: () => { state.q = search.value; show(); },
  });
  const packSelect = h("select", {
    id: "action-pack",
    onchange: () => { state.pack = packSelect.value; show(); },
  }, h("option", { value: "" }, "All packs"), packs.map((p) => h("option", { value: p, selected: p === state.pack }, p)));
  el.append(
    h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "action-search" }, "Search"), search),
      h("div", { class: "field" }, h("label", { for: "action-pack" }, "Pack"), packSelect),
      count),
    list);

  function show() {
    setQuery({ q: state.q, pack: state.pack });
    const words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = actions.filter((a) => {
      if (state.pack && a.pack !== state.pack) return false;
      const text = `${a.ref} ${a.pack} ${a.description || ""}`.toLowerCase();
      return words.every((w) => text.includes(w));
    });
    count.textContent = `${rows.length} of ${actions.length}`;
    clear(list, table({
      columns: [
        { title: "Action", value: (a) => a.ref },
        { title: "Pack", value: (a) => a.pack },
        { title: "Runner", value: (a) => h("span", { class: "mono" }, a.runner_type) },
        { title: "Description", value: (a) => [a.enabled === false ? h("span", { class: "badge" }, "disabled") : null, " ", a.description || ""] },
      ],
      rows,
      href: (a) => `#/actions/${enc(a.ref)}`,
      empty: actions.length ? "No action matches." : "No actions: register a pack first.",
    }));
  }
  show();
  setTimeout(() => search.focus(), 0); // after the router focuses the page
}, { title: "Actions" });

// -- running one -----------------------------------------------------------------------

route("/actions/:ref", async ({ ref }, ctx) => {
  const { el } = ctx;
  el.classList.add("xpage");
  const [action, view] = await Promise.all([
    api(`/api/v1/actions/${enc(ref)}`),
    api(`/api/v1/actions/views/parameters/${enc(ref)}`),
  ]);
  const parameters = view.parameters || {};
  const { element, form } = parametersForm({
    parameters,
    submitLabel: "Run",
    note: action.enabled === false ? h("p", { class: "error-text" }, "This action is disabled: enable it before running it.") : null,
    onSubmit: async (values) => {
      const ex = await api("/api/v1/executions", { method: "POST", body: { action: action.ref, parameters: values } });
      location.hash = `#/executions/${ex.id}`;
    },
  });
  el.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/actions" }, "Actions"), " / ", action.pack),
    h("h1", {}, "Run ", h("span", { class: "mono" }, action.ref)),
    action.description ? h("p", { class: "lead" }, action.description) : null,
    h("div", { class: "grid-main" },
      h("section", { class: "panel", "aria-label": "parameters" },
        can("action_execute", uidOf("action", action.ref))
          ? element
          : h("p", { class: "muted", id: "not-allowed" },
            "Your roles do not let you run this action (it needs the permission action_execute).")),
      h("aside", { class: "panel" },
        h("dl", { class: "kv" },
          h("dt", {}, "Pack"), h("dd", {}, action.pack),
          h("dt", {}, "Runner"), h("dd", { class: "mono" }, action.runner_type),
          action.entry_point ? [h("dt", {}, "Entry point"), h("dd", { class: "mono" }, action.entry_point)] : null,
          h("dt", {}, "Enabled"), h("dd", {}, action.enabled === false ? "no" : "yes")),
        h("p", {}, h("a", { href: `#/executions?action=${enc(action.ref)}&all=1` }, "Its executions")))));
  const first = Object.values(form.fields)[0];
  if (first) setTimeout(() => first.input.focus(), 0); // after the router focuses the page
}, { title: "Run an action" });
