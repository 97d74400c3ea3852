// A real socket.io-client 4.x against the framework's SocketIoTransport, step by step;
// prints one JSON line per step. Driven by tests/transports/socketio/test_node_client.py,
// which answers "joined" and "dropped" on stdin.
const { io } = require('socket.io-client');
const fs = require('fs');
const path = require('path');
const readline = require('readline');

// The stream helper exactly as docs/transports/socketio.md prints it.
const doc = fs.readFileSync(path.join(__dirname, '../../../docs/transports/socketio.md'), 'utf8');
const helper = doc.match(/```js\n(\/\/ The browser \/ Node side[\s\S]*?)```/)[1];
const stream = new Function(`${helper}\nreturn stream;`)();

const url = process.argv[2];
const say = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
const once = (emitter, event) => new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));

(async () => {
  // Long-polling first, then the upgrade to WebSocket (socket.io-client's default).
  const socket = io(url, { reconnection: false });
  let first = null;
  socket.io.once('open', () => { first = socket.io.engine.transport.name; });
  const exceptions = [];
  socket.on('exception', (body) => exceptions.push(body));
  await once(socket, 'connect');
  if (socket.io.engine.transport.name !== 'websocket') await once(socket.io.engine, 'upgrade');
  say('upgraded', { first, now: socket.io.engine.transport.name });

  say('echo', { ack: await socket.emitWithAck('echo', { text: 'hi' }) });
  say('sum', { ack: await socket.emitWithAck('sum', 1, 2, 3) });
  const error = await socket.emitWithAck('echo', { wrong: 1 });
  while (exceptions.length === 0) await once(socket, 'exception');
  say('error', { ack: error, exception: exceptions[0] });
  socket.emit('note', { text: 'from node' });

  const counted = [];
  for await (const n of stream(socket, 'count', 3)) counted.push(n);
  let streamError = null;
  try { for await (const n of stream(socket, 'count', 'three')) counted.push(n); }
  catch (err) { streamError = { message: err.message, status: err.status }; }
  for await (const n of stream(socket, 'forever', 0)) { if (n === 2) break; }
  say('streamed', { counted, streamError });

  const admin = io(url + '/admin', { auth: { token: 'let-me-in' }, reconnection: false });
  await once(admin, 'connect');
  say('admin', { whoami: await admin.emitWithAck('whoami') });
  const intruder = io(url + '/admin', { auth: { token: 'nope' }, reconnection: false });
  const [refusal] = await once(intruder, 'connect_error');
  say('refused', { message: refusal.message });

  say('joined', { rooms: await socket.emitWithAck('join', 'r1') });
  const news = once(socket, 'news');
  await nextLine(); // the test broadcast to room r1
  const [item] = await news;
  say('news', { item });

  // Connection state recovery: drop the connection (not a clean disconnect), let the
  // server broadcast while the client is away, then reconnect.
  const id = socket.id;
  const dropped = once(socket, 'disconnect');
  socket.io.engine.close();
  const [reason] = await dropped;
  say('dropped', { reason });
  await nextLine(); // the test broadcast the packet this client misses
  const missed = once(socket, 'news');
  socket.connect();
  await once(socket, 'connect');
  const [again] = await missed;
  say('recovered', { recovered: socket.recovered, sameId: socket.id === id, missed: again });
  socket.disconnect();
  admin.disconnect();
  intruder.disconnect();
  say('done');
  process.exit(0);
})().catch((err) => { say('failed', { error: String(err && err.stack || err) }); process.exit(1); });
