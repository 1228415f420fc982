// Freshness on `dev`, embedded: at a fixed offered rate, how long after its 202 a
// deposit shows in GET /check?after=<its position>.
import type { Context } from "../context.js";
import { openLoop, type Freshness } from "../http-load.js";
import { serverCore, serverPlacement } from "../proc.js";
import { embedded, startServer } from "../product.js";
import { formatNumber, type Row } from "../result.js";
import { drain } from "../sentinels.js";
import type { FreshnessLevel } from "../sizes.js";

function row(ctx: Context, level: FreshnessLevel, f: Freshness): Row {
  return {
    id: `freshness-${level.ratePerSecond}`,
    measure: `Freshness p99 on dev, embedded, ${formatNumber(level.ratePerSecond)}/s offered`,
    value: f.p99Ms,
    unit: "ms",
    target: { of: "value", op: "<", value: level.p99TargetMs },
    details: `p50 ${formatNumber(f.p50Ms)} ms, max ${formatNumber(f.maxMs)} ms; ${formatNumber(f.achievedPerSecond)}/s achieved, ${formatNumber(f.deposits)} deposits, ${f.notIncluded} not seen within the wait${f.shed ? `; ${formatNumber(f.shed)} shed with 503 overloaded (WRITES_IN_FLIGHT_MAX), not counted` : ""}`,
    how: `A \`dev\` process (embedded, fresh DATA_DIR) ${serverPlacement}; bench/load.ts on the other core posts deposits on a fixed schedule for ${level.durationSeconds} s (open loop: ` +
      `not waiting for earlier answers), wallets cycling over ${formatNumber(ctx.sizes.walletsCycled)}. Right after each 202 it sends GET /check/<wallet>?after=<position>; ` +
      `freshness is the time from the 202 to that answer with included true (a deposit not included within the wait counts with the time it waited). After a ${ctx.sizes.freshnessWarmupSeconds} s warm-up; each rate starts with the processors caught up.`,
  };
}

export async function freshness(ctx: Context): Promise<Row[]> {
  const dev = await startServer("dev", embedded, ctx.tempDir("freshness"), serverCore);
  try {
    const wallets = ctx.sizes.walletsCycled;
    const first = ctx.sizes.freshness[0]!;
    await openLoop(dev.base, { ratePerSecond: first.ratePerSecond, seconds: ctx.sizes.freshnessWarmupSeconds, wallets });
    const rows: Row[] = [];
    for (const level of ctx.sizes.freshness) {
      await drain(dev, ctx.tag);
      rows.push(row(ctx, level, await openLoop(dev.base, { ratePerSecond: level.ratePerSecond, seconds: level.durationSeconds, wallets })));
    }
    dev.assertRunning();
    return rows;
  } finally {
    await dev.stop();
  }
}
