// Pipelined socket.io ack load, or idle connections for memory:
//   node sio_load.cjs echo URL CLIENTS WINDOW SECONDS   -> {"rate": acks/s, "acks": n, "bad": n}
//   node sio_load.cjs idle URL CLIENTS HOLD_SECONDS     -> {"open": n} once all are open, then holds
// socket.io-client comes from tests/interop/socketio/node_modules (NODE_PATH).
const { io } = require('socket.io-client');
const [mode, url] = [process.argv[2], process.argv[3]];
const C = +process.argv[4];
const payload = { i: 1, text: 'hello world' };
const socks = [];
let open = 0;
function connectAll(onAll) {
  for (let i = 0; i < C; i++) {
    const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    socks.push(s);
    s.on('connect', () => { if (++open === C) onAll(); });
    s.on('connect_error', (e) => { console.error('connect_error', e.message); process.exit(1); });
  }
}
if (mode === 'echo') {
  const [W, T] = [+process.argv[5], +process.argv[6]];
  let acks = 0, bad = 0, running = true;
  const fire = (s) => s.emit('echo', payload, (r) => {
    if (!r || r.i !== 1) bad++;
    acks++;
    if (running) fire(s);
  });
  connectAll(() => {
    const start = process.hrtime.bigint();
    for (const s of socks) for (let k = 0; k < W; k++) fire(s);
    setTimeout(() => {
      running = false;
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      console.log(JSON.stringify({ rate: acks / secs, acks, bad }));
      process.exit(0);
    }, T * 1000);
  });
} else if (mode === 'idle') {
  const hold = +process.argv[5];
  connectAll(() => {
    console.log(JSON.stringify({ open }));
    setTimeout(() => process.exit(0), hold * 1000);
  });
} else {
  console.error('mode is echo or idle');
  process.exit(2);
}
