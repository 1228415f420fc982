// The OpenAPI document: valid OpenAPI 3.1, rendered at /docs, and the README's curl
// examples, example answers and error codes checked against it.
import { describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import { join } from "node:path";
import { createApp } from "../../src/http/app.js";
import { ERROR_CODES } from "../../src/http/routes.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { LogGuard } from "../../src/log/guard.js";
import { Emitter } from "../../src/runtime/emitter.js";
import { commands } from "../../src/topics/commands.js";

const noViews = { get: () => undefined, applied: () => undefined, entries: () => [], entryAt: () => undefined, status: () => ({ caughtUp: true, asOfMs: Date.now() }), waitFor: async () => true, start() {}, done: Promise.resolve(), async stop() {} };
const log = new EmbeddedLog(":memory:", { pollMs: 10 });
const guard = new LogGuard(log);
const app = createApp({ commands: new Emitter(guard, commands), health: guard, balances: noViews, flags: noViews, depositAmountMaxMinor: 100_000_000_000n });

// biome-ignore lint: the document is plain JSON.
const doc: any = await (await app.request("/openapi.json")).json();
const readme = await Bun.file(join(import.meta.dir, "../../README.md")).text();

/** The operation of the document a method and a concrete path (such as /wallets/a/history) name. */
function operationFor(method: string, path: string) {
  for (const [template, item] of Object.entries(doc.paths) as [string, Record<string, unknown>][]) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    if (pattern.test(path) && item[method]) return { template, operation: item[method] as { parameters?: { name: string; in: string; required?: boolean }[]; security?: unknown[]; requestBody?: { required?: boolean; content: Record<string, { schema: unknown }> }; responses: Record<string, { content?: Record<string, { schema: unknown }> }> } };
  }
  return undefined;
}

/** Splits a shell command line into words, honouring single and double quotes. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const match of line.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(match[1] ?? match[2] ?? match[3]!);
  return out;
}

interface Curl {
  line: string;
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

function parseCurl(line: string): Curl {
  const argv = words(line);
  let method: string | undefined;
  const headers: Record<string, string> = {};
  let body: string | undefined;
  let url: URL | undefined;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-X") method = argv[++i]!.toLowerCase();
    else if (arg === "-H") {
      const [name, ...value] = argv[++i]!.split(":");
      headers[name!.trim().toLowerCase()] = value.join(":").trim();
    } else if (arg === "-d") body = argv[++i];
    else if (arg.startsWith("http")) url = new URL(arg);
    else throw new Error(`an option this check does not know: ${arg} in ${line}`);
  }
  if (!url) throw new Error(`no URL in ${line}`);
  return { line, method: method ?? (body === undefined ? "get" : "post"), url, headers, body };
}

/** The README's examples: each curl line of a sh block, and the JSON block after it, if any. */
function examples(): { curls: Curl[]; answers: { after: Curl; json: string }[] } {
  const curls: Curl[] = [];
  const answers: { after: Curl; json: string }[] = [];
  for (const block of readme.matchAll(/```(sh|json)\n([\s\S]*?)```/g)) {
    if (block[1] === "sh") {
      for (const line of block[2]!.split("\n").map((l) => l.trim())) if (line.startsWith("curl ") && line.includes("localhost:8080")) curls.push(parseCurl(line));
    } else if (curls.length > 0 && block.index! - (readme.lastIndexOf("```sh", block.index) ?? 0) < 2_000) {
      answers.push({ after: curls[curls.length - 1]!, json: block[2]! });
    }
  }
  return { curls, answers };
}

describe("the OpenAPI document", () => {
  test("is valid OpenAPI 3.1", async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe("3.1.0");
  });

  test("declares every route of the ledger", () => {
    const routes = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item as object).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual([
      "GET /check/{wallet_id}", "GET /health", "GET /ready", "GET /users/{user_id}/activity", "GET /users/{user_id}/wallets",
      "GET /wallets/{wallet_id}", "GET /wallets/{wallet_id}/balance",
      "GET /wallets/{wallet_id}/history", "GET /wallets/{wallet_id}/operations/{operation_id}", "POST /deposit", "POST /transfer",
      "POST /wallets", "POST /wallets/{wallet_id}/operations/{operation_id}/reverse", "POST /withdraw", "PUT /wallets/{wallet_id}/credit-limit",
      "DELETE /wallets/{wallet_id}/flag", "PUT /wallets/{wallet_id}/flag",
    ].sort());
  });

  test("/docs renders it: every route, with its summary", async () => {
    const res = await app.request("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    for (const [path, item] of Object.entries(doc.paths) as [string, Record<string, { summary: string }>][]) {
      for (const [method, op] of Object.entries(item)) {
        expect(html).toContain(`<span class="method">${method.toUpperCase()}</span> <code>${path}</code>`);
        expect(html).toContain(op.summary.replaceAll("'", "&#39;"));
      }
    }
  });
});

describe("the README against the document", () => {
  const { curls, answers } = examples();

  test("has curl examples for every route", () => {
    expect(curls.length).toBeGreaterThan(10);
    const covered = new Set(curls.map((c) => operationFor(c.method, c.url.pathname)).filter(Boolean).map((o) => o!.template));
    const missing = Object.keys(doc.paths).filter((path) => !covered.has(path) && !["/health", "/ready"].includes(path));
    expect(missing).toEqual([]);
  });

  test.each(curls.map((c) => [c.line, c] as const))("%s is a route of the document, with its parameters, headers and body", (_line, curl) => {
    const found = operationFor(curl.method, curl.url.pathname);
    expect(found).toBeDefined();
    const params = found!.operation.parameters ?? [];
    for (const name of curl.url.searchParams.keys()) expect(params.filter((p) => p.in === "query").map((p) => p.name)).toContain(name);
    // Authorization is the bearer security scheme of the routes that declare it, not a parameter.
    const headerNames = [...params.filter((p) => p.in === "header").map((p) => p.name), ...(found!.operation.security ? ["authorization"] : [])];
    for (const name of Object.keys(curl.headers)) expect(headerNames).toContain(name);
    const bodySchema = found!.operation.requestBody?.content["application/json"]?.schema as { $ref?: string } | undefined;
    if (curl.body === undefined) {
      expect(found!.operation.requestBody?.required ?? false).toBe(false);
      return;
    }
    expect(bodySchema).toBeDefined();
    const ajv = new Ajv2020({ strict: false, schemas: [{ $id: "doc", components: doc.components }] });
    const validate = ajv.compile({ $ref: `doc${bodySchema!.$ref}` });
    const body = JSON.parse(curl.body);
    expect(validate(body) ? [] : validate.errors).toEqual([]);
    // No field the document does not know (the schemas allow others; the README must not use them).
    const name = bodySchema!.$ref!.split("/").pop()!;
    expect(Object.keys(body).filter((k) => !(k in doc.components.schemas[name].properties))).toEqual([]);
  });

  test.each(answers.map((a) => [a.after.line, a] as const))("the answer shown after %s matches a response of its route", (_line, { after, json }) => {
    const found = operationFor(after.method, after.url.pathname)!;
    const ajv = new Ajv2020({ strict: false, schemas: [{ $id: "doc", components: doc.components }] });
    const body = JSON.parse(json);
    const matches = Object.entries(found.operation.responses).filter(([, r]) => {
      const schema = r.content?.["application/json"]?.schema as { $ref?: string } | undefined;
      if (!schema) return false;
      const validate = ajv.compile(schema.$ref ? { $ref: `doc${schema.$ref}` } : { ...schema, components: doc.components });
      return validate(body);
    });
    expect(matches.length).toBeGreaterThan(0);
  });

  test("the error table lists exactly the codes of the document, by status", () => {
    const table = readme.slice(readme.indexOf("### Errors"), readme.indexOf("### The `ledger` topic"));
    for (const [status, codes] of Object.entries(ERROR_CODES)) {
      const row = table.split("\n").find((l) => l.startsWith(`| ${status} |`));
      expect(row).toBeDefined();
      const listed = [...row!.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!).filter((code) => code !== "operation_id" && code !== "deposit_id");
      expect(listed.sort()).toEqual([...codes].sort());
    }
    const documented = doc.components.schemas.Error.properties.error.properties.code.enum as string[];
    expect(documented.sort()).toEqual([...new Set(Object.values(ERROR_CODES).flat())].sort());
  });
});
