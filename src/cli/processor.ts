// `bun run processor [--collector] [--detector] [--flagger]`: processor groups only.
import { loadConfig } from "../config.js";
import type { GroupName } from "../runtime/topology.js";
import { Service, stopOnSignals } from "../service.js";
import { parse } from "./args.js";

const HELP = `usage: bun run processor [--collector] [--detector] [--flagger]

Runs processor groups: --collector (balance), --detector (threshold), --flagger
(flagger). With no flag, all three.`;

const { values } = parse({
  collector: { type: "boolean" },
  detector: { type: "boolean" },
  flagger: { type: "boolean" },
}, HELP);
const chosen: GroupName[] = [];
if (values.collector) chosen.push("balance");
if (values.detector) chosen.push("threshold");
if (values.flagger) chosen.push("flagger");
const groups: GroupName[] = chosen.length > 0 ? chosen : ["balance", "threshold", "flagger"];
const service = await Service.start(loadConfig(), { api: false, groups });
console.log(`processor running groups: ${groups.join(", ")}`);
stopOnSignals(service);
