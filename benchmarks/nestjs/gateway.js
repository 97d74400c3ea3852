// The NestJS 11 peer of benchmarks/ws_echo.py and benchmarks/ws_fanout.py: one gateway on
// @nestjs/platform-ws (WsAdapter), plain JS with the decorators applied by hand.
//
//   node gateway.js echo PORT     'echo' returns {event: 'echo', data} (no validation)
//   node gateway.js fanout PORT   'subscribe' is acknowledged; 'bench.fire' sends one tick
//                                 to every client: server.clients.forEach(c => c.send(..))
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const {
  WebSocketGateway, WebSocketServer, SubscribeMessage, MessageBody,
} = require('@nestjs/websockets');
const { WsAdapter } = require('@nestjs/platform-ws');

const [mode, port] = [process.argv[2], +process.argv[3]];
const TICK = JSON.stringify({
  event: 'bench.tick', data: { price: 101.5, sku: 'ABC-123', note: 'x'.repeat(64) },
});

function handler(cls, name, event) {
  const desc = Object.getOwnPropertyDescriptor(cls.prototype, name);
  SubscribeMessage(event)(cls.prototype, name, desc);
  MessageBody()(cls.prototype, name, 0);
}

class Echo { echo(data) { return { event: 'echo', data }; } }
handler(Echo, 'echo', 'echo');

class Fanout {
  subscribe(data) { return { event: 'subscribe', data }; }
  fire() { this.server.clients.forEach((c) => c.send(TICK)); }
}
handler(Fanout, 'subscribe', 'subscribe');
handler(Fanout, 'fire', 'bench.fire');
WebSocketServer()(Fanout.prototype, 'server');

const Gateway = mode === 'fanout' ? Fanout : Echo;
WebSocketGateway({ path: '/ws' })(Gateway);
class AppModule {}
Module({ providers: [Gateway] })(AppModule);

(async () => {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  app.useWebSocketAdapter(new WsAdapter(app));
  await app.listen(port, '127.0.0.1');
})();
