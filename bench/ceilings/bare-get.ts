// Ceiling of GET /check/<wallet_id>: a bare Bun.serve answering a small JSON of the
// same shape as /check, with no view behind it.
//
// PORT=0 bun bench/ceilings/bare-get.ts   prints "listening on http://localhost:<port>"

const prefix = "/check/";

const server = Bun.serve({
  port: Number(process.env.PORT ?? "0"),
  fetch(request) {
    const path = new URL(request.url).pathname;
    const walletId = decodeURIComponent(path.slice(prefix.length));
    return Response.json({ wallet_id: walletId, balance: 0, above_threshold: false, deposit_count: 0, rejected_deposit_count: 0, flag: null });
  },
});
console.log(`listening on http://localhost:${server.port}`);

// A module, not a script: its names are its own.
export {};
