import type { Actor, DepositEvent } from "./types.js";

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
 * again and refuses, without crashing, what the API would have refused. A deposit that
 * would push the balance past its maximum is refused and counted, never wrapped.
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
      const rejection = refusal(state, deposit, limits);
      if (rejection) {
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

function refusal(state: BalanceState, deposit: DepositEvent, limits: BalanceLimits): string | undefined {
  if (deposit.amountMinor <= 0n) return "amount_must_be_positive";
  if (deposit.amountMinor > limits.depositAmountMaxMinor) return "amount_exceeds_max";
  if (state.balanceMinor + deposit.amountMinor > limits.balanceMaxMinor) return "balance_would_exceed_max";
  return undefined;
}
