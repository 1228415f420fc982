// `bun run dev`: the API and every processor group in one process, the processors on
// a worker thread; on the embedded log by default. No configuration needed.
import { loadConfig } from "../config.js";
import { GROUPS } from "../groups/index.js";
import { Service, stopOnSignals } from "../service.js";
import { parse } from "./args.js";

const HELP = `usage: bun run dev [--rebuild-state]

Runs the API and every processor group. --rebuild-state discards the processors'
state first and rebuilds it from the log (see "A log that went backwards").`;

const { values } = parse({ "rebuild-state": { type: "boolean" } }, HELP);
const service = await Service.start(loadConfig(), { api: true, groups: GROUPS, processorsOnWorker: true, rebuildState: values["rebuild-state"] });
stopOnSignals(service);
