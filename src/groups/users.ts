import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { WalletOpened } from "../../actors/wallet.js";
import { usersActor, type UserState } from "../../actors/users.js";
import { UserTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";
import { decoding, toMs } from "../runtime/codec.js";
import { defineGroup, on } from "../runtime/group.js";
import { userWallets } from "../topics/user-wallets.js";

/** The users group: each user's wallets, from the openings the wallet ledger re-keys by user. */
export const users = defineGroup<UserState, WalletOpened, never>({
  name: "users",
  description: "keeps each user's list of wallets from the user-wallets topic",
  inputs: [on(userWallets, (o) => o)],
  table: {
    schema: UserTableValueSchema,
    codec: {
      encode: (s) =>
        toBinary(UserTableValueSchema, create(UserTableValueSchema, {
          wallets: s.wallets.map((w) => ({ walletId: w.walletId, openedTime: timestampFromMs(w.openedMs) })),
        })),
      decode: (bytes) =>
        decoding(() => ({
          wallets: fromBinary(UserTableValueSchema, bytes).wallets.map((w) => ({ walletId: w.walletId, openedMs: toMs(w.openedTime, "opened_time") })),
        })),
    },
  },
  emits: [],
  view: true,
  actor: (config) => usersActor(config.userWalletsMax),
  emit: (out) => out,
});
