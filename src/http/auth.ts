import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { ApiError } from "./errors.js";

/**
 * What a route needs of its caller. Each role includes the ones before it: an admin
 * token may write and read, a write token may read.
 */
export type Role = "read" | "write" | "admin";
const RANK: Record<Role, number> = { read: 0, write: 1, admin: 2 };

/** The bearer tokens of each role, from READ_TOKENS, API_TOKENS and ADMIN_TOKENS. */
export interface Tokens {
  read: readonly string[];
  write: readonly string[];
  admin: readonly string[];
}

export const NO_TOKENS: Tokens = { read: [], write: [], admin: [] };

/** RFC 6750's b64token, which is what Hono's bearerAuth accepts in the header. */
export const TOKEN_SYNTAX = /^[A-Za-z0-9._~+/-]+=*$/;
export const TOKEN_LENGTH_MIN = 16;
export const TOKEN_LENGTH_MAX = 512;

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * Bearer-token auth on Hono's `bearerAuth` middleware. With no token configured at all
 * every route is open (dev). Otherwise writes need a write or admin token, admin
 * actions an admin token, and reads a token only when READ_TOKENS is set.
 *
 * Tokens are compared in constant time: the presented token's SHA-256 against each
 * configured token's, every one of them compared with crypto.timingSafeEqual (equal
 * lengths, no early exit), so the time taken says nothing of how much of a token
 * matched, or which. Tokens are never logged, nor put in a message.
 */
export class Auth {
  private readonly digests: { digest: Buffer; role: Role }[];
  private readonly guards = new Map<Role, MiddlewareHandler>();
  readonly open: boolean;
  readonly readsOpen: boolean;

  constructor(private readonly tokens: Tokens) {
    this.digests = (["read", "write", "admin"] as const).flatMap((role) => tokens[role].map((token) => ({ digest: sha256(token), role })));
    this.open = this.digests.length === 0;
    this.readsOpen = tokens.read.length === 0;
  }

  /** The role a token grants (the highest, if it is in several lists), or undefined. */
  roleOf(token: string): Role | undefined {
    const digest = sha256(token);
    let role: Role | undefined;
    for (const known of this.digests) {
      if (timingSafeEqual(digest, known.digest) && (role === undefined || RANK[known.role] > RANK[role])) role = known.role;
    }
    return role;
  }

  /** The middleware a route that needs `role` runs first; undefined when it needs no token. */
  guard(role: Role): MiddlewareHandler | undefined {
    if (this.open || (role === "read" && this.readsOpen)) return undefined;
    let guard = this.guards.get(role);
    if (!guard) {
      guard = bearerAuth({
        realm: "depositaja",
        verifyToken: (token) => {
          const granted = this.roleOf(token);
          if (granted === undefined) return false;
          if (RANK[granted] < RANK[role]) {
            throw new ApiError(403, `${role}_token_required`, role === "admin"
              ? "this action needs a token from ADMIN_TOKENS"
              : "this action needs a token from API_TOKENS or ADMIN_TOKENS; this one may only read");
          }
          return true;
        },
        noAuthenticationHeader: { message: errorBody("token_missing", "send the header Authorization: Bearer <token>") },
        invalidAuthenticationHeader: { message: errorBody("authorization_malformed", "the Authorization header must be \"Bearer <token>\", the token of A-Z a-z 0-9 - . _ ~ + / (RFC 6750)") },
        invalidToken: { message: errorBody("token_invalid", "the bearer token is not one this service knows") },
      });
      this.guards.set(role, guard);
    }
    return guard;
  }

  /** A line for the start-up banner: what is open, and how many tokens of each kind (never the tokens). */
  describe(): string {
    if (this.open) return "auth: OFF, no API_TOKENS, ADMIN_TOKENS or READ_TOKENS set: anyone who can reach this port may write and run admin actions (fine for dev, never in production)";
    const count = (role: Role) => `${this.tokens[role].length} ${role === "write" ? "API" : role.toUpperCase()}_TOKENS`;
    return `auth: bearer tokens; writes need API_TOKENS or ADMIN_TOKENS (${count("write")}), admin actions ADMIN_TOKENS (${count("admin")}), reads ${this.readsOpen ? "are open" : `READ_TOKENS or any other (${count("read")})`}`;
  }
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/**
 * Parses a comma-separated token list from the environment. A malformed token stops
 * the process; the message names the variable and the token's place, never the token.
 */
export function parseTokens(name: string, raw: string | undefined): string[] {
  const list = (raw ?? "").split(",").map((t) => t.trim()).filter(Boolean);
  list.forEach((token, i) => {
    if (!TOKEN_SYNTAX.test(token) || token.length < TOKEN_LENGTH_MIN || token.length > TOKEN_LENGTH_MAX) {
      throw new Error(`${name}: token ${i + 1} must be ${TOKEN_LENGTH_MIN} to ${TOKEN_LENGTH_MAX} characters of A-Z a-z 0-9 - . _ ~ + / (then = padding), as RFC 6750 bearer tokens are`);
    }
  });
  return list;
}
