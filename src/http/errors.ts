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
    /** Further fields of the error object, such as the deposit_id to retry with. */
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorResponse(c: Context, error: ApiError): Response {
  return c.json({ error: { code: error.code, message: error.message, ...error.fields } }, error.status);
}
