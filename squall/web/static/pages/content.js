// Placeholder: filled in by its page work.
import { route, addNav, h } from "../app.js";
