// What the HTTP end-to-end suites share: a request with its JSON answer, and fresh ids.

export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint: response bodies are inspected field by field.
  json: any;
}

let serial = 0;
/** A wallet or user id no other test uses. */
export const fresh = (name: string) => `${name}-${Date.now().toString(36)}-${++serial}`;

/** A JSON request; a string body is sent as it is (the exact digits of a number matter). */
export async function request(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}
