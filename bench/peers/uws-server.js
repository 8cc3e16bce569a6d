// uWebSockets.js as a benchmark peer of wson, from the npm package
// @trufflesuite/uws-js-unofficial (a republished uWS.js v20.30.0 with native builds).
// The native module is required by path, never through the package's entry point, which
// falls back to a pure-JS implementation when the native one does not load: here a failed
// load is an error. Broadcasts use uWS's own pub/sub (one topic every client subscribes to).
// Usage: node uws-server.js --secret S [--ws HOST:PORT] [--control HOST:PORT]
// Prints `listening ws=ADDR control=ADDR native=FILE` once both are bound.
'use strict';
const path = require('path');
const { parseArgs, authorize, controlServer } = require('./common');

const packageDir = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const nativeFile = path.join(packageDir, 'binaries',
  `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
const uWS = require(nativeFile);
if (!String(uWS.App).includes('[native code]')) {
  console.error(`uws-server: ${nativeFile} did not give a native App`);
  process.exit(1);
}

const args = parseArgs(process.argv);
const tokens = new Map();
const decoder = new TextDecoder();
const app = uWS.App();
app.ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 16 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    const token = authorize(req.getHeader('cookie'), args.secret);
    if (token === null) {
      res.writeStatus('403 Forbidden').end();
      return;
    }
    res.upgrade({ token },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context);
  },
  open: (ws) => {
    ws.subscribe('all');
    tokens.set(ws.getUserData().token, ws);
  },
  message: (ws, message, isBinary) => { ws.send(message, isBinary); },
  close: (ws) => {
    const token = ws.getUserData().token;
    if (tokens.get(token) === ws) tokens.delete(token);
  },
});

let wsPort = null;
let controlAddress = null;
const ready = () => {
  if (wsPort !== null && controlAddress) {
    console.log(`listening ws=${args.ws.host}:${wsPort} control=${controlAddress.address}:${controlAddress.port} native=${nativeFile}`);
  }
};
app.listen(args.ws.host, args.ws.port, (listenSocket) => {
  if (!listenSocket) {
    console.error('uws-server: cannot listen');
    process.exit(1);
  }
  wsPort = uWS.us_socket_local_port(listenSocket);
  ready();
});
controlServer(args.control, (command, payload) => {
  if (command === 'b' || command === 'B') {
    app.publish('all', payload, command === 'B');
  } else if (command === 'd' || command === 'D') {
    const ws = tokens.get(decoder.decode(payload.subarray(0, 32)));
    if (ws) ws.send(payload.subarray(32), command === 'D');
  }
}, (address) => { controlAddress = address; ready(); });
