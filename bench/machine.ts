// What the numbers were measured on and of: the machine, and the commits.
import { existsSync, readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  bun: string;
}

export function machine(): Machine {
  // /proc/cpuinfo is what the kernel reports; os.cpus() is the fallback off Linux.
  const cpuinfo = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown";
  return { cores: navigator.hardwareConcurrency, cpuModel, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), bun: Bun.version };
}

/** The commit checked out in `dir`, marked when the work tree has uncommitted changes. */
export function gitCommit(dir: string): string {
  const git = (...args: string[]) => Bun.spawnSync(["git", "-C", dir, ...args]);
  const head = git("rev-parse", "HEAD");
  if (head.exitCode !== 0) return "unknown (not a git checkout)";
  const dirty = git("status", "--porcelain").stdout.toString().trim() !== "";
  return head.stdout.toString().trim() + (dirty ? " (with uncommitted changes)" : "");
}
