// The broker for the Kafka measures: BROKERS if set; else one started with this
// repo's scripts/kafka.sh (Apache Kafka from Maven Central jars, needs Java and Maven),
// stopped again at the end unless it was already running; else none, and the Kafka
// measures are skipped with a notice.
import { join } from "node:path";

const script = join(import.meta.dir, "..", "scripts", "kafka.sh");

export interface Broker {
  brokers: string;
  /** Stops the broker if this run started it. */
  stop(): Promise<void>;
}

async function kafkaSh(command: "start" | "stop" | "status"): Promise<{ code: number; stdout: string }> {
  // Its progress goes to stderr, shown as it comes; stdout carries BROKERS=.
  const proc = Bun.spawn(["bash", script, command], { stdout: "pipe", stderr: "inherit" });
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return { code, stdout };
}

/** Resolves the broker, or why there is none to be had. */
export async function kafkaBroker(): Promise<Broker | { missing: string }> {
  if (process.env.BROKERS) return { brokers: process.env.BROKERS, stop: async () => {} };
  if (!Bun.which("java") || !Bun.which("mvn")) return { missing: "BROKERS is not set, and scripts/kafka.sh needs java and mvn" };
  const wasRunning = (await kafkaSh("status")).code === 0;
  const started = await kafkaSh("start");
  const brokers = /BROKERS=(\S+)/.exec(started.stdout)?.[1];
  if (started.code !== 0 || !brokers) return { missing: `scripts/kafka.sh start failed (status ${started.code})` };
  return {
    brokers,
    async stop() {
      if (!wasRunning) await kafkaSh("stop");
    },
  };
}
