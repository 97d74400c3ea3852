// A Node `ws` client speaking the framework's frames; driven by test_node_client.py.
//
//   node client.mjs <url>
// Prints one JSON line per step; after {"step": "subscribed"} it waits for a pushed
// "orders.created" event (the test publishes it), then prints {"step": "done", ...}.
import { WebSocket } from "ws";

const url = process.argv[2];
const ws = new WebSocket(url, { perMessageDeflate: false });
const frames = [];
const waiters = [];

ws.on("message", (data) => {
  const frame = JSON.parse(data.toString());
  const i = waiters.findIndex((w) => w.match(frame));
  if (i >= 0) waiters.splice(i, 1)[0].resolve(frame);
  else frames.push(frame);
});

function next(match) {
  const i = frames.findIndex(match);
  if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]);
  return new Promise((resolve) => waiters.push({ match, resolve }));
}

const byId = (id) => (f) => f.id === id;
const print = (o) => console.log(JSON.stringify(o));
const timer = setTimeout(() => {
  print({ step: "timeout", frames });
  process.exit(1);
}, 15000);

await new Promise((resolve, reject) => {
  ws.once("open", resolve);
  ws.once("error", reject);
});

ws.send(JSON.stringify({ event: "order.check", data: { id: 4, total: 2.5 }, id: 1 }));
const reply = await next(byId(1));

ws.send(JSON.stringify({ event: "ticks", data: 3, id: 2 }));
const items = [];
for (;;) {
  const f = await next(byId(2));
  if (f.done) break;
  items.push(f.data);
}

ws.send("{oops");
const malformed = await next((f) => f.event === "exception");

ws.send(JSON.stringify({ event: "order.check", data: { id: "x" }, id: 3 }));
const invalid = await next(byId(3));

ws.send(JSON.stringify({ event: "subscribe", data: ["orders.*"], id: 4 }));
const subscribed = await next(byId(4));
print({ step: "subscribed", subscribed });
const pushed = await next((f) => f.event === "orders.created");

print({ step: "done", reply, items, malformed, invalid, pushed });
clearTimeout(timer);
ws.close(1000);
