// wson's real-client session, run with the `ws` package from npm.
//
// Usage: node node_ws.js MODE URL COOKIE ORIGIN (see README.md in this folder).
// Prints one JSON object per line; tests/real_clients.rs reads them.
'use strict';

const WebSocket = require('ws');

const TIMEOUT_MS = 20000; // the Rust test kills us after its own bound anyway

function say(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

/** A message as JSON fields; long ones by length only. */
function describe(data, isBinary) {
  const kind = isBinary ? 'binary' : 'text';
  if (data.length > 100) return { kind, len: data.length };
  return isBinary ? { kind, hex: data.toString('hex') } : { kind, data: data.toString('utf8') };
}

const [mode, url, cookie, origin] = process.argv.slice(2);
setTimeout(() => {
  say({ event: 'timeout' });
  process.exit(1);
}, TIMEOUT_MS).unref();

const ws = new WebSocket(url, { origin, headers: { Cookie: cookie }, maxPayload: 0 });

ws.on('unexpected-response', (_request, response) => {
  say({ event: 'refused', status: response.statusCode });
  process.exit(0);
});
ws.on('error', (error) => say({ event: 'error', message: String(error) }));
ws.on('close', (code, reason) => {
  say({ event: 'close', code, reason: reason.toString('utf8') });
  process.exit(0);
});

// Messages in arrival order, for the steps below to await one by one.
const inbox = [];
let waiting = null;
ws.on('message', (data, isBinary) => {
  inbox.push({ data, isBinary });
  if (waiting) waiting();
});
async function next() {
  while (inbox.length === 0) await new Promise((resolve) => (waiting = resolve));
  waiting = null;
  return inbox.shift();
}

ws.on('open', async () => {
  say({ event: 'open' });
  if (mode === 'server-close') {
    const { data, isBinary } = await next(); // nothing should come before the Close
    say({ event: 'unexpected', ...describe(data, isBinary) });
    return;
  }
  if (mode !== 'session') {
    say({ event: 'unexpected', mode });
    return;
  }
  // Pushes from the control socket; the test sends five once it has seen "open".
  for (let i = 0; i < 5; i++) {
    const { data, isBinary } = await next();
    say({ event: 'message', ...describe(data, isBinary) });
  }
  for (const sent of ['echo \u2713', Buffer.from([0, 1, 0xfe, 0xff]), 'x'.repeat(70000)]) {
    const binary = Buffer.isBuffer(sent);
    ws.send(sent, { binary });
    const { data, isBinary } = await next();
    const same = isBinary === binary && data.equals(Buffer.from(sent));
    say({ event: 'echo', same, ...describe(data, isBinary) });
  }
  ws.once('pong', (data) => {
    say({ event: 'pong', hex: data.toString('hex') });
    // The 'close' handler reports the code and reason of the server's answering Close.
    ws.close(4000, 'bye');
  });
  ws.ping(Buffer.from('wson'));
});
