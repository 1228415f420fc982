// Deposits and checks over HTTP, closed loop: POST /deposit to `dev` (64 and 256
// connections) and to `api` alone on the embedded log, to `dev` on Kafka, and
// GET /check to `dev`; each against a bare Bun.serve doing the same HTTP and JSON.
import { kafkaTarget, type Context } from "../context.js";
import { generatorName, loadDetails, throughput, type ClosedLoad, type Repetitions, type Throughput } from "../http-load.js";
import { serverCore, serverPlacement, type Server } from "../proc.js";
import { embedded, startServer, type LogTarget } from "../product.js";
import { againstCeiling, type CeilingResult, type Row, type Target } from "../result.js";
import { drain } from "../sentinels.js";

/** The bench's usual connection count for a closed loop. */
export const connections = 64;
const manyConnections = 256;
const devPostTarget: Target = { of: "ratio", op: ">=", value: 0.5 };
const apiPostTarget: Target = { of: "ratio", op: ">=", value: 0.7 };
const kafkaPostTarget: Target = { of: "ratio", op: ">=", value: 0.3 };
const getTarget: Target = { of: "ratio", op: ">=", value: 0.7 };
const mib = 2 ** 20;

export const repetitions = (ctx: Context): Repetitions => ({ warmupSeconds: ctx.sizes.warmupDurationSeconds, seconds: ctx.sizes.ingestDurationSeconds, count: ctx.sizes.repetitions });

function how(ctx: Context, process: string, load: ClosedLoad, caughtUp: boolean): string {
  const request = load.kind === "post"
    ? `POST /deposit {"wallet_id":"w<i mod ${ctx.sizes.walletsCycled}>","amount":"1.23"}, a unique Idempotency-Key each`
    : `GET /check/w<i mod ${ctx.sizes.walletsCycled}>, wallets the POST runs created`;
  return `${process}, server ${serverPlacement}; ${generatorName} on the other core with ${load.connections} connections sending ${request}. ` +
    `A ${ctx.sizes.warmupDurationSeconds} s warm-up, then ${ctx.sizes.repetitions} run(s) of ${ctx.sizes.ingestDurationSeconds} s` +
    `${caughtUp ? ", each started once the processors had caught up (sentinel deposits applied)" : ""}; the median run's rate and latencies.`;
}

function loadRow(id: string, measure: string, t: Throughput, ceiling: CeilingResult, target: Target | undefined, howText: string): Row {
  return againstCeiling({ id, measure, value: t.median.perSecond, unit: "req/s", target, details: loadDetails(t), how: howText }, ceiling);
}

/** Throws unless the first and last wallet the load cycles over have deposits. */
async function assertWalletsExist(server: Server, wallets: number): Promise<void> {
  for (const wallet of [`w0`, `w${wallets - 1}`]) {
    const check = (await (await fetch(`${server.base}/check/${wallet}`)).json()) as { deposit_count: number };
    if (!(check.deposit_count > 0)) throw new Error(`GET /check/${wallet} shows no deposits: the GET measure needs wallets that exist`);
  }
}

async function devIngest(ctx: Context, barePost: CeilingResult): Promise<Row[]> {
  const barePostMany = await ctx.ceilings.http("bare-post", manyConnections);
  const bareGet = await ctx.ceilings.http("bare-get", connections);
  const wallets = ctx.sizes.walletsCycled;
  const post: ClosedLoad = { kind: "post", connections, wallets };
  const postMany: ClosedLoad = { ...post, connections: manyConnections };
  const get: ClosedLoad = { kind: "get", connections, wallets };
  const dev = await startServer("dev", embedded, ctx.tempDir("dev"), serverCore);
  try {
    const caughtUp = () => drain(dev, ctx.tag);
    const posted = await throughput(dev.base, post, repetitions(ctx), caughtUp);
    const postedMany = await throughput(dev.base, postMany, repetitions(ctx), caughtUp);
    await caughtUp();
    const rss = await dev.rssBytes();
    await assertWalletsExist(dev, wallets);
    const checked = await throughput(dev.base, get, repetitions(ctx));
    dev.assertRunning();
    const devProcess = "A `dev` process (API and all processors, embedded log, fresh DATA_DIR)";
    return [
      loadRow("dev-post", `POST /deposit to dev, embedded, ${connections} connections`, posted, barePost, devPostTarget, how(ctx, devProcess, post, true)),
      loadRow("dev-post-many", `POST /deposit to dev, embedded, ${manyConnections} connections`, postedMany, barePostMany, undefined, how(ctx, devProcess, postMany, true)),
      loadRow("dev-get", `GET /check to dev, embedded, ${connections} connections`, checked, bareGet, getTarget, how(ctx, devProcess, get, false)),
      {
        id: "dev-rss",
        measure: "RSS of dev after the ingest runs",
        value: rss / mib,
        unit: "MiB",
        details: `after both POST measures and the processors caught up, before the GET runs`,
        how: "VmRSS from /proc/<pid>/status of the `dev` process of the POST measures.",
      },
    ];
  } finally {
    await dev.stop();
  }
}

async function postOnly(ctx: Context, cli: "dev" | "api", target: LogTarget, label: string): Promise<Throughput> {
  const server = await startServer(cli, target, ctx.tempDir(label), serverCore);
  try {
    // Without processors (api alone) nothing would ever apply a sentinel.
    const caughtUp = cli === "dev" ? () => drain(server, ctx.tag) : undefined;
    const t = await throughput(server.base, { kind: "post", connections, wallets: ctx.sizes.walletsCycled }, repetitions(ctx), caughtUp);
    server.assertRunning();
    return t;
  } finally {
    await server.stop();
  }
}

/** The embedded log: `dev` at 64 and 256 connections, GET /check, `api` alone, and durable-post itself. */
export async function ingest(ctx: Context): Promise<Row[]> {
  const barePost = await ctx.ceilings.http("bare-post", connections);
  const durablePost = await ctx.ceilings.http("durable-post", connections);
  const rows = await devIngest(ctx, barePost);
  const apiAlone = await postOnly(ctx, "api", embedded, "api");
  const post: ClosedLoad = { kind: "post", connections, wallets: ctx.sizes.walletsCycled };
  rows.push(loadRow("api-post", `POST /deposit to api alone, embedded, ${connections} connections`, apiAlone, barePost, apiPostTarget, how(ctx, "An `api` process (API and its views, no processors, embedded log)", post, false)));
  rows.push(againstCeiling({
    id: "durable-post",
    measure: `durable-post ceiling itself, ${connections} connections`,
    value: durablePost.value,
    unit: "req/s",
    details: durablePost.details,
    how: `What durability costs on this disk, without the product: ${durablePost.how}`,
  }, barePost));
  return rows;
}

/** POST /deposit to `dev` on Kafka. */
export async function ingestKafka(ctx: Context): Promise<Row[]> {
  const barePost = await ctx.ceilings.http("bare-post", connections);
  const posted = await postOnly(ctx, "dev", kafkaTarget(ctx, "ingest"), "dev-kafka");
  const post: ClosedLoad = { kind: "post", connections, wallets: ctx.sizes.walletsCycled };
  return [loadRow("kafka-dev-post", `POST /deposit to dev, Kafka, ${connections} connections`, posted, barePost, kafkaPostTarget, how(ctx, "A `dev` process on Kafka (its own topic prefix)", post, true))];
}
