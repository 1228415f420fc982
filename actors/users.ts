import { terminal, type Actor } from "./types.js";
import type { WalletOpened } from "./wallet.js";

/** A user's wallets, oldest first (the users group's state for one user). */
export interface UserState {
  wallets: { walletId: string; openedMs: number }[];
}

/**
 * The users group's actor: one per user, it keeps the list of wallets opened for the
 * user. Wallets are partitioned by wallet id and users by user id, so the wallet's
 * actor re-keys each opening by user (topic `user-wallets`), and this actor, on the
 * user's partition, appends it. Each wallet is listed once (the runtime dedupes by
 * wallet id); past `walletsMax` an opening is dead-lettered, not listed.
 */
export function usersActor(walletsMax: number): Actor<UserState, WalletOpened, never> {
  return {
    name: "users",
    initial: () => ({ wallets: [] }),
    handle(state, opened) {
      if (state.wallets.length >= walletsMax) {
        return terminal("user_wallets_exceed_max", `user ${opened.userId} has ${state.wallets.length} wallets, the most one may have`);
      }
      return { state: { wallets: [...state.wallets, { walletId: opened.walletId, openedMs: opened.openedMs }] }, emits: [] };
    },
  };
}
