// One publish/subscribe round trip and one call with wampy in Node, on one serializer.
// Run as `node node_wampy.js URL REALM SERIALIZER COOKIES_JSON`. Prints one JSON document.
//
// wampy in Node needs a W3C-style WebSocket class: the `websocket` package's w3cwebsocket,
// which takes the extra headers (the wson auth cookies and the Origin) from wampy's
// additionalHeaders option.
//
// wampy 8.0.2 puts the options it was not given into SUBSCRIBE and REGISTER as `undefined`
// (`{match: undefined, get_retained: undefined}`), which msgpack encodes as an extension type
// and CBOR as its undefined value; Crossbar then fails the connection (1002). So every option
// is given here.
'use strict';

const { Wampy } = require('wampy');
const { JsonSerializer } = require('wampy/JsonSerializer.js');
const { MsgpackSerializer } = require('wampy/MsgpackSerializer.js');
const { CborSerializer } = require('wampy/CborSerializer.js');
const { w3cwebsocket } = require('websocket');
const { within, report } = require('./node_common');

const [url, realm, serializerName, cookiesJson] = process.argv.slice(2);
const cookies = JSON.parse(cookiesJson);
const ORIGIN = 'http://localhost';

const SERIALIZERS = {
  json: () => new JsonSerializer(),
  msgpack: () => new MsgpackSerializer(),
  cbor: () => new CborSerializer(),
};

function plain(value) {
  if (value instanceof Uint8Array || Buffer.isBuffer(value)) {
    return { bytes: Buffer.from(value).toString('hex') };
  }
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

async function join(cookie) {
  const wampy = new Wampy(url, {
    realm,
    ws: w3cwebsocket,
    additionalHeaders: { Cookie: cookie, Origin: ORIGIN },
    serializer: SERIALIZERS[serializerName](),
    autoReconnect: false,
  });
  const details = await within(wampy.connect(), 'connect');
  return { wampy, details };
}

async function main() {
  const out = { serializer: serializerName };
  const a = await join(cookies[0]);
  const b = await join(cookies[1 % cookies.length]);
  out.welcome = { authrole: a.details.authrole, authmethod: a.details.authmethod };
  let gotEvent;
  const event = new Promise((resolve) => (gotEvent = resolve));
  await within(a.wampy.subscribe('com.wampy.t', ({ argsList, argsDict, details }) => {
    gotEvent({ args: plain(argsList), kwargs: plain(argsDict), topic: details.topic });
  }, { match: 'exact', get_retained: false }), 'subscribe');
  await within(a.wampy.register('com.wampy.echo', ({ argsList, argsDict }) => {
    return { argsList, argsDict };
  }, { match: 'exact', invoke: 'single' }), 'register');
  const payload = ['hello \u00e9', 1, 2.5, { k: [true, null] }];
  await within(a.wampy.subscribe('com.wampy.prefix', ({ argsList, details }) => {
    gotEvent({ prefix: true, args: plain(argsList), topic: details.topic });
  }, { match: 'prefix', get_retained: false }), 'subscribe prefix');
  await within(b.wampy.publish('com.wampy.t', { argsList: payload, argsDict: { kw: '\u4e2d' } },
    { acknowledge: true }), 'publish');
  out.event = await within(event, 'event');
  const result = await within(b.wampy.call('com.wampy.echo',
    { argsList: payload, argsDict: { x: 1 } }), 'call');
  out.call = { args: plain(result.argsList), kwargs: plain(result.argsDict) };
  try {
    await within(b.wampy.call('com.wampy.nothing'), 'call nothing');
    out.no_such_procedure = 'answered';
  } catch (e) {
    out.no_such_procedure = e.errorUri || String(e);
  }
  await within(a.wampy.disconnect(), 'disconnect A');
  await within(b.wampy.disconnect(), 'disconnect B');
  return out;
}

report(main);
