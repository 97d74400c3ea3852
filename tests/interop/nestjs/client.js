'use strict';
// A real NestJS 11 ClientKafka calling the Python service of tests/interop/test_nestjs_kafka.py.
//
//   node client.js <bootstrap-servers> <scenario>
//
// Scenarios: sum, fail, count, tick, event, or all (every one, in that order, over one
// connection: each ClientKafka joins a consumer group, which is the slow part).
// Env: NEST_CLIENT_ID, NEST_GROUP_ID (unique per run), NEST_TIMEOUT_MS (per call,
// default 15000), NEST_EVENT_ID (copied into the emitted event).
// stdout: one JSON line per scenario, {"scenario", "ok", "value"} or {"scenario", "ok":
// false, "error"}; NestJS and kafkajs logs go to stderr. Exit code 0 once every
// scenario has printed its line (a failed call is a result, not a crash).
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
require('reflect-metadata');
const { Logger } = require('@nestjs/common');
const { ClientProxyFactory, Transport } = require('@nestjs/microservices');
const { lastValueFrom, timeout, toArray } = require('rxjs');

const [bootstrap, scenario = 'all'] = process.argv.slice(2);
if (!bootstrap) {
  console.error('usage: node client.js <bootstrap-servers> <sum|fail|count|tick|event|all>');
  process.exit(2);
}
const TIMEOUT_MS = Number(process.env.NEST_TIMEOUT_MS || 15000);

Logger.overrideLogger({
  log: (...a) => console.error('[nest]', ...a),
  error: (...a) => console.error('[nest:error]', ...a),
  warn: (...a) => console.error('[nest:warn]', ...a),
  debug: () => {},
  verbose: () => {},
});

const client = ClientProxyFactory.create({
  transport: Transport.KAFKA,
  options: {
    client: {
      clientId: process.env.NEST_CLIENT_ID || 'interop',
      brokers: bootstrap.split(','),
      retry: { retries: 5, initialRetryTime: 100 },
    },
    consumer: {
      groupId: process.env.NEST_GROUP_ID || 'interop',
      maxWaitTimeInMs: 100,
    },
    // The reply consumer resolves its start offsets on its first fetch, after
    // connect() returned: a fast reply could land before that and be skipped with
    // "latest". Old replies on these topics carry other correlation ids and are ignored.
    subscribe: { fromBeginning: true },
  },
});

const scenarios = {
  // A single reply: NestJS gets what its parser makes of the value (6 travels as "6").
  sum: () => lastValueFrom(client.send('py.sum', [1, 2, 3]).pipe(timeout(TIMEOUT_MS))),
  fail: () => lastValueFrom(client.send('py.fail', {}).pipe(timeout(TIMEOUT_MS))),
  // A streamed reply, collected: the Observable completes on kafka_nest-is-disposed.
  count: () => lastValueFrom(client.send('py.count', 3).pipe(timeout(TIMEOUT_MS), toArray())),
  // A live stream (items 100 ms apart): its end-of-stream mark comes as its own record.
  tick: () => lastValueFrom(client.send('py.tick', 2).pipe(timeout(TIMEOUT_MS), toArray())),
  // A Python handler returning a reactivex Observable, items 10 ms apart.
  rx: () => lastValueFrom(client.send('py.rx', 3).pipe(timeout(TIMEOUT_MS), toArray())),
  // An event: resolves once the broker acknowledged the record.
  event: () =>
    lastValueFrom(
      client
        .emit('py.event', { id: process.env.NEST_EVENT_ID || 'nest-event', source: 'nestjs' })
        .pipe(timeout(TIMEOUT_MS)),
    ).then(() => 'emitted'),
};

function line(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function describeError(err) {
  // NestJS hands the kafka_nest-err header through as parsed by its KafkaParser
  // (an object for JSON, else a string); transport failures are Error objects.
  if (err instanceof Error) return { name: err.name, message: err.message };
  return err;
}

async function main() {
  const names = scenario === 'all' ? Object.keys(scenarios) : [scenario];
  for (const name of names) {
    if (!scenarios[name]) throw new Error(`unknown scenario ${name}`);
  }
  for (const pattern of ['py.sum', 'py.fail', 'py.count', 'py.tick', 'py.rx']) {
    client.subscribeToResponseOf(pattern);
  }
  await client.connect();
  line({ connected: true });
  for (const name of names) {
    try {
      line({ scenario: name, ok: true, value: await scenarios[name]() });
    } catch (err) {
      line({ scenario: name, ok: false, error: describeError(err) });
    }
  }
  await client.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
