/**
 * GET /docs: the OpenAPI document rendered as one readable HTML page, on the server,
 * with no script and nothing fetched from elsewhere (the service may run offline).
 */

// biome-ignore lint: the document is plain JSON.
type Json = any;

const escape = (text: unknown) =>
  String(text ?? "").replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);

/** A schema as a short type line: `string`, `Operation`, `number | string`, ... */
function typeOf(schema: Json): string {
  if (!schema) return "";
  if (schema.$ref) return String(schema.$ref).split("/").pop()!;
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.oneOf) return schema.oneOf.map(typeOf).join(" | ");
  if (schema.enum) return schema.enum.map((v: unknown) => JSON.stringify(v)).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  return Array.isArray(schema.type) ? schema.type.join(" | ") : String(schema.type ?? "object");
}

function fields(schema: Json, doc: Json): string {
  const resolved = schema?.$ref ? doc.components?.schemas?.[String(schema.$ref).split("/").pop()!] : schema;
  const properties = resolved?.properties ?? {};
  const required = new Set(resolved?.required ?? []);
  const rows = Object.entries(properties).map(
    ([name, s]: [string, Json]) =>
      `<tr><td><code>${escape(name)}</code>${required.has(name) ? " <em>required</em>" : ""}</td><td><code>${escape(typeOf(s))}</code></td><td>${escape(s.description ?? "")}</td></tr>`,
  );
  return rows.length ? `<table><tr><th>field</th><th>type</th><th>meaning</th></tr>${rows.join("")}</table>` : "";
}

export function renderDocs(doc: Json): string {
  const sections: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {}) as [string, Json][]) {
    for (const [method, op] of Object.entries(item) as [string, Json][]) {
      const params = (op.parameters ?? []).map(
        (p: Json) => `<tr><td><code>${escape(p.name)}</code> (${escape(p.in)})${p.required ? " <em>required</em>" : ""}</td><td><code>${escape(typeOf(p.schema))}</code></td><td>${escape(p.schema?.description ?? p.description ?? "")}</td></tr>`,
      );
      const body = op.requestBody?.content?.["application/json"]?.schema;
      const responses = Object.entries(op.responses ?? {}).map(
        ([status, r]: [string, Json]) => `<li><strong>${escape(status)}</strong> ${escape(r.description)} <code>${escape(typeOf(r.content?.["application/json"]?.schema))}</code></li>`,
      );
      sections.push(`<section id="${escape(`${method}-${path}`)}">
<h2><span class="method">${escape(method.toUpperCase())}</span> <code>${escape(path)}</code></h2>
<p><strong>${escape(op.summary ?? "")}</strong></p>${op.description ? `<p>${escape(op.description)}</p>` : ""}
${params.length ? `<h3>Parameters</h3><table><tr><th>name</th><th>type</th><th>meaning</th></tr>${params.join("")}</table>` : ""}
${body ? `<h3>Body</h3>${fields(body, doc)}` : ""}
<h3>Responses</h3><ul>${responses.join("")}</ul>
</section>`);
    }
  }
  const schemas = Object.entries(doc.components?.schemas ?? {}).map(([name, s]) => `<section id="schema-${escape(name)}"><h2>${escape(name)}</h2>${fields(s, doc)}</section>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(doc.info?.title)} API reference</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
.method{background:#234;color:#fff;padding:.1rem .4rem;border-radius:.2rem;font-size:.9em}section{border-top:1px solid #ddd;margin-top:1.5rem}</style></head>
<body><h1>${escape(doc.info?.title)} ${escape(doc.info?.version)}</h1><p>${escape(doc.info?.description)}</p>
<p>The machine-readable document: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${escape(doc.openapi)}).</p>
${sections.join("\n")}
<h1>Schemas</h1>
${schemas.join("\n")}
</body></html>`;
}
