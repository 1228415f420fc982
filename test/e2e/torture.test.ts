// `bun run torture` with a few cycles, so it cannot rot: on the embedded log (an api
// and a processor on one DATA_DIR) and on Kafka (an api, two processors, and the
// broker), each process SIGKILLed once under the load and restarted, and the api stopped
// with SIGTERM under the load at least once (every request it accepted answered, exit 0
// within the bound); every acknowledged operation applied exactly once, money conserved
// (see scripts/torture.ts).
//
// On Kafka the broker is killed and restarted only under CI=true, where .ci/run started
// it with scripts/kafka.sh's defaults for this run alone (as test/kafka/outage.test.ts
// does, with scripts/kafka.sh kill and restart; its data is kept, and the script waits
// until it is ready, so the suites after it find it as before). Elsewhere the broker at
// BROKERS may serve others, and only the api and the processors are killed.
// TORTURE_SEED=<n> replays a run's choices.
import { expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kafkaOrSkip } from "../kafka-broker.js";
import { REPO_DIR } from "../support.js";

const brokers = await kafkaOrSkip("torture on Kafka");
/** Where scripts/kafka.sh runs the broker by default. */
const brokerHome = process.env.KAFKA_HOME_DIR || join(process.env.TMPDIR || tmpdir(), "depositaja-kafka");
const killBroker = brokers !== undefined && process.env.CI === "true" && Bun.spawnSync(["bash", join(REPO_DIR, "scripts/kafka.sh"), "status"]).exitCode === 0;
if (brokers && !killBroker) console.warn("[torture] on Kafka the broker is not killed (only under CI=true, on a broker scripts/kafka.sh runs)");

/**
 * Runs the script, and stops it (SIGTERM: it kills its processes and restarts a broker
 * it killed) if it is still running after `limitMs`, so that it never outlives its test.
 */
async function torture(args: string[], env: Record<string, string>, limitMs: number): Promise<{ code: number; output: string }> {
  const seed = process.env.TORTURE_SEED ? ["--seed", process.env.TORTURE_SEED] : [];
  // A failing run reports within its test's time: each step of the drain is shorter than the default.
  const proc = Bun.spawn([process.execPath, join(REPO_DIR, "scripts/torture.ts"), "--drain-seconds", "45", ...args, ...seed], {
    cwd: REPO_DIR,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const limit = setTimeout(() => proc.kill("SIGTERM"), limitMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(limit);
  const output = `${out}${err}`;
  console.log(output.trimEnd());
  return { code, output };
}

/** At least one SIGTERM of the api under the load, answered whole, and requests answered during its drain. */
function expectGracefulStops(output: string, log: string) {
  const line = new RegExp(`${log}: graceful stops of the api under load .*?: (\\d+), exited 0 in .*; requests answered after the signal (\\d+), .* sent within the grace and unanswered (\\d+)`).exec(output);
  expect(line).not.toBeNull();
  expect(Number(line![1])).toBeGreaterThanOrEqual(1);
  expect(Number(line![2])).toBeGreaterThan(0);
  expect(Number(line![3])).toBe(0);
}

test("torture on the embedded log: SIGKILLs of the api and the processor lose nothing and double nothing", async () => {
  const { code, output } = await torture(["--log", "embedded", "--cycles", "3"], { BROKERS: "" }, 100_000);
  expect(output).toContain("embedded: lost 0, duplicated 0");
  expect(output).toMatch(/kills: api [1-9]\d*, processor [1-9]/);
  expectGracefulStops(output, "embedded");
  expect(code).toBe(0);
}, 120_000);

test.skipIf(!brokers)("torture on Kafka: SIGKILLs of the api, the processors and (in CI) the broker lose nothing and double nothing", async () => {
  const { code, output } = await torture(["--log", "kafka", "--cycles", killBroker ? "4" : "3", ...(killBroker ? ["--broker-home", brokerHome] : [])], { BROKERS: brokers! }, 200_000);
  expect(output).toContain("kafka: lost 0, duplicated 0");
  expectGracefulStops(output, "kafka");
  expect(output).toMatch(killBroker ? /kills: api [1-9]\d*, processor-1 [1-9]\d*, processor-2 [1-9]\d*, broker [1-9]/ : /kills: api [1-9]\d*, processor-1 [1-9]\d*, processor-2 [1-9]/);
  expect(code).toBe(0);
}, 240_000);
