import type { BalanceState } from "../actors/balance.js";
import type { FlagState } from "../actors/flagger.js";
import type { Config } from "./config.js";
import { createApp } from "./http/app.js";
import { EmbeddedLog } from "./log/embedded.js";
import { DEFAULT_KAFKA_OPTIONS, KafkaLog } from "./log/kafka.js";
import type { Log } from "./log/log.js";
import { balanceTableCodec, flaggerTableCodec } from "./runtime/codecs.js";
import { Processor } from "./runtime/processor.js";
import { buildGroups, TOPICS, topicSpecs, type GroupName } from "./runtime/topology.js";
import { TableView } from "./runtime/view.js";
import { StateStore } from "./store/state-store.js";

/**
 * Opens the configured log and makes sure every topic exists, co-partitioned.
 * BROKERS selects Kafka; unset means the embedded log under DATA_DIR.
 */
export async function openLog(config: Config): Promise<Log> {
  const log: Log = config.brokers.length > 0
    ? new KafkaLog({ ...DEFAULT_KAFKA_OPTIONS, brokers: config.brokers, topicPrefix: config.topicPrefix, replicationFactor: config.replicationFactor })
    : EmbeddedLog.open(config.dataDir, { pollMs: config.embeddedPollMs });
  try {
    await log.ensureTopics(topicSpecs(config.partitions));
  } catch (error) {
    await log.close().catch(() => {});
    throw error;
  }
  return log;
}

export interface ServiceOptions {
  /** Serve the HTTP API (and run the views it reads). */
  api: boolean;
  /** Processor groups to run in this process. */
  groups: GroupName[];
}

/**
 * One process of Depositaja: some processor groups, and optionally the API with its
 * views. `dev` runs everything; `api` and `processor` run parts, against the same log.
 */
export class Service {
  private server: ReturnType<typeof Bun.serve> | undefined;
  private stopped: Promise<void> | undefined;

  private constructor(
    readonly log: Log,
    readonly store: StateStore,
    readonly processors: Processor[],
    readonly views: { balances: TableView<BalanceState>; flags: TableView<FlagState> } | undefined,
  ) {}

  static async start(config: Config, options: ServiceOptions): Promise<Service> {
    const log = await openLog(config);
    const store = StateStore.open(config.dataDir);
    const groups = buildGroups(config);
    const processors = options.groups.map((name) => new Processor(groups[name], log, store));
    const views = options.api
      ? {
          balances: new TableView(TOPICS.table("balance"), balanceTableCodec, log, store),
          flags: new TableView(TOPICS.table("flagger"), flaggerTableCodec, log, store),
        }
      : undefined;
    const service = new Service(log, store, processors, views);
    for (const processor of processors) {
      processor.start();
      // A processor stops only on a broken invariant; a process that cannot apply
      // events must not keep acknowledging deposits as if all were well.
      processor.done.catch((error) => {
        console.error(`[${processor.group.name}] stopped:`, error);
        process.exit(70);
      });
    }
    if (views) {
      views.balances.start();
      views.flags.start();
      const app = createApp({ log, ...views, depositAmountMaxMinor: config.depositAmountMaxMinor, checkAfterWaitMs: config.checkAfterWaitMs });
      service.server = Bun.serve({ port: config.port, fetch: app.fetch, maxRequestBodySize: 1024 * 1024 });
      console.log(`depositaja listening on http://localhost:${service.server.port}`);
    }
    return service;
  }

  get port(): number | undefined {
    return this.server?.port;
  }

  /**
   * Graceful stop: refuse new connections and let requests in flight finish (their
   * deposits are stored or refused, never half-written), then let each processor
   * commit the batch in hand, then close the log and the database.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.server?.stop(false);
      await Promise.all(this.processors.map((p) => p.stop()));
      if (this.views) await Promise.all([this.views.balances.stop(), this.views.flags.stop()]);
      await this.log.close();
      this.store.close();
    })();
    return this.stopped;
  }
}

/** Stops the service on SIGTERM or SIGINT, then exits. */
export function stopOnSignals(service: Service): void {
  const onSignal = (signal: string) => {
    console.log(`${signal}: stopping`);
    service.stop().then(
      () => process.exit(0),
      (error) => {
        console.error("stop failed", error);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
}
