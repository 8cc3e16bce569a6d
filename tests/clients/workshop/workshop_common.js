// Shared by the workshop's autobahn-js scripts (Node): the `ws` WebSocket global autobahn-js
// needs in Node 20 (sending the Origin wson checks, and no cookies: the workshop's clients
// log in with WAMP auth, or as anonymous guests), joining, and bounded waits.
'use strict';

const WS = require('ws');

const ORIGIN = 'http://localhost';

globalThis.WebSocket = class extends WS {
  constructor(address, protocols) {
    super(address, protocols, { origin: ORIGIN });
  }
};

const autobahn = require('autobahn');

/** Resolves {connection, session, details} once joined, or {abort: reason, message}. */
function join(options) {
  return new Promise((resolve) => {
    const connection = new autobahn.Connection({ max_retries: 0, ...options });
    connection.onopen = (session, details) => resolve({ connection, session, details });
    connection.onclose = (reason, details) => {
      resolve({ abort: (details && details.reason) || reason });
      return true; // no retry
    };
    connection.open();
  });
}

function within(promise, what) {
  return Promise.race([
    promise,
    // unref: a pending bound must not keep Node from exiting once the script is done.
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), 5000).unref()),
  ]);
}

/** {ok: value} or {error: URI} (or {exception: message}), bounded. */
async function attempt(promise, what) {
  try {
    return { ok: await within(promise, what) };
  } catch (e) {
    if (e && e.error) return { error: e.error };
    return { exception: String(e && e.message ? e.message : e) };
  }
}

function welcome(details) {
  return { authrole: details.authrole, authmethod: details.authmethod };
}

module.exports = { autobahn, join, within, attempt, welcome };
