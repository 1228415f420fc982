// What the runtime does around the wallet actor, imitated for actor-level tests: each
// input's id (scoped as the balance group scopes it) and fingerprint from the topics'
// own identities, the dedupe of ids, the records kept with them, and pending timers.
import type { ActorContext, Decided } from "../../actors/types.js";
import type { LedgerEntry, OperationRecord, TransferStep, WalletInput, WalletOpened, WalletOutput, WalletState } from "../../actors/wallet.js";
import { balance } from "../../src/groups/balance.js";
import { scopedId } from "../../src/runtime/group.js";
import { commands } from "../../src/topics/commands.js";
import { deposits } from "../../src/topics/deposits.js";
import { transfers } from "../../src/topics/transfers.js";

export interface Identity {
  id: string;
  fingerprint: string;
}

/** The runtime's id of an input and its fingerprint. */
export function runtimeIdentity(input: Exclude<WalletInput, { type: "flag" }>): Identity {
  const scoped = (topic: string, identity: Identity) => ({ id: scopedId(balance.inputs.find((i) => i.topic.name === topic)!, identity.id), fingerprint: identity.fingerprint });
  switch (input.type) {
    case "command": {
      const c = input.command;
      if (input.source === "deposits" && c.kind === "deposit") {
        return scoped(deposits.name, deposits.identity({ depositId: c.operationId, walletId: c.walletId, amountMinor: c.amountMinor, eventTimeMs: c.eventTimeMs }));
      }
      return scoped(commands.name, commands.identity(c));
    }
    case "transfer":
      return scoped(transfers.name, transfers.identity(input.step));
    case "timer":
      return scoped(balance.timers!.name, balance.timers!.identity(input.fired));
  }
}

/** What the runtime keeps of one wallet besides its state: decided ids with their records, and pending timers. */
export class KeptIds {
  readonly kept = new Map<string, { fingerprint: string; record: OperationRecord | undefined }>();
  /** Pending timers: id → due. */
  readonly timers = new Map<string, number>();

  context(nowMs: number, position: string): ActorContext<OperationRecord> {
    return { nowMs, position, recorded: (id, scope) => this.kept.get(scope === undefined ? id : scopedId({ scope }, id))?.record };
  }

  /**
   * Whether the runtime hands the input to the actor: a repeat or a conflicting reuse
   * of a decided id is not, and neither is a firing of a timer no longer pending at
   * that due time (skipped, its id bound). A pending timer that fires is cleared,
   * whatever the actor makes of it. Flags have no id here.
   */
  admit(input: WalletInput): { type: "repeat" | "conflict" | "skipped" } | { type: "admitted"; identity: Identity | undefined } {
    if (input.type === "flag") return { type: "admitted", identity: undefined };
    // The runtime's dedupe: the id's first decision is the one.
    const identity = runtimeIdentity(input);
    const prior = this.kept.get(identity.id);
    if (prior) return { type: prior.fingerprint === identity.fingerprint ? "repeat" : "conflict" };
    if (input.type === "timer") {
      if (this.timers.get(input.fired.timerId) !== input.fired.dueMs) {
        this.kept.set(identity.id, { fingerprint: identity.fingerprint, record: undefined });
        return { type: "skipped" };
      }
      this.timers.delete(input.fired.timerId);
    }
    return { type: "admitted", identity };
  }

  /** Keeps a decision under its id, and sets and clears the timers it asked for. */
  keep(identity: Identity, outcome: Decided<WalletState, WalletOutput, OperationRecord>): void {
    this.kept.set(identity.id, { fingerprint: identity.fingerprint, record: outcome.record });
    for (const timer of outcome.timers ?? []) {
      if (timer.dueMs === null) this.timers.delete(timer.id);
      else this.timers.set(timer.id, timer.dueMs);
    }
  }
}

/** A decision's emits, by kind. */
export function splitEmits(emits: WalletOutput[]): { entries: LedgerEntry[]; steps: TransferStep[]; opened: WalletOpened[] } {
  const out = { entries: [] as LedgerEntry[], steps: [] as TransferStep[], opened: [] as WalletOpened[] };
  for (const e of emits) {
    if (e.type === "entry") out.entries.push(e.entry);
    else if (e.type === "step") out.steps.push(e.step);
    else out.opened.push(e.opened);
  }
  return out;
}
