// Every page module registers its routes and navigation entries when imported.
import "./executions.js";
import "./actions.js";
import "./inquiries.js";
import "./rollouts.js";
import "./workflow.js";
import "./rules.js";
import "./content.js";
import "./audit.js";
