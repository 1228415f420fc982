import type { Config } from "../config.js";
import { GROUPS } from "../groups/index.js";
import { EmbeddedLog } from "../log/embedded.js";
import type { Log } from "../log/log.js";
import { openLog } from "../log/open.js";
import { StateStore } from "../store/state-store.js";
import { OutboxCommitter, SharedCommitter, type Committer } from "./commit.js";
import { selectGroups, type AnyGroup } from "./group.js";
import { DEFAULT_PROCESSOR_LIMITS, Processor } from "./processor.js";

/** Processor groups running somewhere: in this thread, or on a worker thread. */
export interface Processors {
  /** Rejects if a processor stopped on an error that is not retryable. */
  readonly done: Promise<void>;
  /** Lets each processor commit the batch in hand, then closes. */
  stop(): Promise<void>;
}

export interface HostOptions {
  /** Discard this instance's state of the groups first, and rebuild it from the log. */
  rebuildState?: boolean;
}

/**
 * Processor groups in this thread, on a connection to the log of their own. On the
 * embedded log their state lives in the log's database and each batch commits in one
 * transaction with its output; on Kafka it lives in DATA_DIR/state.db, with an outbox.
 */
export class ProcessorHost implements Processors {
  readonly done: Promise<void>;

  private constructor(readonly log: Log, readonly store: StateStore, readonly processors: Processor[]) {
    for (const p of processors) p.start();
    this.done = Promise.all(processors.map((p) => p.done)).then(() => {});
  }

  static async start(config: Config, groups: readonly AnyGroup[], options: HostOptions = {}): Promise<ProcessorHost> {
    const log = await openLog(config, "processor");
    const store = log instanceof EmbeddedLog ? new StateStore(log.sqlite) : StateStore.open(config.dataDir);
    const committer: Committer = log instanceof EmbeddedLog ? new SharedCommitter(log, store) : new OutboxCommitter(log, store);
    if (options.rebuildState) {
      for (const group of groups) store.drop(group.name);
      console.log(`state of ${groups.map((g) => g.name).join(", ")} discarded: rebuilding from the log`);
    }
    const processors = groups.map((group) => new Processor(group, group.actor(config), log, store, committer, { ...DEFAULT_PROCESSOR_LIMITS, eventTimeAheadMaxMs: config.eventTimeFutureMaxMs }));
    return new ProcessorHost(log, store, processors);
  }

  async stop(): Promise<void> {
    await Promise.all(this.processors.map((p) => p.stop()));
    await this.log.close();
    this.store.close();
  }
}

type ToWorker = { kind: "start"; config: Config; groups: string[]; options: HostOptions } | { kind: "stop" };
type FromWorker = { kind: "started" } | { kind: "stopped" } | { kind: "failed"; error: string };

/**
 * Processor groups on a worker thread: off the API's event loop, so that `dev` uses a
 * second core and a batch never delays an HTTP answer. The worker runs a
 * ProcessorHost; an error that stops it stops the process.
 */
export class WorkerProcessors implements Processors {
  readonly done: Promise<void>;
  private fail!: (error: Error) => void;
  private stopped: (() => void) | undefined;

  private constructor(private readonly worker: Worker) {
    this.done = new Promise((_, reject) => (this.fail = reject));
    this.done.catch(() => {});
  }

  static start(config: Config, groups: readonly AnyGroup[], options: HostOptions = {}): Promise<WorkerProcessors> {
    const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
    const processors = new WorkerProcessors(worker);
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.kind === "started") resolve(processors);
        else if (message.kind === "stopped") processors.stopped?.();
        else {
          const error = new Error(`processors failed: ${message.error}`);
          reject(error);
          processors.fail(error);
        }
      };
      worker.onerror = (event) => {
        const error = new Error(`processor worker failed: ${event.message}`);
        reject(error);
        processors.fail(error);
      };
      const message: ToWorker = { kind: "start", config, groups: groups.map((g) => g.name), options };
      worker.postMessage(message);
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.stopped = () => {
        this.worker.terminate();
        resolve();
      };
      this.worker.postMessage({ kind: "stop" } satisfies ToWorker);
    });
  }
}

/** The worker's side: runs a ProcessorHost for the groups it is sent. */
export function serveWorker(port: { postMessage(message: FromWorker): void; onmessage: ((event: MessageEvent<ToWorker>) => void) | null }): void {
  let host: ProcessorHost | undefined;
  const failed = (error: unknown) => port.postMessage({ kind: "failed", error: (error as Error)?.stack ?? String(error) });
  port.onmessage = (event) => {
    const message = event.data;
    if (message.kind === "start") {
      ProcessorHost.start(message.config, selectGroups(GROUPS, message.groups), message.options).then((started) => {
        host = started;
        started.done.catch(failed);
        port.postMessage({ kind: "started" });
      }, failed);
    } else {
      (host?.stop() ?? Promise.resolve()).then(() => port.postMessage({ kind: "stopped" }), failed);
    }
  };
}
