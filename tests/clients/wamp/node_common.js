// What the Node WAMP clients of the tests share (node_autobahn.js, node_history.js,
// node_wampy.js).
'use strict';

/** `promise`, or a rejection naming `what` after 5 s. */
function within(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), 5000)),
  ]);
}

/** Runs `main` and prints its result as one JSON document, or {"failed": ...}. */
function report(main) {
  main().then(
    (out) => {
      console.log(JSON.stringify(out));
      process.exit(0);
    },
    (e) => {
      console.log(JSON.stringify({ failed: String(e && (e.stack || e)) }));
      process.exit(0);
    },
  );
}

/**
 * autobahn-js 26 opens its WebSocket with the global WebSocket class (browsers, Node 22+),
 * which takes no headers; the wson auth cookies go in the upgrade's Cookie header, so the
 * global becomes a `ws` WebSocket that adds them, one session's after the other (and the
 * Origin wson checks).
 */
function cookieWebSocket(cookies) {
  const WS = require('ws');
  let nextCookie = 0;
  globalThis.WebSocket = class extends WS {
    constructor(address, protocols) {
      super(address, protocols, {
        headers: { Cookie: cookies[nextCookie++ % cookies.length] },
        origin: 'http://localhost',
      });
    }
  };
}

module.exports = { within, report, cookieWebSocket };
