// One publish/subscribe round trip and one call with autobahn-js in Node, on one serializer.
// Run as `node node_autobahn.js URL REALM SERIALIZER COOKIES_JSON` (SERIALIZER: json, msgpack
// or cbor; COOKIES_JSON: the Cookie headers of sessions A and B). Prints one JSON document.
// The cookies go in the upgrade's Cookie header (node_common.js, cookieWebSocket).
'use strict';

const { within, report, cookieWebSocket } = require('./node_common');

const [url, realm, serializerName, cookiesJson] = process.argv.slice(2);
cookieWebSocket(JSON.parse(cookiesJson));

const autobahn = require('autobahn');

const SERIALIZERS = {
  json: () => new autobahn.serializer.JSONSerializer(),
  msgpack: () => new autobahn.serializer.MsgpackSerializer(),
  cbor: () => new autobahn.serializer.CBORSerializer(),
};

const binary = serializerName !== 'json';

/** Values as JSON can carry them: bytes as {"bytes": hex}. */
function plain(value) {
  if (value instanceof Uint8Array || Buffer.isBuffer(value)) {
    return { bytes: Buffer.from(value).toString('hex') };
  }
  if (value instanceof ArrayBuffer) return plain(new Uint8Array(value));
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function join() {
  return new Promise((resolve, reject) => {
    const connection = new autobahn.Connection({
      url,
      realm,
      serializers: [SERIALIZERS[serializerName]()],
      max_retries: 0,
    });
    connection.onopen = (session, details) => resolve({ connection, session, details });
    connection.onclose = (reason, details) => {
      reject(new Error(`closed: ${reason} ${JSON.stringify(details && details.reason)}`));
      return true; // no retry
    };
    connection.open();
  });
}

async function main() {
  const out = { serializer: serializerName };
  const a = await within(join(), 'join A');
  const b = await within(join(), 'join B');
  out.protocol = a.connection.transport.info.protocol;
  out.welcome = { authrole: a.details.authrole, authmethod: a.details.authmethod };
  let gotEvent;
  const event = new Promise((resolve) => (gotEvent = resolve));
  await within(a.session.subscribe('com.node.t', (args, kwargs, details) => {
    gotEvent({ args: plain(args), kwargs: plain(kwargs), topic: details.topic });
  }), 'subscribe');
  await within(a.session.register('com.node.echo', (args, kwargs, details) => {
    return new autobahn.Result(args, Object.assign({ procedure: details.procedure || null }, kwargs));
  }), 'register');
  const payload = ['hello \u00e9', 1, 2.5, { k: [true, null] }];
  if (binary) payload.push(Buffer.from([0, 1, 0xfe, 0xff]));
  await within(b.session.publish('com.node.t', payload, { kw: '\u4e2d' }, { acknowledge: true }),
    'publish');
  out.event = await within(event, 'event');
  const result = await within(b.session.call('com.node.echo', payload, { x: 1 }), 'call');
  out.call = { args: plain(result.args), kwargs: plain(result.kwargs) };
  try {
    await within(b.session.call('com.node.nothing'), 'call nothing');
    out.no_such_procedure = 'answered';
  } catch (e) {
    out.no_such_procedure = e.error;
  }
  a.connection.close();
  b.connection.close();
  return out;
}

report(main);
