// WebSocket load generator for benchmarks/ws_echo.py and benchmarks/ws_fanout.py.
//
//   node load.mjs echo <url> <connections> <inflight> <seconds> <frame-json>
//     Each connection keeps <inflight> frames outstanding (a reply triggers the next
//     send); replies are counted for <seconds> after a 1 s warm-up. Prints one JSON line:
//     {"replies": n, "seconds": s, "rate": r}.
//
//   node load.mjs fanout <url> <clients> <subscribe-json|-> <trigger-json> <rounds>
//     Opens <clients> idle connections (each sends <subscribe-json> and waits for one
//     frame back), prints {"ready": n}, then waits for a line on stdin. On it, for each
//     round, one extra connection sends <trigger-json> and the time until every client
//     got one frame is measured. Prints {"rounds_ms": [...]} and exits.
import { WebSocket } from "ws";
import { createInterface } from "node:readline";

const [mode, url, ...args] = process.argv.slice(2);

function open(u) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function echo() {
  const [connections, inflight, seconds] = args.slice(0, 3).map(Number);
  const frame = args[3];
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(url)));
  let counting = false;
  let replies = 0;
  for (const ws of sockets) {
    ws.on("message", () => {
      if (counting) replies += 1;
      ws.send(frame);
    });
    for (let i = 0; i < inflight; i++) ws.send(frame);
  }
  await new Promise((r) => setTimeout(r, 1000));
  counting = true;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ replies, seconds: elapsed, rate: replies / elapsed }));
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}

async function fanout() {
  const clients = Number(args[0]);
  const subscribe = args[1] === "-" ? null : args[1];
  const trigger = args[2];
  const rounds = Number(args[3]);
  const sockets = [];
  // Open in batches: thousands of simultaneous handshakes overflow the listen backlog.
  for (let i = 0; i < clients; i += 200) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(200, clients - i) }, async () => {
        const ws = await open(url);
        if (subscribe) {
          const acked = new Promise((r) => ws.once("message", r));
          ws.send(subscribe);
          await acked;
        }
        return ws;
      }),
    );
    sockets.push(...batch);
  }
  console.log(JSON.stringify({ ready: sockets.length }));
  const rl = createInterface({ input: process.stdin });
  await new Promise((r) => rl.once("line", r));
  const firer = await open(url);
  firer.on("message", () => {});
  const results = [];
  for (let round = 0; round < rounds; round++) {
    let pending = sockets.length;
    let start = 0;
    const done = new Promise((resolve) => {
      for (const ws of sockets) {
        ws.once("message", () => {
          pending -= 1;
          if (pending === 0) resolve(performance.now() - start);
        });
      }
    });
    start = performance.now();
    firer.send(trigger);
    results.push(await done);
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(JSON.stringify({ rounds_ms: results }));
  for (const ws of sockets) ws.terminate();
  firer.terminate();
  process.exit(0);
}

if (mode === "echo") await echo();
else if (mode === "fanout") await fanout();
else {
  console.error("usage: load.mjs echo|fanout ...");
  process.exit(2);
}
