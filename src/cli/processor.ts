// `bun run processor [--<group> ...]`: processor groups only; the flags are derived
// from the declared groups.
import { loadConfig } from "../config.js";
import { GROUPS } from "../groups/index.js";
import { selectGroups } from "../runtime/group.js";
import { Service, stopOnSignals } from "../service.js";
import { parse } from "./args.js";

const flags = GROUPS.flatMap((g) => [g.name, ...(g.aliases ?? [])]);
const HELP = `usage: bun run processor [${flags.map((f) => `--${f}`).join("] [")}] [--rebuild-state]

Runs processor groups; with no group named, all of them:
${GROUPS.map((g) => `  ${[g.name, ...(g.aliases ?? [])].map((f) => `--${f}`).join(", ").padEnd(28)} ${g.description}`).join("\n")}
--rebuild-state discards this instance's state of those groups first and rebuilds it
from the log (see "A log that went backwards").`;

const { values } = parse({ ...Object.fromEntries(flags.map((f) => [f, { type: "boolean" as const }])), "rebuild-state": { type: "boolean" } }, HELP);
const named = flags.filter((f) => (values as Record<string, unknown>)[f]);
const groups = selectGroups(GROUPS, named);
const service = Service.start(loadConfig(), { api: false, groups, rebuildState: Boolean(values["rebuild-state"]) });
stopOnSignals(service);
await service;
console.log(`processor running groups: ${groups.map((g) => g.name).join(", ")}`);
