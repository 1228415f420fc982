import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { WalletOpened } from "../../actors/wallet.js";
import { WalletOpenedSchema } from "../gen/depositaja/v1/ledger_pb.js";
import { checkId, decoding, toMs, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { defineTopic } from "../runtime/topic.js";

/** A user id may hold this many characters, at most, like a wallet id. */
export const USER_ID_LENGTH_MAX = WALLET_ID_LENGTH_MAX;

/**
 * `user-wallets`: wallets opened for users, re-keyed by user id (WalletOpened in
 * proto/depositaja/v1/ledger.proto), as Kafka Streams re-keys through a repartition
 * topic: the balance group, partitioned by wallet, emits one per opening; the users
 * group, partitioned by user, keeps each user's list. One per wallet: its id is the
 * wallet's.
 */
export const userWallets = defineTopic<WalletOpened>({
  name: "user-wallets",
  schema: WalletOpenedSchema,
  codec: {
    encode: (o) => toBinary(WalletOpenedSchema, create(WalletOpenedSchema, { userId: o.userId, walletId: o.walletId, openedTime: timestampFromMs(o.openedMs) })),
    decode: (bytes) =>
      decoding(() => {
        const m = fromBinary(WalletOpenedSchema, bytes);
        return {
          userId: checkId(m.userId, "user_id", USER_ID_LENGTH_MAX),
          walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
          openedMs: toMs(m.openedTime, "opened_time"),
        };
      }),
  },
  key: (o) => o.userId,
  identity: (o) => ({ id: o.walletId, fingerprint: "opened" }),
  conflictCode: "wallet_opened_twice",
});
