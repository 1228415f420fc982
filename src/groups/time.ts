import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { toMs } from "../runtime/codec.js";

/** An optional time of a table value: milliseconds or null. */
export const optionalMs = (t: Timestamp | undefined) => (t ? toMs(t, "time") : null);
export const optionalTimestamp = (ms: number | null) => (ms === null ? undefined : timestampFromMs(ms));
