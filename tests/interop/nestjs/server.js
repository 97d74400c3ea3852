'use strict';
// A real NestJS 11 Kafka microservice for tests/interop/test_nestjs_kafka.py.
//
//   node server.js <bootstrap-servers>
//
// Env: NEST_CLIENT_ID, NEST_GROUP_ID (unique per run; NestJS appends "-server").
// stdout carries only JSON lines: {"ready": true} once the consumer runs, then one
// {"event": ...} line per event handled. NestJS and kafkajs logs go to stderr.
//
// Plain JavaScript: the decorators are applied by hand, so there is no build step.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
require('reflect-metadata');
const { Controller, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const {
  Ctx,
  EventPattern,
  MessagePattern,
  Payload,
  RpcException,
  Transport,
} = require('@nestjs/microservices');
const { interval, map, take, takeWhile } = require('rxjs');

const [bootstrap] = process.argv.slice(2);
if (!bootstrap) {
  console.error('usage: node server.js <bootstrap-servers>');
  process.exit(2);
}

function line(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// Headers as text (kafkajs hands Buffers; NestJS's parser already decoded them to strings).
function textHeaders(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers || {})) {
    out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
  }
  return out;
}

class InteropController {
  sum(numbers) {
    return numbers.reduce((a, b) => a + b, 0);
  }

  fail() {
    throw new RpcException('nest says no');
  }

  // A timed stream that completes with its last item: NestJS folds the end-of-stream
  // mark into the last item's record.
  count(n) {
    return interval(20).pipe(
      take(Number(n)),
      map((i) => ({ i })),
    );
  }

  // A timed stream that completes 20 ms after its last item: NestJS then sends the
  // end-of-stream mark as a record of its own, with a null value.
  ticks(n) {
    return interval(20).pipe(
      takeWhile((i) => i < Number(n)),
      map((i) => ({ i })),
    );
  }

  // What NestJS's parser made of a request: the type and data the handler receives.
  // (No "key" or "value" fields in the reply: NestJS's serializer would take an object
  // with either as a whole Kafka message {key, value, headers, partition}.)
  inspect(data, ctx) {
    const message = ctx.getMessage();
    return {
      type: Array.isArray(data) ? 'array' : data === null ? 'null' : typeof data,
      data,
      recordKey: message.key === undefined ? null : message.key,
      headers: textHeaders(message.headers),
      partition: ctx.getPartition(),
    };
  }

  event(data, ctx) {
    line({ event: ctx.getTopic(), data, headers: textHeaders(ctx.getMessage().headers) });
  }
}

function decorate(method, decorators) {
  const proto = InteropController.prototype;
  for (const decorator of decorators) {
    decorator(proto, method, Object.getOwnPropertyDescriptor(proto, method));
  }
}
// Parameter decorators take the parameter index instead of a descriptor.
function params(method, ...decorators) {
  decorators.forEach((decorator, index) => decorator(InteropController.prototype, method, index));
}

decorate('sum', [MessagePattern('nest.sum')]);
decorate('fail', [MessagePattern('nest.fail')]);
decorate('count', [MessagePattern('nest.count')]);
decorate('ticks', [MessagePattern('nest.ticks')]);
decorate('inspect', [MessagePattern('nest.inspect')]);
params('inspect', Payload(), Ctx());
decorate('event', [EventPattern('nest.event')]);
params('event', Payload(), Ctx());
Controller()(InteropController);

class AppModule {}
Module({ controllers: [InteropController] })(AppModule);

const stderrLogger = {
  log: (...a) => console.error('[nest]', ...a),
  error: (...a) => console.error('[nest:error]', ...a),
  warn: (...a) => console.error('[nest:warn]', ...a),
  debug: () => {},
  verbose: () => {},
};

async function main() {
  const app = await NestFactory.createMicroservice(AppModule, {
    logger: stderrLogger,
    transport: Transport.KAFKA,
    options: {
      client: {
        clientId: process.env.NEST_CLIENT_ID || 'interop',
        brokers: bootstrap.split(','),
        retry: { retries: 5, initialRetryTime: 100 },
      },
      consumer: {
        groupId: process.env.NEST_GROUP_ID || 'interop',
        // Short long-polls so the first fetch (which resolves the start offsets) is quick.
        maxWaitTimeInMs: 100,
      },
      // kafkajs resolves a new group's start offsets on its first fetch, after listen()
      // has returned: records produced in between would be skipped with "latest". The
      // test creates the topics and uses a fresh group, so "earliest" is safe.
      subscribe: { fromBeginning: true },
    },
  });
  await app.listen();
  line({ ready: true });
}

process.on('SIGTERM', () => process.exit(0));
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
