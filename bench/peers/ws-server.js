// Node's `ws` server as a benchmark peer of wson: the most used WebSocket server.
// Usage: node ws-server.js --secret S [--ws HOST:PORT] [--control HOST:PORT]
// Prints `listening ws=ADDR control=ADDR` once both are bound.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');
const { parseArgs, authorize, controlServer } = require('./common');

const args = parseArgs(process.argv);
const tokens = new Map();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });
const server = http.createServer((req, res) => { res.writeHead(426); res.end(); });
server.on('upgrade', (req, socket, head) => {
  const token = authorize(req.headers.cookie, args.secret);
  if (token === null) {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    tokens.set(token, ws);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', () => { if (tokens.get(token) === ws) tokens.delete(token); });
    ws.on('error', () => {});
  });
});

let wsAddress = null;
let controlAddress = null;
const ready = () => {
  if (wsAddress && controlAddress) {
    console.log(`listening ws=${wsAddress.address}:${wsAddress.port} control=${controlAddress.address}:${controlAddress.port}`);
  }
};
controlServer(args.control, (command, payload) => {
  if (command === 'b' || command === 'B') {
    const binary = command === 'B';
    for (const ws of wss.clients) ws.send(payload, { binary });
  } else if (command === 'd' || command === 'D') {
    const ws = tokens.get(payload.toString('latin1', 0, 32));
    if (ws) ws.send(payload.subarray(32), { binary: command === 'D' });
  }
}, (address) => { controlAddress = address; ready(); });
server.listen(args.ws.port, args.ws.host, () => { wsAddress = server.address(); ready(); });
