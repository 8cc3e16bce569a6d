// Shared by the workshop's autobahn-js scripts, in Node and in the browser: joining, and
// bounded waits. In Node it also installs the `ws` WebSocket global autobahn-js needs in Node
// 20 (sending the Origin wson checks, and no cookies: the workshop's clients log in with WAMP
// auth, or as anonymous guests); in a page it uses the autobahn-browser bundle's `autobahn`
// and sets `window.workshop`.
'use strict';

(function (root) {
  function make(autobahn) {
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
      let timer;
      const bound = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), 5000);
      });
      // A pending bound must not keep Node from exiting once the script is done.
      return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
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

    return { autobahn, join, within, attempt, welcome };
  }

  if (typeof module !== 'undefined' && module.exports) {
    const WS = require('ws');
    const ORIGIN = 'http://localhost';
    globalThis.WebSocket = class extends WS {
      constructor(address, protocols) {
        super(address, protocols, { origin: ORIGIN });
      }
    };
    module.exports = make(require('autobahn'));
  } else {
    root.workshop = make(root.autobahn);
  }
})(this);
