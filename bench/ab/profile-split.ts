// Where a `dev` process's CPU profile (bun --cpu-prof) went between two times, for the
// overload analysis (bench/analysis-overload.md; bench/ab/overload-profile.sh runs it):
//   bun bench/ab/profile-split.ts <file.cpuprofile> <from s> <to s>
// Prints the samples' shares by the first part of the product on their stack (the
// processors, a refusal's answer, the write handler and the log, Hono, the rest), the
// heaviest frames by self samples, and how long the processors held the thread at a
// stretch: consecutive samples with a processor frame, nothing else sampled between.
import { percentile } from "../stats.js";

const [file, from, to] = process.argv.slice(2);
if (!file || from === undefined || to === undefined) throw new Error("usage: profile-split.ts <file.cpuprofile> <from s> <to s>");

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const profile = (await Bun.file(file).json()) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parents = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n.id);

/** First match wins, from the leaf's side of the list. */
const parts: [string, RegExp][] = [
  ["processors (src/runtime batch and commit, src/groups, actors)", /src\/runtime\/(processor|batch|host|commit|changelog|timers|dead-letter)\.ts|src\/groups\/|\/actors\//],
  ["refusal answers (src/http/errors.ts: ApiError, errorResponse)", /src\/http\/errors\.ts/],
  ["write handler and its log append (src/http/app.ts, emitter, src/log)", /src\/http\/app\.ts|src\/runtime\/emitter\.ts|src\/log\//],
  ["Hono (routing, context)", /node_modules\/hono\//],
];
const rest = "the rest (Bun's HTTP and natives outside those)";

const frameText = (n: ProfileNode) => `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/^.*\/(src|actors|node_modules)\//, "$1/")}:${n.callFrame.lineNumber + 1}`;
function stackOf(id: number): ProfileNode[] {
  const stack: ProfileNode[] = [];
  for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) stack.push(nodes.get(at)!);
  return stack;
}
const partOf = (stack: ProfileNode[]) => parts.find(([, re]) => stack.some((n) => re.test(n.callFrame.url)))?.[0] ?? rest;

const byPart = new Map<string, number>();
const bySelf = new Map<string, number>();
const stretches: number[] = [];
let stretchStart: number | undefined;
let previousMs = 0;
let sampled = 0;
let ms = 0;
for (let i = 0; i < profile.samples.length; i++) {
  ms += profile.timeDeltas[i]! / 1000;
  if (ms < Number(from) * 1000 || ms > Number(to) * 1000) continue;
  const stack = stackOf(profile.samples[i]!);
  const part = partOf(stack);
  sampled++;
  byPart.set(part, (byPart.get(part) ?? 0) + 1);
  bySelf.set(frameText(stack[0]!), (bySelf.get(frameText(stack[0]!)) ?? 0) + 1);
  const processor = part === parts[0]![0];
  if (processor && stretchStart === undefined) stretchStart = ms;
  if (!processor && stretchStart !== undefined) {
    stretches.push(previousMs - stretchStart);
    stretchStart = undefined;
  }
  previousMs = ms;
}
if (sampled === 0) throw new Error(`no samples between ${from} s and ${to} s`);

const share = (n: number) => `${((100 * n) / sampled).toFixed(1)}%`;
console.log(`${sampled} samples between ${from} s and ${to} s of the profile`);
for (const [part, n] of [...byPart].sort((a, b) => b[1] - a[1])) console.log(`${share(n).padStart(6)}  ${part}`);
console.log("heaviest frames by self samples:");
for (const [frame, n] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${share(n).padStart(6)}  ${frame}`);
const at = (q: number) => (stretches.length === 0 ? "-" : percentile(stretches, q).toFixed(0));
console.log(`processors held the thread ${stretches.length} times at a stretch: p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`);
