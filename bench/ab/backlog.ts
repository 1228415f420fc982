// Writes N deposits over 10,000 wallets straight to the embedded log in DATA_DIR=$1,
// with the log client and codec of BENCH_REPO (see bench/product.ts).
import { embedded, writeDeposits } from "../product.js";

const dir = process.argv[2]!;
const n = Number(process.argv[3] ?? 100_000);
await writeDeposits(embedded, dir, n, (i) => ({ depositId: `d-${i}`, walletId: `w-${i % 10_000}`, amountMinor: BigInt(100 + (i % 9_000)) }));
