// `bun run emit-deposit --wallet <id> --amount <decimal> [--at <RFC 3339>] [--id <id>]`:
// a trusted producer of Deposit events with their own event time, for imports and
// backfills.
import { loadConfig } from "../config.js";
import { parseAmount } from "../money.js";
import { openLog } from "../log/open.js";
import { EVENT_ID_LENGTH_MAX, idError, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { Emitter } from "../runtime/emitter.js";
import { deposits } from "../topics/deposits.js";
import { parse, usage } from "./args.js";
import { parseRfc3339 } from "./time.js";

const HELP = `usage: bun run emit-deposit --wallet <id> --amount <decimal> [--at <RFC 3339 time>] [--id <deposit id>]

Emits a Deposit to the deposits topic. --at sets its event time (default: now), such
as 2026-11-21T10:00:05Z. --id sets the deposit id (default: a new UUIDv7); the same id
for the same wallet is counted once, so re-running an import is safe.`;

const { values } = parse({
  wallet: { type: "string" },
  amount: { type: "string" },
  at: { type: "string" },
  id: { type: "string" },
}, HELP);
const config = loadConfig();
const walletId = values.wallet ?? usage("--wallet is required", HELP);
const walletError = idError(walletId, "wallet", WALLET_ID_LENGTH_MAX);
if (walletError) usage(walletError.message, HELP);
const amount = parseAmount(values.amount, config.depositAmountMaxMinor);
if (!amount.ok) usage(`--amount: ${amount.message}`, HELP);
const eventTimeMs = values.at === undefined ? Date.now() : parseRfc3339(values.at) ?? usage(`--at must be an RFC 3339 time such as 2026-11-21T10:00:05Z, got ${values.at}`, HELP);
const depositId = values.id ?? Bun.randomUUIDv7();
const idProblem = idError(depositId, "id", EVENT_ID_LENGTH_MAX);
if (idProblem) usage(idProblem.message, HELP);

const log = await openLog(config, "cli");
try {
  const position = await new Emitter(log, deposits).emit({ depositId, walletId, amountMinor: amount.minor, eventTimeMs });
  console.log(JSON.stringify({ deposit_id: depositId, wallet_id: walletId, amount: values.amount, event_time: new Date(eventTimeMs).toISOString(), position }));
} finally {
  await log.close();
}
