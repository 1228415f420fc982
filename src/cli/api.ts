// `bun run api`: the HTTP API and its views only; processors run elsewhere.
import { loadConfig } from "../config.js";
import { Service, stopOnSignals } from "../service.js";

const service = Service.start(loadConfig(), { api: true, groups: [] });
stopOnSignals(service);
await service;
