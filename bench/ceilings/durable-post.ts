// Ceiling of a durable POST /deposit: bare-post plus one SQLite insert per request
// (WAL, synchronous=FULL), answered only after its transaction commits. Requests that
// arrive in the same event-loop tick share one transaction, so one fsync covers them
// (group commit, as the product's embedded log does). Its ratio to bare-post is what
// durability costs on this disk.
//
// DATA_DIR=<dir> PORT=0 bun bench/ceilings/durable-post.ts

import { Database } from "bun:sqlite";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Pending {
  depositId: string;
  walletId: string;
  amount: string;
  resolve(seq: number): void;
  reject(error: unknown): void;
}

const dataDir = process.env.DATA_DIR || mkdtempSync(join(tmpdir(), "bench-durable-post-"));
const db = new Database(join(dataDir, "deposits.db"), { create: true, strict: true });
db.run("PRAGMA journal_mode = WAL");
db.run("PRAGMA synchronous = FULL");
db.run("CREATE TABLE IF NOT EXISTS deposits (seq INTEGER PRIMARY KEY, deposit_id TEXT NOT NULL, wallet_id TEXT NOT NULL, amount TEXT NOT NULL)");
const insert = db.prepare<{ seq: number }, [string, string, string]>("INSERT INTO deposits (deposit_id, wallet_id, amount) VALUES (?, ?, ?) RETURNING seq");

let pending: Pending[] = [];

function commit(): void {
  const batch = pending;
  pending = [];
  let seqs: number[];
  try {
    seqs = db.transaction(() => batch.map((p) => insert.get(p.depositId, p.walletId, p.amount)!.seq)).immediate();
  } catch (error) {
    for (const p of batch) p.reject(error);
    return;
  }
  batch.forEach((p, i) => p.resolve(seqs[i]!));
}

function append(depositId: string, walletId: string, amount: string): Promise<number> {
  return new Promise((resolve, reject) => {
    if (pending.length === 0) setImmediate(commit);
    pending.push({ depositId, walletId, amount, resolve, reject });
  });
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? "0"),
  async fetch(request) {
    const body = (await request.json()) as { wallet_id: string; amount: string };
    const depositId = request.headers.get("idempotency-key") ?? Bun.randomUUIDv7();
    const seq = await append(depositId, body.wallet_id, body.amount);
    return Response.json({ deposit_id: depositId, wallet_id: body.wallet_id, amount: body.amount, position: `0:${seq}` }, { status: 202 });
  },
});
console.log(`listening on http://localhost:${server.port}`);
