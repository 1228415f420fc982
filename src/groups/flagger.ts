import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { flaggerActor, type FlagState } from "../../actors/flagger.js";
import type { FlagChange } from "../../actors/types.js";
import { FlaggerTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";
import { FlagReason as FlagReasonPb } from "../gen/depositaja/v1/events_pb.js";
import { decoding } from "../runtime/codec.js";
import { defineGroup, on } from "../runtime/group.js";
import { flagReasonFromPb, flagReasonToPb, flags } from "../topics/flags.js";
import { optionalMs, optionalTimestamp } from "./time.js";

/** The flagger: each wallet's flag, set by the detector or by hand, cleared by hand. */
export const flagger = defineGroup<FlagState, FlagChange, never>({
  name: "flagger",
  description: "keeps each wallet's flag from the flags topic",
  inputs: [on(flags, (f) => f)],
  table: {
    schema: FlaggerTableValueSchema,
    codec: {
      encode: (s) =>
        toBinary(FlaggerTableValueSchema, create(FlaggerTableValueSchema, {
          flagged: s.flagged,
          reason: flagReasonToPb(s.reason),
          changedTime: optionalTimestamp(s.changedTimeMs),
          lastEventId: s.lastEventId,
        })),
      decode: (bytes) =>
        decoding(() => {
          const m = fromBinary(FlaggerTableValueSchema, bytes);
          return {
            flagged: m.flagged,
            reason: m.reason === FlagReasonPb.UNSPECIFIED ? null : flagReasonFromPb(m.reason),
            changedTimeMs: optionalMs(m.changedTime),
            lastEventId: m.lastEventId,
          };
        }),
    },
  },
  emits: [],
  view: true,
  actor: () => flaggerActor,
  emit: (out) => out,
});
