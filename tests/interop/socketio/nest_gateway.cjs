// A NestJS 11 gateway on @nestjs/platform-socket.io (plain JS, decorators applied by
// hand), for tests/transports/socketio/test_nestjs_gateway.py: node nest_gateway.cjs PORT
// prints "listening" once it serves.
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const {
  WebSocketGateway, SubscribeMessage, MessageBody, WsException,
} = require('@nestjs/websockets');

class Gateway {
  echo(data) { return data; }
  shout(data) { return { event: 'shouted', data: { text: String(data.text).toUpperCase() } }; }
  fail() { throw new WsException('nope'); }
}
for (const name of ['echo', 'shout', 'fail']) {
  SubscribeMessage(name)(Gateway.prototype, name, Object.getOwnPropertyDescriptor(Gateway.prototype, name));
  MessageBody()(Gateway.prototype, name, 0);
}
WebSocketGateway({ namespace: '/chat' })(Gateway);

class AppModule {}
Module({ providers: [Gateway] })(AppModule);

(async () => {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  await app.listen(+process.argv[2], '127.0.0.1');
  console.log('listening');
})();
