// `bun run flag-wallet --wallet <id> [--remove]`: sets or clears a wallet's flag by
// emitting a manual FlagEvent to the flags topic, as the seed's command does.
import { loadConfig } from "../config.js";
import { openLog } from "../log/open.js";
import { EVENT_ID_LENGTH_MAX, idError, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { Emitter } from "../runtime/emitter.js";
import { flags } from "../topics/flags.js";
import { parse, usage } from "./args.js";

const HELP = `usage: bun run flag-wallet --wallet <id> [--remove] [--id <event id>]

Sets the wallet's flag (above_threshold becomes true), or clears it with --remove.
--id makes a retry safe: the flagger applies one event id once.`;

const { values } = parse({
  wallet: { type: "string" },
  remove: { type: "boolean" },
  id: { type: "string" },
}, HELP);
const walletId = values.wallet ?? usage("--wallet is required", HELP);
const walletError = idError(walletId, "wallet", WALLET_ID_LENGTH_MAX);
if (walletError) usage(walletError.message, HELP);
const eventId = values.id ?? `manual:${Bun.randomUUIDv7()}`;
const idProblem = idError(eventId, "id", EVENT_ID_LENGTH_MAX);
if (idProblem) usage(idProblem.message, HELP);

const flagged = !values.remove;
const log = await openLog(loadConfig(), "cli");
try {
  const position = await new Emitter(log, flags).emit({ eventId, walletId, flagged, reason: "manual", eventTimeMs: Date.now() });
  console.log(JSON.stringify({ event_id: eventId, wallet_id: walletId, flagged, position }));
} finally {
  await log.close();
}
