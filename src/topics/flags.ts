import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { FlagChange, FlagReason } from "../../actors/types.js";
import { FlagEventSchema, FlagReason as FlagReasonPb } from "../gen/depositaja/v1/events_pb.js";
import { checkId, decoding, DecodeError, DERIVED_EVENT_ID_LENGTH_MAX, toMs, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { defineTopic } from "../runtime/topic.js";

const reasonToPb: Record<FlagReason, FlagReasonPb> = { threshold: FlagReasonPb.THRESHOLD, manual: FlagReasonPb.MANUAL };

export function flagReasonToPb(reason: FlagReason | null): FlagReasonPb {
  return reason === null ? FlagReasonPb.UNSPECIFIED : reasonToPb[reason];
}

export function flagReasonFromPb(reason: FlagReasonPb): FlagReason {
  if (reason === FlagReasonPb.THRESHOLD) return "threshold";
  if (reason === FlagReasonPb.MANUAL) return "manual";
  throw new DecodeError("reason_is_unknown", `unknown flag reason ${reason}`);
}

/**
 * `flags`: changes to a wallet's flag, keyed by wallet id. Written by the threshold
 * detector and the flag-wallet command. The same event id for the same wallet is one
 * change.
 */
export const flags = defineTopic<FlagChange>({
  name: "flags",
  schema: FlagEventSchema,
  codec: {
    encode: (f) =>
      toBinary(FlagEventSchema, create(FlagEventSchema, {
        eventId: f.eventId,
        walletId: f.walletId,
        flagged: f.flagged,
        reason: reasonToPb[f.reason],
        eventTime: timestampFromMs(f.eventTimeMs),
        windowStart: f.window ? timestampFromMs(f.window.startMs) : undefined,
        windowSumMinor: f.window?.sumMinor ?? 0n,
      })),
    decode: (bytes) =>
      decoding(() => {
        const m = fromBinary(FlagEventSchema, bytes);
        const change: FlagChange = {
          // Threshold flags derive their id from the deposit's, which may be 128 long.
          eventId: checkId(m.eventId, "event_id", DERIVED_EVENT_ID_LENGTH_MAX),
          walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
          flagged: m.flagged,
          reason: flagReasonFromPb(m.reason),
          eventTimeMs: toMs(m.eventTime, "event_time"),
        };
        if (m.windowStart) change.window = { startMs: toMs(m.windowStart, "window_start"), sumMinor: m.windowSumMinor };
        return change;
      }),
  },
  key: (f) => f.walletId,
  identity: (f) => ({ id: f.eventId, fingerprint: `flagged=${f.flagged},reason=${f.reason}` }),
  conflictCode: "event_id_reused_with_different_content",
  eventTimeMs: (f) => f.eventTimeMs,
});
