// HTTP/1.1 as bytes on a TCP socket, for requests fetch() will not send: malformed
// request lines, bad framing, invalid bytes in headers. The answers are parsed by hand
// too, so whatever the server writes is seen as it is.
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  /** The status line, as sent. */
  statusLine: string;
  /** Header fields in the order sent, names as sent. */
  headers: [string, string][];
  body: Buffer;
}

export interface RawExchange {
  /** Whole final (non-1xx) responses, in order. */
  responses: RawResponse[];
  /** Bytes after the last whole response: a response cut short, or not HTTP at all. */
  rest: Buffer;
  /** What made `rest` unparseable, if it is. */
  parseError?: string;
  /** The server closed the connection (or reset it). */
  closed: boolean;
  /** The exchange ran out of time waiting for the server. */
  timedOut: boolean;
}

/** Every value of a header field, by case-insensitive name. */
export function headerValues(response: RawResponse, name: string): string[] {
  const lower = name.toLowerCase();
  return response.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/** The status line, header fields and body of a response, as text for a report. */
export function describeResponse(response: RawResponse, bodyChars = 400): string {
  const body = response.body.toString("utf8");
  return [response.statusLine, ...response.headers.map(([n, v]) => `${n}: ${v}`), "", body.length > bodyChars ? `${body.slice(0, bodyChars)}…` : body].join("\n");
}

const CRLF2 = Buffer.from("\r\n\r\n");

/** A chunked body starting at `from`, decoded, with where it ends; undefined if it is not whole yet. */
function dechunk(bytes: Buffer, from: number): { body: Buffer; end: number } | undefined | "malformed" {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const eol = bytes.indexOf("\r\n", at);
    if (eol === -1) return undefined;
    const size = Number.parseInt(bytes.toString("latin1", at, eol).split(";")[0]!, 16);
    if (!Number.isSafeInteger(size) || size < 0) return "malformed";
    if (size === 0) {
      const trailerEnd = bytes.indexOf(CRLF2, eol);
      if (bytes.subarray(eol, eol + 4).equals(CRLF2)) return { body: Buffer.concat(parts), end: eol + 4 };
      return trailerEnd === -1 ? undefined : { body: Buffer.concat(parts), end: trailerEnd + 4 };
    }
    if (bytes.length < eol + 2 + size + 2) return undefined;
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/**
 * The whole responses at the start of `bytes`, 1xx interim responses skipped. A body
 * is framed by Content-Length, by chunking, or (neither) by the end of the
 * connection, so only when `closed`. HEAD answers have no body.
 */
export function parseResponses(bytes: Buffer, head: boolean, closed: boolean): { responses: RawResponse[]; rest: Buffer; parseError?: string } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf(CRLF2, at);
    if (end === -1) break;
    const lines = bytes.toString("latin1", at, end).split("\r\n");
    const statusLine = lines[0]!;
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!match) return { responses, rest: bytes.subarray(at), parseError: `not a status line: ${JSON.stringify(statusLine.slice(0, 80))}` };
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) return { responses, rest: bytes.subarray(at), parseError: `not a header field: ${JSON.stringify(line.slice(0, 80))}` };
      headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    const status = Number(match[1]);
    const response: RawResponse = { status, statusLine, headers, body: Buffer.alloc(0) };
    const bodyStart = end + 4;
    const length = headerValues(response, "content-length");
    const chunked = headerValues(response, "transfer-encoding").some((v) => /chunked/i.test(v));
    if (status < 200 || status === 204 || status === 304 || head) {
      at = bodyStart;
    } else if (chunked) {
      const decoded = dechunk(bytes, bodyStart);
      if (decoded === "malformed") return { responses, rest: bytes.subarray(at), parseError: "malformed chunked body" };
      if (!decoded) break;
      response.body = decoded.body;
      at = decoded.end;
    } else if (length.length > 0) {
      const n = Number(length[0]);
      if (length.length > 1 || !Number.isSafeInteger(n) || n < 0) return { responses, rest: bytes.subarray(at), parseError: `bad Content-Length: ${length.join(", ")}` };
      if (bytes.length < bodyStart + n) break;
      response.body = bytes.subarray(bodyStart, bodyStart + n);
      at = bodyStart + n;
    } else {
      // Framed by the end of the connection.
      if (!closed) break;
      response.body = bytes.subarray(bodyStart);
      at = bytes.length;
    }
    if (status >= 200) responses.push(response);
  }
  return { responses, rest: bytes.subarray(at) };
}

export interface SendOptions {
  /**
   * When to half-close the connection (FIN, reading goes on): "now", right after the
   * request (a request cut short then has no more to wait for); "after-answer", once
   * the first answer is whole (bytes sent after the request are then answered, or
   * not, before the server closes); "never": the exchange ends at the first answer.
   */
  halfClose: "now" | "after-answer" | "never";
  /** Bytes to read the answer as a HEAD answer, without a body. */
  head?: boolean;
  timeoutMs: number;
}

/**
 * Sends `bytes` on a fresh connection and collects what comes back: until the first
 * whole answer (halfClose "never"), or until the server closes the connection.
 */
export async function sendRaw(port: number, bytes: Uint8Array, options: SendOptions): Promise<RawExchange> {
  const socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  let closed = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let halfClosed = false;
  const parse = () => parseResponses(Buffer.concat(chunks), options.head ?? false, closed);
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    if (options.halfClose === "now") return;
    if (parse().responses.length === 0) return;
    if (options.halfClose === "never") finish();
    else if (!halfClosed) {
      halfClosed = true;
      socket.end();
    }
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
    finish();
  });
  socket.write(bytes);
  if (options.halfClose === "now") socket.end();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    finish();
  }, options.timeoutMs);
  await done;
  clearTimeout(timer);
  socket.destroy();
  return { ...parse(), closed, timedOut };
}
