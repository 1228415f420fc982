import { isRetryable, LogUnavailableError } from "../runtime/errors.js";
import type { Pinger, Producer, ProduceRecord, RecordPosition } from "./log.js";

export interface GuardLimits {
  /** How long a readiness ping may take before the log counts as away. */
  pingTimeoutMs: number;
  /** While the log is away, how often it is asked whether it is back. */
  probeIntervalMs: number;
  /** A readiness answer this recent is reused rather than asked again. */
  pingCacheMs: number;
}

export const DEFAULT_GUARD_LIMITS: GuardLimits = { pingTimeoutMs: 2_000, probeIntervalMs: 1_000, pingCacheMs: 500 };

/** The log's health as the API last saw it. */
export type LogHealth = { up: true } | { up: false; sinceMs: number; reason: string };

/**
 * The API's side of the log's health (a circuit breaker). A write that fails because
 * the log is away marks it down; while it is down, writes fail at once, so clients get
 * a 503 in milliseconds instead of waiting on a dead broker, and a probe asks the log
 * every `probeIntervalMs` until it answers. Readiness asks the log for real, bounded
 * by `pingTimeoutMs`.
 */
export class LogGuard implements Producer {
  private health: LogHealth = { up: true };
  private probe: ReturnType<typeof setInterval> | undefined;
  private lastPing: { atMs: number; result: Promise<LogHealth> } | undefined;

  constructor(private readonly log: Producer & Pinger, private readonly limits: GuardLimits = DEFAULT_GUARD_LIMITS) {}

  get state(): LogHealth {
    return this.health;
  }

  async produce(records: ProduceRecord[]): Promise<RecordPosition[]> {
    if (!this.health.up) throw new LogUnavailableError(`the log has been unavailable since ${new Date(this.health.sinceMs).toISOString()}: ${this.health.reason}`);
    try {
      return await this.log.produce(records);
    } catch (error) {
      if (isRetryable(error)) this.markDown((error as Error).message);
      throw error;
    }
  }

  /** Asks the log whether it answers (reusing an answer at most `pingCacheMs` old). */
  check(): Promise<LogHealth> {
    const nowMs = Date.now();
    if (this.lastPing && nowMs - this.lastPing.atMs < this.limits.pingCacheMs) return this.lastPing.result;
    const result = this.log.ping(this.limits.pingTimeoutMs).then(
      (): LogHealth => {
        this.markUp();
        return this.health;
      },
      (error: Error): LogHealth => {
        this.markDown(error.message);
        return this.health;
      },
    );
    this.lastPing = { atMs: nowMs, result };
    return result;
  }

  private markDown(reason: string): void {
    if (!this.health.up) return;
    this.health = { up: false, sinceMs: Date.now(), reason };
    console.warn(`log unavailable: ${reason}`);
    this.probe ??= setInterval(() => void this.check(), this.limits.probeIntervalMs);
  }

  private markUp(): void {
    if (this.health.up) return;
    console.log(`log available again after ${Date.now() - this.health.sinceMs} ms`);
    this.health = { up: true };
    clearInterval(this.probe);
    this.probe = undefined;
  }

  close(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }
}
