import type { Actor, FlagChange, FlagReason } from "./types.js";

/** The flagger's state for one wallet: what `above_threshold` reports. */
export interface FlagState {
  flagged: boolean;
  reason: FlagReason | null;
  changedTimeMs: number | null;
  lastEventId: string;
}

/**
 * The flagger (`flagger` group): keeps the flag of each wallet from the `flags` topic,
 * where both the threshold detector and the flag-wallet command write. The flag is
 * sticky: setting a set flag or clearing a clear one changes nothing, so a wallet keeps
 * the reason and time it was first flagged until an operator clears it.
 */
export const flaggerActor: Actor<FlagState, FlagChange, never> = {
  name: "flagger",
  initial: () => ({ flagged: false, reason: null, changedTimeMs: null, lastEventId: "" }),
  handle(state, change) {
    if (change.flagged === state.flagged) return { state, emits: [] };
    return {
      state: {
        flagged: change.flagged,
        reason: change.reason,
        changedTimeMs: change.eventTimeMs,
        lastEventId: change.eventId,
      },
      emits: [],
    };
  },
};
