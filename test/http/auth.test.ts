// Bearer-token auth on every route of the document: 401 without a token or with an
// unknown one, 400 for a malformed header, 403 for a token of too low a role, and the
// route itself with the right one. In process with app.request, and against real
// `api` processes for the start-up rules (the banner; NODE_ENV=production).
import { afterAll, describe, expect, test } from "bun:test";
import { GROUPS } from "../../src/groups/index.js";
import { createApp } from "../../src/http/app.js";
import { Auth, parseTokens } from "../../src/http/auth.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { LogGuard } from "../../src/log/guard.js";
import { Emitter } from "../../src/runtime/emitter.js";
import { topicSpecs } from "../../src/runtime/group.js";
import { commands } from "../../src/topics/commands.js";
import { flags } from "../../src/topics/flags.js";
import { REPO_DIR, tempDataDir } from "../support.js";

const READ = "read-token-0123456789";
const WRITE = "write-token-0123456789";
const ADMIN = "admin-token-0123456789";

const noViews = { get: () => undefined, applied: () => undefined, entries: () => [], entryAt: () => undefined, status: () => ({ caughtUp: true, asOfMs: Date.now() }), waitFor: async () => false, start() {}, done: Promise.resolve(), async stop() {} };

const log = new EmbeddedLog(":memory:", { pollMs: 10 });
await log.ensureTopics(topicSpecs(GROUPS, 12));
afterAll(() => log.close());

function appWith(tokens: { read?: string[]; write?: string[]; admin?: string[] }) {
  const guard = new LogGuard(log);
  const auth = new Auth({ read: tokens.read ?? [], write: tokens.write ?? [], admin: tokens.admin ?? [] });
  return createApp({ commands: new Emitter(guard, commands), flagEvents: new Emitter(guard, flags), health: guard, balances: noViews, flags: noViews, users: noViews, depositAmountMaxMinor: 100_000_000_000n, auth });
}

interface Route {
  method: string;
  path: string;
  role: "read" | "write" | "admin" | null;
}

const ADMIN_ROUTES = ["PUT /wallets/{wallet_id}/credit-limit", "POST /wallets/{wallet_id}/operations/{operation_id}/reverse", "PUT /wallets/{wallet_id}/flag", "DELETE /wallets/{wallet_id}/flag"];
const OPEN_ROUTES = ["GET /health", "GET /ready"];

/** Every operation of the document, with the role this test expects it to need. */
async function documentedRoutes(): Promise<Route[]> {
  const document = (await (await appWith({}).request("/openapi.json")).json()) as { paths: Record<string, Record<string, unknown>> };
  const routes: Route[] = [];
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const method of Object.keys(operations)) {
      const name = `${method.toUpperCase()} ${path}`;
      const role = OPEN_ROUTES.includes(name) ? null : ADMIN_ROUTES.includes(name) ? "admin" : method === "get" ? "read" : "write";
      routes.push({ method: method.toUpperCase(), path: path.replace("{wallet_id}", "w1").replace("{operation_id}", "op1").replace("{user_id}", "u1"), role });
    }
  }
  return routes;
}

const routes = await documentedRoutes();

async function call(app: ReturnType<typeof appWith>, route: Route, authorization?: string) {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  const body = route.method === "GET" || route.method === "DELETE" ? undefined : "{}";
  const query = route.path.endsWith("/balance") ? "?at=2026-01-01T00:00:00Z" : "";
  return app.request(`${route.path}${query}`, { method: route.method, headers, body });
}

async function expectRefusal(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toStartWith("application/json");
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  return body;
}

test("the document has the routes this test knows of, the flag routes among them", () => {
  const names = routes.map((r) => `${r.method} ${r.path}`);
  expect(names).toContain("PUT /wallets/w1/flag");
  expect(names).toContain("DELETE /wallets/w1/flag");
  expect(routes.filter((r) => r.role === "admin")).toHaveLength(ADMIN_ROUTES.length);
  expect(routes.length).toBeGreaterThanOrEqual(17);
});

describe("with API_TOKENS, ADMIN_TOKENS and READ_TOKENS set", () => {
  const app = appWith({ read: [READ], write: [WRITE], admin: [ADMIN] });

  for (const route of routes.filter((r) => r.role !== null)) {
    test(`${route.method} ${route.path} (${route.role})`, async () => {
      const missing = await call(app, route);
      await expectRefusal(missing, 401, "token_missing");
      expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="depositaja"');

      const unknown = await call(app, route, `Bearer ${WRITE}x`);
      await expectRefusal(unknown, 401, "token_invalid");
      expect(unknown.headers.get("www-authenticate")).toContain('error="invalid_token"');

      await expectRefusal(await call(app, route, `Basic ${WRITE}`), 400, "authorization_malformed");
      await expectRefusal(await call(app, route, "Bearer tok en with spaces"), 400, "authorization_malformed");

      const lower = { read: [], write: [READ], admin: [READ, WRITE] }[route.role!];
      for (const token of lower) await expectRefusal(await call(app, route, `Bearer ${token}`), 403, `${route.role}_token_required`);
      const enough = { read: [READ, WRITE, ADMIN], write: [WRITE, ADMIN], admin: [ADMIN] }[route.role!];
      for (const token of enough) {
        const res = await call(app, route, `Bearer ${token}`);
        expect([401, 403]).not.toContain(res.status);
        expect(res.status).toBeLessThan(500);
      }
    });
  }

  test("probes stay open: /health, /ready, /openapi.json, /docs", async () => {
    for (const path of ["/health", "/ready", "/openapi.json", "/docs"]) expect((await app.request(path)).status).toBe(200);
  });

  test("a refused write writes nothing", async () => {
    const before = await log.endOffsets(commands.name);
    for (const authorization of [undefined, `Bearer ${READ}`, `Bearer ${WRITE}x`]) {
      const res = await app.request("/deposit", { method: "POST", headers: authorization ? { authorization } : {}, body: '{"wallet_id":"w1","amount":"5"}' });
      expect([401, 403]).toContain(res.status);
    }
    expect(await log.endOffsets(commands.name)).toEqual(before);
    const accepted = await app.request("/deposit", { method: "POST", headers: { authorization: `Bearer ${WRITE}` }, body: '{"wallet_id":"w1","amount":"5"}' });
    expect(accepted.status).toBe(202);
    expect(await log.endOffsets(commands.name)).not.toEqual(before);
  });

  test("an admin flags and unflags a wallet over HTTP; the event lands in flags", async () => {
    const before = await log.endOffsets(flags.name);
    const set = await app.request("/wallets/w9/flag", { method: "PUT", headers: { authorization: `Bearer ${ADMIN}`, "idempotency-key": "flag-w9-1" } });
    expect(set.status).toBe(202);
    expect(await set.json()).toMatchObject({ event_id: "flag-w9-1", wallet_id: "w9", flagged: true, status: "pending" });
    const clear = await app.request("/wallets/w9/flag", { method: "DELETE", headers: { authorization: `Bearer ${ADMIN}` } });
    expect(clear.status).toBe(202);
    expect(await clear.json()).toMatchObject({ wallet_id: "w9", flagged: false, event_id: expect.stringMatching(/^manual:/) });
    const after = await log.endOffsets(flags.name);
    const added = after.reduce((sum, end, partition) => sum + end - before[partition]!, 0);
    expect(added).toBe(2);
  });
});

describe("with only API_TOKENS set", () => {
  const app = appWith({ write: [WRITE] });

  test("reads are open, writes need the token, admin actions refuse it", async () => {
    for (const route of routes.filter((r) => r.role === "read")) {
      const res = await call(app, route);
      expect([401, 403]).not.toContain(res.status);
    }
    await expectRefusal(await app.request("/deposit", { method: "POST", body: "{}" }), 401, "token_missing");
    await expectRefusal(await app.request("/wallets/w1/flag", { method: "PUT", headers: { authorization: `Bearer ${WRITE}` } }), 403, "admin_token_required");
  });
});

describe("with no tokens (dev)", () => {
  const app = appWith({});

  test("every route is open", async () => {
    for (const route of routes) {
      const res = await call(app, route);
      expect([401, 403]).not.toContain(res.status);
    }
  });
});

describe("tokens", () => {
  test("a token is recognised whole, never by a prefix or with a suffix; the highest role wins", () => {
    const auth = new Auth({ read: [READ], write: [WRITE, ADMIN], admin: [ADMIN] });
    expect(auth.roleOf(READ)).toBe("read");
    expect(auth.roleOf(WRITE)).toBe("write");
    expect(auth.roleOf(ADMIN)).toBe("admin");
    expect(auth.roleOf(WRITE.slice(0, -1))).toBeUndefined();
    expect(auth.roleOf(`${WRITE}0`)).toBeUndefined();
    expect(auth.roleOf("")).toBeUndefined();
  });

  test("a malformed or short token stops start-up, and the message never shows it", () => {
    for (const bad of ["short", "has space in it 0123456789", "ünïcode-0123456789"]) {
      let message = "";
      try {
        parseTokens("API_TOKENS", `${WRITE},${bad}`);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain("API_TOKENS: token 2 must be");
      expect(message).not.toContain(bad);
      expect(message).not.toContain(WRITE);
    }
    expect(parseTokens("API_TOKENS", ` ${WRITE} , ${ADMIN} `)).toEqual([WRITE, ADMIN]);
  });
});

describe("start-up", () => {
  const data = tempDataDir();
  afterAll(() => data.cleanup());

  test("NODE_ENV=production without API_TOKENS refuses to start, saying why", async () => {
    const proc = Bun.spawn([process.execPath, `${REPO_DIR}/src/cli/api.ts`], { cwd: REPO_DIR, env: { ...process.env, BROKERS: "", NODE_ENV: "production", DATA_DIR: data.dir, PORT: "0" }, stdout: "pipe", stderr: "pipe" });
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(code).not.toBe(0);
    expect(stderr).toContain("NODE_ENV=production and no API_TOKENS");
    expect(stdout).not.toContain("listening");
  });

  /** An `api` child whose whole output is kept, to look for tokens in. */
  async function api(env: Record<string, string>) {
    const proc = Bun.spawn([process.execPath, `${REPO_DIR}/src/cli/api.ts`], { cwd: REPO_DIR, env: { ...process.env, BROKERS: "", DATA_DIR: data.dir, PORT: "0", ...env }, stdout: "pipe", stderr: "pipe" });
    let output = "";
    for (const stream of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) {
      (async () => {
        for await (const chunk of stream) output += new TextDecoder().decode(chunk);
      })().catch(() => {});
    }
    const deadline = Date.now() + 20_000;
    while (!/auth: .*\n/.test(output) && Date.now() < deadline) await Bun.sleep(20);
    const port = /listening on http:\/\/localhost:(\d+)/.exec(output)?.[1];
    if (!port) throw new Error(`api did not start: ${output}`);
    const stop = async () => {
      proc.kill("SIGTERM");
      await proc.exited;
      await Bun.sleep(50);
      return output;
    };
    return { base: `http://127.0.0.1:${port}`, output: () => output, stop };
  }

  test("with no tokens the banner says plainly that anyone may write", async () => {
    const open = await api({});
    const output = await open.stop();
    expect(output).toContain("auth: OFF");
    expect(output).toContain("anyone who can reach this port may write");
  });

  test("with tokens the banner says how many, never which; a presented token is never logged", async () => {
    const WRONG = "wrong-token-0123456789";
    const guarded = await api({ NODE_ENV: "production", API_TOKENS: WRITE, ADMIN_TOKENS: ADMIN });
    const statuses: number[] = [];
    for (const token of [WRONG, WRITE, ADMIN]) {
      const res = await fetch(`${guarded.base}/wallets/w1/flag`, { method: "PUT", headers: { authorization: `Bearer ${token}` } });
      statuses.push(res.status);
    }
    const output = await guarded.stop();
    expect(statuses).toEqual([401, 403, 202]);
    expect(output).toContain("auth: bearer tokens; writes need API_TOKENS or ADMIN_TOKENS (1 API_TOKENS), admin actions ADMIN_TOKENS (1 ADMIN_TOKENS), reads are open");
    for (const token of [WRITE, ADMIN, WRONG]) expect(output).not.toContain(token);
  });
});
