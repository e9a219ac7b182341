// Placeholder: filled in by its page work.
import { route, addNav, h } from "../app.js";

addNav("Executions", "#/executions", 10);
route("/executions", (_params, ctx) => { ctx.el.append(h("h1", {}, "Executions")); }, { title: "Executions" });
