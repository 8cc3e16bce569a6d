// wson's permessage-deflate check with Node `ws` (tests/deflate.rs runs it).
// Usage: node_deflate.js URL COOKIE ORIGIN. Prints one JSON object per line: the open with the
// agreed extension, the push it received, then the echo of a compressed 30 KB message.
'use strict';

const WebSocket = require('ws');

const [url, cookie, origin] = process.argv.slice(2);
const say = (event) => console.log(JSON.stringify(event));

// threshold 0: ws compresses every message it sends, so wson has to inflate them.
const ws = new WebSocket(url, {
  origin,
  headers: { Cookie: cookie },
  perMessageDeflate: { threshold: 0 },
  maxPayload: 0,
});
const sent = JSON.stringify({ items: Array.from({ length: 600 }, (_, i) => ({ i, name: `item ${i}` })) });
let step = 0;
ws.on('open', () => say({ event: 'open', extensions: ws.extensions }));
ws.on('message', (data, binary) => {
  const text = data.toString();
  if (step === 0) {
    say({ event: 'message', len: text.length, data: text });
    step = 1;
    ws.send(sent);
  } else {
    say({ event: 'echo', same: !binary && text === sent });
    ws.close(1000);
  }
});
ws.on('error', (error) => say({ event: 'error', message: String(error) }));
