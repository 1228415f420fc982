// Child processes of the bench: servers (the product's and the ceilings'), programs
// run to completion (ceilings, load generators), each optionally pinned to a core.
// Every child is killed if the bench exits without stopping it.

/** Pinning needs taskset and at least two cores: the server gets one, the load the other. */
export const pinning = Bun.which("taskset") !== null && navigator.hardwareConcurrency >= 2;
export const serverCore = 0;
export const loadCore = 1;
/** Where the measured process ran, for the report. */
export const serverPlacement = pinning ? `pinned to core ${serverCore}` : "not pinned";

/** Long enough for a Kafka consumer group to form on a loaded machine. */
const startTimeoutMs = 60_000;
/** A graceful stop commits the batch in hand; past this the child is killed. */
const stopTimeoutMs = 30_000;
/** The output kept per child, its newest part: enough for the log lines we parse. */
const outputCharsMax = 1_000_000;
/** A program run to its end (a load run, a ceiling) that takes longer has hung. */
const programTimeoutMs = 20 * 60_000;
/** The tail shown when a child fails. */
const failureTailChars = 4_000;

/** Servers print this once they accept connections: the product's contract, which the ceilings follow. */
const LISTENING = /listening on http:\/\/localhost:(\d+)/;

const live = new Set<Bun.Subprocess>();
process.on("exit", () => {
  for (const proc of live) proc.kill("SIGKILL");
});

export interface SpawnOptions {
  cwd: string;
  env: Record<string, string>;
  /** The core to pin the child to, when pinning is available. */
  core?: number;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Everything the child printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Resident memory now (VmRSS from /proc/<pid>/status). */
  rssBytes(): Promise<number>;
  /** Throws, with the child's last output, if it exited without being asked to. */
  assertRunning(): void;
  /** SIGTERM, then SIGKILL after stopTimeoutMs. Resolves once the child is gone. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, no chance to finish anything. Resolves once the child is gone. */
  kill(): Promise<void>;
}

export interface Server extends Child {
  /** http://127.0.0.1:<port> */
  readonly base: string;
}

const pinned = (cmd: string[], core: number | undefined) => (pinning && core !== undefined ? ["taskset", "-c", String(core), ...cmd] : cmd);
const tail = (text: string) => text.slice(-failureTailChars);

/** Spawns a command, pinned if asked, its output piped; it is killed if the bench exits first. */
function spawnPinned(cmd: string[], options: SpawnOptions) {
  // taskset execs the command, so the pid is the command's own.
  const proc = Bun.spawn(pinned(cmd, options.core), {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  live.add(proc);
  return proc;
}

/** Starts a child and keeps draining its output, so it never blocks on a full pipe. */
export function spawnChild(name: string, cmd: string[], options: SpawnOptions): Child {
  const proc = spawnPinned(cmd, options);
  let text = "";
  let exitCode: number | undefined;
  let stopping = false;
  for (const stream of [proc.stdout, proc.stderr]) {
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        text += decoder.decode(chunk, { stream: true });
        if (text.length > outputCharsMax) text = text.slice(-outputCharsMax / 2);
      }
    })().catch(() => {});
  }
  void proc.exited.then((code) => {
    exitCode = code;
    live.delete(proc);
  });
  return {
    name,
    pid: proc.pid,
    output: () => text,
    async rssBytes() {
      const status = await Bun.file(`/proc/${proc.pid}/status`).text();
      const kib = /VmRSS:\s+(\d+) kB/.exec(status);
      if (!kib) throw new Error(`${name}: no VmRSS in /proc/${proc.pid}/status`);
      return Number(kib[1]) * 1024;
    },
    assertRunning() {
      if (exitCode !== undefined && !stopping) throw new Error(`${name} exited with status ${exitCode}; its last output:\n${tail(text)}`);
    },
    async stop() {
      stopping = true;
      if (exitCode !== undefined) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), stopTimeoutMs);
      await proc.exited;
      clearTimeout(timer);
    },
    async kill() {
      stopping = true;
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

/** Starts a server and waits for its "listening on" line. */
export async function spawnServer(name: string, cmd: string[], options: SpawnOptions): Promise<Server> {
  const child = spawnChild(name, cmd, options);
  const deadline = performance.now() + startTimeoutMs;
  for (;;) {
    const port = LISTENING.exec(child.output())?.[1];
    if (port) return { ...child, base: `http://127.0.0.1:${port}` };
    try {
      child.assertRunning();
      if (performance.now() > deadline) throw new Error(`${name} did not start within ${startTimeoutMs} ms; its output:\n${tail(child.output())}`);
    } catch (error) {
      await child.stop();
      throw error;
    }
    await Bun.sleep(20);
  }
}

/** Runs a program to its end; returns its stdout, or throws with its output if it fails. */
export async function runProgram(name: string, cmd: string[], options: SpawnOptions): Promise<string> {
  const proc = spawnPinned(cmd, options);
  const timer = setTimeout(() => proc.kill("SIGKILL"), programTimeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  live.delete(proc);
  if (code !== 0) throw new Error(`${name} exited with status ${code}${proc.signalCode === "SIGKILL" ? ` (killed after ${programTimeoutMs} ms)` : ""}:\n${tail(stdout + stderr)}`);
  return stdout;
}

/** The JSON object a program printed on its last line starting with `marker`. */
export function lastJsonLine<T>(stdout: string, marker = ""): T {
  const line = stdout.split("\n").reverse().find((l) => l.startsWith(marker + "{"));
  if (!line) throw new Error(`no ${marker || "JSON"} line in:\n${tail(stdout)}`);
  return JSON.parse(line.slice(marker.length)) as T;
}

export interface RssSample {
  /** Since sampling started. */
  ms: number;
  bytes: number;
}

export interface RssSampler {
  /** Stops sampling; the samples taken, oldest first. */
  stop(): Promise<RssSample[]>;
}

/** Samples a child's resident memory every `intervalMs` (the first sample at once) until stopped. */
export function sampleRss(child: Child, intervalMs: number): RssSampler {
  const samples: RssSample[] = [];
  let stopping = false;
  let failure: unknown;
  const started = performance.now();
  const sampling = (async () => {
    while (!stopping) {
      samples.push({ ms: performance.now() - started, bytes: await child.rssBytes() });
      await Bun.sleep(intervalMs);
    }
  })().catch((error: unknown) => {
    failure = error;
  });
  return {
    async stop() {
      stopping = true;
      await sampling;
      if (failure !== undefined) throw failure;
      return samples;
    },
  };
}

/** Polls `done` every `intervalMs` until it is true; checks the children between polls. */
export async function until(what: string, done: () => boolean | Promise<boolean>, children: Child[], timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await done())) {
    for (const child of children) child.assertRunning();
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(intervalMs);
  }
}
