// `bun run dev`: the API and every processor group in one process, on the embedded
// log by default. No configuration needed.
import { loadConfig } from "../config.js";
import { GROUP_NAMES } from "../runtime/topology.js";
import { Service, stopOnSignals } from "../service.js";

const service = await Service.start(loadConfig(), { api: true, groups: [...GROUP_NAMES] });
stopOnSignals(service);
