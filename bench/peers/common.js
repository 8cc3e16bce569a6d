// Shared by the Node.js peers: arguments, wson's md5 cookie check, and a control port that
// speaks wson's framing ({len}b{msg} broadcast, {len}d{token}{msg} direct), so the harness
// triggers every server the same way.
'use strict';
const crypto = require('crypto');
const net = require('net');

function parseArgs(argv) {
  const args = { ws: '127.0.0.1:0', control: '127.0.0.1:0', secret: null };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args) || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  if (!args.secret) throw new Error('--secret is required');
  const split = (text) => {
    const at = text.lastIndexOf(':');
    return { host: text.slice(0, at), port: Number(text.slice(at + 1)) };
  };
  return { ws: split(args.ws), control: split(args.control), secret: args.secret };
}

const TOKEN_RE = /^[0-9A-Za-z_-]{32}$/;
const LIFETIME = 86400;

// The token of a valid wson md5 cookie set, or null: md5(secret + user + token + time).
function authorize(cookieHeader, secret) {
  if (!cookieHeader) return null;
  const found = {};
  for (const pair of cookieHeader.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value[0] === '"' && value[value.length - 1] === '"') value = value.slice(1, -1);
    if (!(name in found)) found[name] = value;
  }
  const { token, user, time, digest } = found;
  if (!token || !user || !time || !digest) return null;
  if (!TOKEN_RE.test(token) || !/^[0-9]{1,20}$/.test(time) || !/^[0-9a-f]{32}$/.test(digest)) return null;
  let userText;
  try { userText = decodeURIComponent(user); } catch { return null; }
  const expected = crypto.createHash('md5').update(secret + userText + token + time).digest();
  if (!crypto.timingSafeEqual(expected, Buffer.from(digest, 'hex'))) return null;
  const now = Math.floor(Date.now() / 1000);
  const issued = Number(time);
  if (issued > now + 300 || now - issued > LIFETIME) return null;
  return token;
}

// Calls onCommand(commandChar, payloadBuffer) for each control frame.
function controlServer(address, onCommand, onListening) {
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let at = 0;
      for (;;) {
        let i = at;
        let len = 0;
        while (i < buf.length && buf[i] >= 0x30 && buf[i] <= 0x39) { len = len * 10 + (buf[i] - 0x30); i++; }
        if (i >= buf.length || i + 1 + len > buf.length) break;
        if (i === at) { socket.destroy(); return; }
        onCommand(String.fromCharCode(buf[i]), buf.subarray(i + 1, i + 1 + len));
        at = i + 1 + len;
      }
      buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    });
    socket.on('error', () => {});
  });
  server.listen(address.port, address.host, () => onListening(server.address()));
}

module.exports = { parseArgs, authorize, controlServer };
