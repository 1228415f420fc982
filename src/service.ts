import type { OperationRecord, WalletState } from "../actors/wallet.js";
import type { FlagState } from "../actors/flagger.js";
import type { Config } from "./config.js";
import type { UserState } from "../actors/users.js";
import { balance, flagger, users } from "./groups/index.js";
import { createApp, hostRefusal, MAX_REQUEST_BODY_BYTES } from "./http/app.js";
import { EmbeddedLog } from "./log/embedded.js";
import { LogGuard } from "./log/guard.js";
import type { Log } from "./log/log.js";
import { openLog } from "./log/open.js";
import { Emitter } from "./runtime/emitter.js";
import type { AnyGroup, Group } from "./runtime/group.js";
import { ProcessorHost, WorkerProcessors, type Processors } from "./runtime/host.js";
import { ChangelogView, LocalTable, type TableReader } from "./runtime/view.js";
import { StateStore } from "./store/state-store.js";
import { commands } from "./topics/commands.js";
import { flags } from "./topics/flags.js";
import { Auth } from "./http/auth.js";

export interface ServiceOptions {
  /** Serve the HTTP API (and keep the views it reads). */
  api: boolean;
  /** Processor groups to run in this process. */
  groups: readonly AnyGroup[];
  /** Run the processors on a worker thread, off the API's event loop (as `dev` does). */
  processorsOnWorker?: boolean;
  /** Discard this instance's state of its groups at start, and rebuild it from the log. */
  rebuildState?: boolean;
}

/** The views the API reads. */
export interface Views {
  balances: TableReader<WalletState, OperationRecord>;
  flags: TableReader<FlagState>;
  users: TableReader<UserState>;
}

/**
 * One process of Depositaja: some processor groups, and optionally the API with its
 * views. `dev` runs everything; `api` and `processor` run parts, against the same log.
 */
export class Service {
  private server: ReturnType<typeof Bun.serve> | undefined;
  private stopped: Promise<void> | undefined;
  /** Set by SIGTERM (stop): answers close their connections, and /ready says 503. */
  draining = false;
  private readonly closingSignal = Promise.withResolvers<void>();
  /** Resolved when the server stops listening: waits for decisions end then. */
  readonly closing = this.closingSignal.promise;
  private shutdownMs = { grace: 0, timeout: 10_000 };

  private constructor(
    /** The API's connection to the log; for processors only, none. */
    readonly log: Log | undefined,
    readonly views: Views | undefined,
    readonly processors: Processors | undefined,
    private readonly closeViews: () => void,
    private readonly guard: LogGuard | undefined,
  ) {}

  static async start(config: Config, options: ServiceOptions): Promise<Service> {
    if (options.api && config.production && config.tokens.write.length === 0) {
      throw new Error("NODE_ENV=production and no API_TOKENS: refusing to serve writes to anyone; set API_TOKENS (and ADMIN_TOKENS for admin actions)");
    }
    const host = { rebuildState: options.rebuildState ?? false };
    const processors = options.groups.length === 0
      ? undefined
      : options.processorsOnWorker
        ? await WorkerProcessors.start(config, options.groups, host)
        : await ProcessorHost.start(config, options.groups, host);
    // A processor stops only on a broken invariant; a process that cannot apply
    // events must not keep acknowledging deposits as if all were well.
    processors?.done.catch((error) => {
      console.error("processors stopped:", error);
      process.exit(70);
    });
    if (!options.api) return new Service(undefined, undefined, processors, () => {}, undefined);
    const auth = new Auth(config.tokens);
    const log = await openLog(config, "api");
    const { views, close } = openViews(config, log);
    const guard = new LogGuard(log);
    const service = new Service(log, views, processors, close, guard);
    for (const view of [views.balances, views.flags, views.users]) {
      view.start();
      // As for processors: a view that cannot go on must not answer as if all were well.
      view.done.catch((error) => {
        console.error("view stopped:", error);
        process.exit(70);
      });
    }
    const app = createApp({
      commands: new Emitter(guard, commands),
      health: guard,
      ...views,
      depositAmountMaxMinor: config.depositAmountMaxMinor,
      creditLimitMaxMinor: config.creditLimitMaxMinor,
      transferAmountMaxMinor: config.transferAmountMaxMinor,
      userWalletsMax: config.userWalletsMax,
      checkAfterWaitMs: config.checkAfterWaitMs,
      auth,
      shutdown: service,
      writesInFlightMax: config.writesInFlightMax,
      viewWaitsMax: config.viewWaitsMax,
      flagEvents: new Emitter(guard, flags),
    });
    service.shutdownMs = { grace: config.shutdownGraceMs, timeout: config.shutdownTimeoutMs };
    service.server = Bun.serve({
      port: config.port,
      // While draining, every answer closes its connection: a keep-alive client moves on
      // instead of sending the next request to a server about to close.
      fetch: (request, server) =>
        hostRefusal(request) ?? (service.draining ? Promise.resolve(app.fetch(request, server)).then(closingConnection) : app.fetch(request, server)),
      maxRequestBodySize: MAX_REQUEST_BODY_BYTES,
    });
    console.log(`depositaja listening on http://localhost:${service.server.port}`);
    console.log(auth.describe());
    return service;
  }

  get port(): number | undefined {
    return this.server?.port;
  }

  /**
   * Graceful stop, bounded by SHUTDOWN_TIMEOUT_MS:
   * 1. for SHUTDOWN_GRACE_MS the API goes on answering, every answer with
   *    `Connection: close`, and /ready says 503: requests already sent (parsed or not)
   *    get their answer, and keep-alive clients leave;
   * 2. it stops listening; requests in flight finish (a wait for a decision answers
   *    what it has), their writes stored or refused, never half-written; what is still
   *    open when the timeout runs out is closed;
   * 3. each processor commits the batch in hand; the log and the databases close.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      const server = this.server;
      if (server) {
        const startedMs = Date.now();
        this.draining = true;
        await Bun.sleep(this.shutdownMs.grace);
        this.closingSignal.resolve();
        const finished = server.stop(false).then(() => true);
        const leftMs = Math.max(0, this.shutdownMs.timeout - (Date.now() - startedMs));
        if (!(await Promise.race([finished, Bun.sleep(leftMs).then(() => false)]))) {
          console.warn(`requests still in flight ${this.shutdownMs.timeout} ms after SIGTERM (SHUTDOWN_TIMEOUT_MS): closing their connections`);
          await server.stop(true);
        }
      }
      await this.processors?.stop();
      if (this.views) await Promise.all([this.views.balances.stop(), this.views.flags.stop(), this.views.users.stop()]);
      this.guard?.close();
      await this.log?.close();
      this.closeViews();
    })();
    return this.stopped;
  }
}

/** An answer that closes its connection (RFC 9112 9.6). */
function closingConnection(response: Response): Response {
  try {
    response.headers.set("Connection", "close");
    return response;
  } catch {
    // Immutable headers (a response passed through from elsewhere): copy them.
    const headers = new Headers(response.headers);
    headers.set("Connection", "close");
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}

/**
 * The views of the groups the API reads. On the embedded log they read the groups'
 * tables in place; on Kafka they replicate the changelogs into DATA_DIR/views.db.
 */
function openViews(config: Config, log: Log): { views: Views; close(): void } {
  if (log instanceof EmbeddedLog) {
    const store = new StateStore(log.sqlite);
    return { views: { balances: new LocalTable(balance, store), flags: new LocalTable(flagger, store), users: new LocalTable(users, store) }, close: () => {} };
  }
  const store = StateStore.open(config.dataDir, "views.db");
  const view = <S, R>(group: Group<S, unknown, unknown, R>) => new ChangelogView(group, log, store);
  return { views: { balances: view(balance), flags: view(flagger), users: view(users) }, close: () => store.close() };
}

/**
 * Stops the service on SIGTERM or SIGINT, then exits. Called with the service still
 * starting, so that a signal that comes as it starts (or just after it says it listens)
 * stops it gracefully once it is up, instead of killing it mid-request.
 */
export function stopOnSignals(starting: Promise<Service>): void {
  const onSignal = (signal: string) => {
    console.log(`${signal}: stopping`);
    starting.then((service) => service.stop()).then(
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
