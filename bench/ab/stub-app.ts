// The app of the checkout at `repo` with its views stubbed and an in-memory log, for
// in-process timings through app.request (bench/ab/check.ts, bench/ab/shed.ts).
export async function stubbedApp(repo: string, deps: Record<string, unknown> = {}) {
  const { createApp } = await import(`${repo}/src/http/app.ts`);
  const { EmbeddedLog } = await import(`${repo}/src/log/embedded.ts`);
  const { LogGuard } = await import(`${repo}/src/log/guard.ts`);
  const { Emitter } = await import(`${repo}/src/runtime/emitter.ts`);
  const views = { get: () => ({ balanceMinor: 123n, depositCount: 1, rejectedCount: 0 }), applied: () => undefined, entries: () => [], entryAt: () => undefined, status: () => ({ caughtUp: true, asOfMs: Date.now() }), waitFor: async () => true, start() {}, done: Promise.resolve(), async stop() {} };
  const flags = { ...views, get: () => undefined };
  const log = new EmbeddedLog(":memory:", { pollMs: 10 });
  const guard = new LogGuard(log);
  const topic = { name: "x", key: () => "k", codec: { encode: () => new Uint8Array() } };
  // `deposits`: the emitter of checkouts before the wallet ledger.
  return createApp({ deposits: new Emitter(guard, topic), commands: new Emitter(guard, topic), health: guard, balances: views, flags, depositAmountMaxMinor: 100000n, ...deps }) as { request(path: string, init?: RequestInit): Promise<Response> };
}
