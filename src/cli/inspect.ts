// `bun run inspect <topic> [--from-beginning] [-n N]`: prints a topic's records decoded
// from protobuf, one JSON object per line: our `rpk topic consume`, decoded.
import { loadConfig } from "../config.js";
import { GROUPS } from "../groups/index.js";
import type { LogRecord } from "../log/log.js";
import { openLog } from "../log/open.js";
import { topicCatalog, type Describe } from "../runtime/catalog.js";
import { parse, usage } from "./args.js";

const catalog = topicCatalog(GROUPS);
const HELP = `usage: bun run inspect <topic> [--from-beginning] [-n N]

Topics: ${[...catalog.keys()].join(", ")}.
Without --from-beginning, prints records written from now on. Stops after N records
with -n; otherwise runs until interrupted.`;

const { values, positionals } = parse({
  "from-beginning": { type: "boolean" },
  n: { type: "string", short: "n" },
}, HELP, true);
if (positionals.length !== 1) usage("name exactly one topic", HELP);
const topic = positionals[0]!;
const describe = catalog.get(topic) ?? usage(`unknown topic ${topic}`, HELP);
if (values.n !== undefined && !/^[1-9]\d{0,8}$/.test(values.n)) usage("-n must be a positive whole number", HELP);
const limit = values.n === undefined ? Number.POSITIVE_INFINITY : Number(values.n);

function line(record: LogRecord, describe: Describe): Record<string, unknown> {
  const out: Record<string, unknown> = {
    key: record.key,
    partition: record.partition,
    offset: record.offset,
    timestamp: new Date(record.timestampMs).toISOString(),
  };
  if (Object.keys(record.headers).length > 0) out.headers = record.headers;
  try {
    out.value = describe(record);
  } catch (error) {
    out.error = `undecodable: ${(error as Error).message}`;
  }
  return out;
}

const log = await openLog(loadConfig(), "cli");
const ends = values["from-beginning"] ? undefined : await log.endOffsets(topic);
const subscription = log.subscribe({ topics: [topic] });
let printed = 0;
let stopping = false;
process.once("SIGINT", () => (stopping = true));
process.once("SIGTERM", () => (stopping = true));
while (printed < limit && !stopping) {
  const poll = await subscription.poll(Math.min(500, limit - printed), 200);
  if (ends) for (const tp of poll.assigned) subscription.seek({ ...tp, offset: ends[tp.partition] ?? 0 });
  for (const record of poll.records) {
    if (printed >= limit) break;
    console.log(JSON.stringify(line(record, describe)));
    printed++;
  }
}
await subscription.close();
await log.close();
