import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * A refusal at the edge: a stable, machine-readable code named after the broken rule
 * and a sentence for people. Rendered as {"error":{"code","message"}}.
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly extra: {
      /** Further fields of the error object, such as the deposit_id to retry with. */
      fields?: Record<string, string>;
      /** Response headers, such as Retry-After. */
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorResponse(c: Context, error: ApiError): Response {
  return c.json({ error: { code: error.code, message: error.message, ...error.extra.fields } }, error.status, error.extra.headers);
}
