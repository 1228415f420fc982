// `bun run inspect <topic> [--from-beginning] [-n N]`: prints a topic's records decoded
// from protobuf, one JSON object per line: our `rpk topic consume`, decoded.
import { fromBinary, toJson, type DescMessage } from "@bufbuild/protobuf";
import { loadConfig } from "../config.js";
import { DepositSchema, FlagEventSchema } from "../gen/depositaja/v1/events_pb.js";
import { AppliedEventSchema, BalanceTableValueSchema, FlaggerTableValueSchema, ThresholdTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";
import type { LogRecord } from "../log/log.js";
import { APPLIED_KIND, KIND_HEADER } from "../runtime/processor.js";
import { TOPICS } from "../runtime/topology.js";
import { openLog } from "../service.js";
import { parse, usage } from "./args.js";

const HELP = `usage: bun run inspect <topic> [--from-beginning] [-n N]

Topics: deposits, flags, balance-table, threshold-table, flagger-table.
Without --from-beginning, prints records written from now on. Stops after N records
with -n; otherwise runs until interrupted.`;

const SCHEMAS: Record<string, DescMessage> = {
  [TOPICS.deposits]: DepositSchema,
  [TOPICS.flags]: FlagEventSchema,
  [TOPICS.table("balance")]: BalanceTableValueSchema,
  [TOPICS.table("threshold")]: ThresholdTableValueSchema,
  [TOPICS.table("flagger")]: FlaggerTableValueSchema,
};

const { values, positionals } = parse({
  "from-beginning": { type: "boolean" },
  n: { type: "string", short: "n" },
}, HELP, true);
if (positionals.length !== 1) usage("name exactly one topic", HELP);
const topic = positionals[0]!;
const schema = SCHEMAS[topic] ?? usage(`unknown topic ${topic}`, HELP);
if (values.n !== undefined && !/^[1-9]\d{0,8}$/.test(values.n)) usage("-n must be a positive whole number", HELP);
const limit = values.n === undefined ? Number.POSITIVE_INFINITY : Number(values.n);

function decode(record: LogRecord): Record<string, unknown> {
  const line: Record<string, unknown> = {
    key: record.key,
    partition: record.partition,
    offset: record.offset,
    timestamp: new Date(record.timestampMs).toISOString(),
  };
  if (Object.keys(record.headers).length > 0) line.headers = record.headers;
  // A table's changelog also carries the event ids the group applied.
  const recordSchema = record.headers[KIND_HEADER] === APPLIED_KIND ? AppliedEventSchema : schema;
  try {
    line.value = toJson(recordSchema, fromBinary(recordSchema, record.value), { alwaysEmitImplicit: true });
  } catch (error) {
    line.error = `undecodable: ${(error as Error).message}`;
  }
  return line;
}

const log = await openLog(loadConfig());
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
    console.log(JSON.stringify(decode(record)));
    printed++;
  }
}
await subscription.close();
await log.close();
