// Processing a backlog: deposits written straight to the log first, then a
// `processor` (all three groups) started on the server core and timed until every
// deposit is applied, which sentinel deposits written after the backlog tell.
import { kafkaTarget, type Context } from "../context.js";
import { loadCore, serverCore, serverPlacement } from "../proc.js";
import { embedded, startProcessor, startServer, thresholdMinor, writeDeposits, type LogTarget } from "../product.js";
import { againstCeiling, formatNumber, type CeilingResult, type Row, type Target } from "../result.js";
import { awaitSentinels, sentinelWallets, writeSentinels } from "../sentinels.js";

const embeddedTarget: Target = { of: "ratio", op: ">=", value: 0.3 };
/** Backlog deposits are 1.00 to 99.99, so a wallet with up to this many is never flagged. */
const depositsPerWalletMax = Number(thresholdMinor / 9_999n);

interface Backlog {
  deposits: number;
  wallets: number;
}

/** Deposit i of a backlog: wallets in turn, amounts spread over 1.00 to 99.99. */
function backlogDeposit(tag: string, backlog: Backlog, i: number) {
  return { depositId: `${tag}-${i}`, walletId: `${tag}-w${i % backlog.wallets}`, amountMinor: BigInt(100 + ((i * 7_919) % 9_900)) };
}

/**
 * Writes the backlog and its sentinels, starts `api` on the load core (to read
 * GET /check from), then times a `processor` on the server core from its start until
 * every sentinel is applied and flagged. On the embedded log both share one DATA_DIR
 * (its log.db is the log); on Kafka each has its own.
 */
async function processBacklog(ctx: Context, target: LogTarget, backlog: Backlog, label: string): Promise<number> {
  if (backlog.deposits / backlog.wallets > depositsPerWalletMax) throw new Error(`a backlog may hold at most ${depositsPerWalletMax} deposits per wallet`);
  const tag = `${ctx.tag}-${label}`;
  const apiDir = ctx.tempDir(`${label}-api`);
  const processorDir = target.brokers ? ctx.tempDir(`${label}-processor`) : apiDir;
  await writeDeposits(target, apiDir, backlog.deposits, (i) => backlogDeposit(tag, backlog, i));
  const sentinels = await sentinelWallets(tag);
  await writeSentinels(target, apiDir, sentinels);
  const api = await startServer("api", target, apiDir, loadCore);
  try {
    const started = performance.now();
    const processor = startProcessor(target, processorDir, serverCore);
    try {
      await awaitSentinels(api.base, sentinels, [api, processor]);
      return (performance.now() - started) / 1000;
    } finally {
      await processor.stop();
    }
  } finally {
    await api.stop();
  }
}

function how(backlog: Backlog, log: string): string {
  return `${formatNumber(backlog.deposits)} deposits over ${formatNumber(backlog.wallets)} wallets written to the ${log} log (untimed), then one sentinel deposit per partition above the threshold. ` +
    `An \`api\` on the other core; then a \`processor\` (balance, threshold, flagger) ${serverPlacement}, timed from its start until GET /check shows every sentinel counted and flagged (polled every 50 ms). Deposits per second.`;
}

async function processingRow(ctx: Context, target: LogTarget, backlog: Backlog, label: string, ceiling: CeilingResult, goal: Target | undefined): Promise<Row> {
  const seconds = await processBacklog(ctx, target, backlog, label);
  const log = target.brokers ? "Kafka" : "embedded";
  return againstCeiling({
    id: label,
    measure: `Processing a backlog, ${log}, all three groups`,
    value: backlog.deposits / seconds,
    unit: "deposits/s",
    target: goal,
    details: `${formatNumber(backlog.deposits)} deposits in ${formatNumber(seconds)} s from the processor's start`,
    how: how(backlog, log),
  }, ceiling);
}

export async function processing(ctx: Context): Promise<Row[]> {
  const backlog = ctx.sizes.backlog;
  const ceiling = await ctx.ceilings.process(backlog.deposits, backlog.wallets);
  return [await processingRow(ctx, embedded, backlog, "processing", ceiling, embeddedTarget)];
}

export async function processingKafka(ctx: Context): Promise<Row[]> {
  const backlog = ctx.sizes.kafkaBacklog;
  const target = kafkaTarget(ctx, "processing");
  const ceiling = await ctx.ceilings.kafkaConsume(target.brokers, backlog.deposits, backlog.wallets);
  return [await processingRow(ctx, target, backlog, "kafka-processing", ceiling, undefined)];
}
