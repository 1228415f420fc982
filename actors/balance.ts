import { terminal, type Actor, type DepositEvent } from "./types.js";

/** The collector's state for one wallet. */
export interface BalanceState {
  balanceMinor: bigint;
  depositCount: number;
  rejectedCount: number;
  lastDepositId: string;
  lastDepositTimeMs: number | null;
  lastRejectionCode: string;
}

export interface BalanceLimits {
  depositAmountMaxMinor: bigint;
  balanceMaxMinor: bigint;
}

/**
 * The collector (`balance` group): sums the deposits of a wallet. The API validates
 * amounts, but the deposits topic is open to trusted producers, so the actor checks
 * again: an amount the API would have refused is a terminal error (the record is
 * dead-lettered). A deposit that would push the balance past its maximum is a decision:
 * refused and counted, never wrapped.
 */
export function balanceActor(limits: BalanceLimits): Actor<BalanceState, DepositEvent, never> {
  return {
    name: "balance",
    initial: () => ({
      balanceMinor: 0n,
      depositCount: 0,
      rejectedCount: 0,
      lastDepositId: "",
      lastDepositTimeMs: null,
      lastRejectionCode: "",
    }),
    handle(state, deposit) {
      const invalid = invalidAmount(deposit, limits.depositAmountMaxMinor);
      if (invalid) return invalid;
      if (state.balanceMinor + deposit.amountMinor > limits.balanceMaxMinor) {
        const rejection = "balance_would_exceed_max";
        return {
          state: { ...state, rejectedCount: state.rejectedCount + 1, lastRejectionCode: rejection },
          emits: [],
          rejection,
        };
      }
      return {
        state: {
          ...state,
          balanceMinor: state.balanceMinor + deposit.amountMinor,
          depositCount: state.depositCount + 1,
          lastDepositId: deposit.depositId,
          lastDepositTimeMs: deposit.eventTimeMs,
        },
        emits: [],
      };
    },
  };
}

/** The amount rules every producer of deposits must keep, shared by the detector. */
export function invalidAmount(deposit: DepositEvent, amountMaxMinor: bigint) {
  if (deposit.amountMinor <= 0n) return terminal("amount_must_be_positive", `amount_minor must be positive, got ${deposit.amountMinor}`);
  if (deposit.amountMinor > amountMaxMinor) return terminal("amount_exceeds_max", `amount_minor may be at most ${amountMaxMinor}, got ${deposit.amountMinor}`);
  return undefined;
}
