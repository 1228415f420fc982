// Ceiling of POST /deposit: a bare Bun.serve that parses the same JSON body and
// answers 202 with a small JSON. What the product does beyond HTTP and JSON
// (validation, routing, protobuf, a durable log) shows as its ratio to this.
//
// PORT=0 bun bench/ceilings/bare-post.ts   prints "listening on http://localhost:<port>"

let offset = 0;

const server = Bun.serve({
  port: Number(process.env.PORT ?? "0"),
  async fetch(request) {
    const body = (await request.json()) as { wallet_id: string; amount: string };
    const depositId = request.headers.get("idempotency-key") ?? Bun.randomUUIDv7();
    return Response.json({ deposit_id: depositId, wallet_id: body.wallet_id, amount: body.amount, position: `0:${offset++}` }, { status: 202 });
  },
});
console.log(`listening on http://localhost:${server.port}`);

// A module, not a script: its names are its own.
export {};
