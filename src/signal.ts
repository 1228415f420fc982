/**
 * A wake-up for waiters: `wait(ms)` resolves at the next `notify()` or after `ms`,
 * whichever comes first. Waiters re-check their condition; a notify carries no data.
 */
export class Signal {
  private waiters = new Set<() => void>();

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.waiters;
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });
  }

  notify(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
}
