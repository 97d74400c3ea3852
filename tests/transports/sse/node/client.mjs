// A second SSE client for the tests: the `eventsource` npm package (WHATWG EventSource for
// Node). Usage: node client.mjs URL TYPE... ; prints one JSON line per open, error and
// event of the given types; exits when its stdin closes.
import { EventSource } from "eventsource";

const [url, ...types] = process.argv.slice(2);
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const source = new EventSource(url);

source.onopen = () => out({ kind: "open" });
source.onerror = (event) => out({ kind: "error", message: event.message ?? null });
for (const type of types) {
  source.addEventListener(type, (event) =>
    out({ kind: "event", type: event.type, id: event.lastEventId, data: event.data }),
  );
}

process.stdin.on("end", () => {
  source.close();
  process.exit(0);
});
process.stdin.resume();
