// The datastore: keys and values. Secret values are never fetched in plain
// text here (the list never asks the API to decrypt), so they cannot show.

import { api, h, clear, route, addNav, setQuery, table, pager, statusBadge, fmtTime, busy, toast } from "../app.js";
import { enc, field, select, confirmButton, debounce } from "./content-kit.js";

addNav("Datastore", "#/datastore", 70);
route("/datastore", datastorePage, { title: "Datastore" });

const MASK = "••••••••";
const LIMIT = 50;
const MAX_TTL = 100 * 365 * 86400; // the API's limit
const SCOPES = [["", "All scopes"], ["st2kv.system", "System"], ["st2kv.user", "User (yours)"]];

function keyForm(onSaved) {
  const name = h("input", { id: "key-name", name: "name", autocomplete: "off", required: true, spellcheck: "false" });
  const value = h("textarea", { id: "key-value", name: "value", rows: 3, spellcheck: "false" });
  const secret = h("input", { id: "key-secret", name: "secret", type: "checkbox" });
  const ttl = h("input", { id: "key-ttl", name: "ttl", type: "number", min: 1, max: MAX_TTL, step: 1, placeholder: "never expires" });
  const scope = select({ id: "key-scope", name: "scope" }, [["st2kv.system", "System"], ["st2kv.user", "User (yours)"]]);
  const error = h("p", { class: "error-text", role: "alert" });
  const title = h("h2", { id: "key-form-title" }, "New key");
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  let editing = null;
  const form = h("form", {
    class: "panel key-form", "aria-labelledby": "key-form-title", hidden: true,
    onsubmit: (e) => {
      e.preventDefault();
      error.textContent = "";
      const keyName = name.value.trim();
      if (!keyName) { error.textContent = "A key needs a name."; name.focus(); return; }
      if (!value.value) { error.textContent = "A key needs a value."; value.focus(); return; }
      const body = { name: keyName, value: value.value, scope: scope.value, secret: secret.checked };
      if (editing && editing.user) body.user = editing.user;
      if (ttl.value !== "") {
        const seconds = Number(ttl.value);
        if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_TTL) {
          error.textContent = `TTL must be a whole number of seconds, from 1 to ${MAX_TTL}.`;
          ttl.focus();
          return;
        }
        body.ttl = seconds;
      }
      busy(save, async () => {
        try {
          await api(`/api/v1/keys/${enc(keyName)}`, { method: "PUT", body });
        } catch (err) {
          error.textContent = err.message;
          return;
        }
        toast(`${keyName} saved${body.secret ? " (secret)" : ""}`);
        close();
        onSaved(keyName);
      });
    },
  },
  title,
  field("Name", name, "Dots make a hierarchy (app.db.password); list them by prefix."),
  field("Value", value),
  h("div", { class: "field inline" }, h("label", { for: "key-secret" }, secret, " Secret"),
    h("div", { class: "help" }, "Stored encrypted; shown nowhere, readable by templates with decrypt_kv.")),
  field("TTL (seconds)", ttl, "The key is deleted this long after it is saved; empty keeps it."),
  field("Scope", scope),
  error,
  h("div", { class: "row" }, save, h("button", { type: "button", onclick: () => close() }, "Cancel")));

  function open(key) {
    editing = key || null;
    form.hidden = false;
    error.textContent = "";
    title.textContent = key ? `Edit ${key.name}` : "New key";
    name.value = key ? key.name : "";
    name.readOnly = !!key;
    // A secret's value is never read back: it can only be replaced.
    value.value = key && !key.secret ? String(key.value ?? "") : "";
    value.placeholder = key && key.secret ? "the secret's new value" : "";
    secret.checked = !!(key && key.secret);
    ttl.value = "";
    scope.value = key ? key.scope : "st2kv.system";
    scope.disabled = !!key;
    (key ? value : name).focus();
  }
  function close() { form.hidden = true; editing = null; value.value = ""; }
  return { form, open, close };
}

async function datastorePage(_params, ctx) {
  const { el, query } = ctx;
  let offset = Number(query.offset) || 0;
  const prefix = h("input", { id: "key-prefix", type: "search", value: query.prefix || "", autocomplete: "off", spellcheck: "false", placeholder: "e.g. app.db." });
  const scope = select({ id: "key-scope-filter" }, SCOPES, query.scope || "");
  const list = h("div", { class: "loading" }, "Loading…");
  const editor = keyForm((saved) => { if (prefix.value && !saved.startsWith(prefix.value)) prefix.value = ""; load(); });
  el.append(
    h("div", { class: "row between" }, h("h1", {}, "Datastore"),
      h("button", { class: "primary", onclick: () => editor.open(null) }, "New key")),
    editor.form,
    h("div", { class: "filters", role: "search" }, field("Prefix", prefix), field("Scope", scope)),
    list);

  async function load() {
    setQuery({ prefix: prefix.value, scope: scope.value, offset: offset || "" });
    // Never ?decrypt=true here: secret values stay encrypted and are not shown.
    const keys = await api("/api/v1/keys", { params: { prefix: prefix.value, scope: scope.value || "all", limit: LIMIT, offset } });
    list.classList.remove("loading");
    clear(list,
      table({
        rows: keys,
        empty: prefix.value ? `No key starts with ${prefix.value}.` : "The datastore is empty.",
        columns: [
          { title: "Name", value: (k) => h("span", { class: "mono" }, k.name) },
          {
            title: "Value",
            value: (k) => (k.secret
              ? h("span", { class: "secret-value", title: "a secret: its value is not shown" }, MASK, " ", statusBadge("secret"))
              : h("span", { class: "mono key-value" }, String(k.value ?? ""))),
          },
          { title: "Scope", value: (k) => `${k.scope.replace(/^st2kv\./, "")}${k.user ? ` (${k.user})` : ""}` },
          { title: "Expires", value: (k) => (k.expire_timestamp ? fmtTime(k.expire_timestamp) : h("span", { class: "muted" }, "never")) },
          {
            title: "",
            value: (k) => h("span", { class: "row nowrap" },
              h("button", { "aria-label": `Edit ${k.name}`, onclick: () => editor.open(k) }, "Edit"),
              confirmButton("Delete", `Delete ${k.name}?`, async () => {
                const params = { scope: k.scope, user: k.user };
                await busy(null, async () => {
                  await api(`/api/v1/keys/${enc(k.name)}`, { method: "DELETE", params });
                  toast(`${k.name} deleted`);
                  await load();
                });
              }, { "aria-label": `Delete ${k.name}` })),
          },
        ],
      }),
      keys.total > LIMIT || offset ? pager({ total: keys.total, limit: LIMIT, offset, onPage: (o) => { offset = o; load(); } }) : null);
  }
  prefix.addEventListener("input", debounce(() => { offset = 0; load(); }, 300));
  scope.addEventListener("change", () => { offset = 0; load(); });
  await load();
}
