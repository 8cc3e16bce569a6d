// wson.js: a small browser helper for wson (an ES module, no dependencies, no build step).
//
//   import { connect } from './wson.js';
//   const client = connect('wss://example.com/ws', {
//     onText: (text) => console.log(text),
//     renew: () => fetch('/wson-cookies', { method: 'POST' }).then((r) => r.ok),
//   });
//   client.close();   // a clean close: no reconnect
//
// wson authenticates the handshake with four cookies (token, user, time, digest) the backend
// sets; the helper never reads or writes them. What it does:
//
// - reconnects after a close with exponential backoff and full jitter: the wait before retry
//   n (0, 1, ...) is random in [0, min(maxDelay, baseDelay * 2^n)), n going back to 0 once a
//   connection opens; after maxAttempts failed attempts in a row it gives up;
// - after a Close 1000 "expired" (the token's lifetime ended) awaits the `renew` callback,
//   which asks the backend for fresh cookies, then reconnects at once;
// - after a Close 1001 (wson is going away: a restart) reconnects soon (retry 0's wait);
// - a handshake wson refuses (403 bad cookies, 429 token busy or rate limited, 503 full)
//   reaches a browser as a Close 1006 before any open, with no status: it is reported as
//   `refused` and retried with backoff, since the page cannot know which it was;
// - a Close the backend chose stops (option stopOn; by default 1000 other than "expired"
//   and 4000-4999: a kick, 4001 "replaced"): reconnecting would undo it.
//
// - with the `positions` option (an object, `{}` to start), resumes topics with history
//   (README.md of wson, "Missed messages"): each connection's URL carries `resume=` with the
//   position of each topic seen so far, wson's position notices are read (not reported as
//   text) and kept in `client.positions`, a publication already seen is dropped, and a
//   reload notice is reported as `reload` ({topic, reason, epoch, offset}): load the topic's
//   state from the backend again.
//
// Every event is both an `on<Name>` option callback and a DOM event on the client (an
// EventTarget; the payload in `event.detail`): open, text, binary, close, goingaway,
// expired, renewed, refused, retry, giveup, reload. See README.md beside this file.

const DEFAULTS = {
  baseDelay: 500, // ms, the cap of retry 0's wait
  maxDelay: 30000, // ms, the cap of any wait
  maxAttempts: Infinity, // failed attempts in a row before giving up
  renew: null, // async () => truthy once fresh cookies are set; null: stop on "expired"
  // Closes after which reconnecting is wrong: the backend's own codes (a kick, 4000 by
  // default; 4001 "replaced") and a normal closure other than "expired".
  stopOn: ({ code }) => code === 1000 || (code >= 4000 && code <= 4999),
  protocols: undefined,
  positions: null, // {topic: {epoch, offset}}: resume these topics; null: no resume
};

const EXPIRED = { code: 1000, reason: 'expired' };
const GOING_AWAY = 1001;

export class WsonClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    /** 'connecting' | 'open' | 'waiting' | 'renewing' | 'closed' */
    this.state = 'closed';
    /** Failed attempts since the last open. */
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    /** Topic -> {epoch, offset} of the last publication seen; null without resume. */
    this.positions = this.options.positions ? { ...this.options.positions } : null;
    /** The position notice of the next publication. */
    this.announced = null;
    this.open();
  }

  /** Sends a string, Blob, ArrayBuffer or typed array; false when not open. */
  send(data) {
    if (this.state !== 'open') return false;
    this.socket.send(data);
    return true;
  }

  /** A clean close (1000 by default): no reconnect, now or later. */
  close(code = 1000, reason = '') {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) {
      this.socket.close(code, reason);
    } else if (this.state !== 'closed') {
      this.finish({ code, reason, wasClean: true });
    }
  }

  open() {
    if (this.stopped) return;
    this.state = 'connecting';
    this.announced = null;
    const socket = new WebSocket(this.resumeUrl(), this.options.protocols);
    socket.binaryType = 'arraybuffer';
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.state = 'open';
      this.emit('open', { url: this.url });
    };
    socket.onmessage = (event) => {
      if (this.positions && !this.positioned(event.data)) return;
      if (typeof event.data === 'string') this.emit('text', event.data);
      else this.emit('binary', event.data);
    };
    socket.onclose = (event) => {
      this.socket = null;
      this.closed(event, opened);
    };
    this.socket = socket;
  }

  /** The URL with `resume=` for the positions known (wson splits items at `,`). */
  resumeUrl() {
    if (!this.positions) return this.url;
    const items = Object.entries(this.positions).map(
      ([topic, { epoch, offset }]) => `${encodeURIComponent(topic)}@${epoch}:${offset}`,
    );
    return `${this.url}${this.url.includes('?') ? '&' : '?'}resume=${items.join(',')}`;
  }

  /** Reads wson's notices; false when `data` is one, or a publication already seen. */
  positioned(data) {
    if (typeof data === 'string' && data.startsWith('{"wson":')) {
      let note = null;
      try {
        note = JSON.parse(data);
      } catch (error) {
        note = null;
      }
      if (note && note.wson === 'position') {
        this.announced = note;
        return false;
      }
      if (note && note.wson === 'reload') {
        if (note.epoch === null) delete this.positions[note.topic];
        else this.positions[note.topic] = { epoch: note.epoch, offset: note.offset };
        this.emit('reload', note);
        return false;
      }
    }
    const note = this.announced;
    this.announced = null;
    if (!note) return true;
    const seen = this.positions[note.topic];
    if (seen && seen.epoch === note.epoch && note.offset <= seen.offset) return false;
    this.positions[note.topic] = { epoch: note.epoch, offset: note.offset };
    return true;
  }

  closed({ code, reason, wasClean }, opened) {
    const close = { code, reason, wasClean };
    if (this.stopped) return this.finish(close);
    if (code === EXPIRED.code && reason === EXPIRED.reason) {
      this.emit('expired', close);
      if (typeof this.options.renew !== 'function') return this.finish(close);
      return this.renew(close);
    }
    if (this.options.stopOn(close)) return this.finish(close);
    if (code === GOING_AWAY) {
      this.attempt = 0;
      return this.retry('goingaway', close);
    }
    this.attempt += opened ? 0 : 1;
    if (this.attempt >= this.options.maxAttempts) {
      this.emit('giveup', { ...close, attempts: this.attempt });
      return this.finish(close);
    }
    this.retry(opened ? 'retry' : 'refused', close);
  }

  async renew(close) {
    this.state = 'renewing';
    let renewed = { ok: false };
    try {
      renewed.ok = Boolean(await this.options.renew(close));
    } catch (error) {
      renewed.error = String(error);
    }
    // close() during the callback has already reported the close.
    if (this.stopped) return;
    this.emit('renewed', renewed);
    if (renewed.ok) return this.open();
    // Expired cookies would only be refused: ask again after a backoff instead.
    this.attempt += 1;
    if (this.attempt >= this.options.maxAttempts) {
      this.emit('giveup', { ...close, attempts: this.attempt });
      return this.finish(close);
    }
    this.retry('retry', close, () => this.renew(close));
  }

  /** Waits retry `attempt`'s backoff, reporting why as event `name`, then `next()`. */
  retry(name, close, next = () => this.open()) {
    const delay = this.delay(this.attempt);
    this.state = 'waiting';
    this.emit(name, { ...close, attempt: this.attempt, delay });
    this.timer = setTimeout(() => {
      this.timer = null;
      next();
    }, delay);
  }

  /** Full jitter: random in [0, min(maxDelay, baseDelay * 2^attempt)). */
  delay(attempt) {
    const { baseDelay, maxDelay } = this.options;
    const cap = Math.min(maxDelay, baseDelay * 2 ** Math.min(attempt, 30));
    return Math.floor(Math.random() * cap);
  }

  finish(close) {
    this.state = 'closed';
    this.emit('close', close);
  }

  emit(name, detail) {
    const callback = this.options['on' + name[0].toUpperCase() + name.slice(1)];
    if (typeof callback === 'function') {
      try {
        callback.call(this, detail);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

/** Connects to a wson URL now; see WsonClient. */
export function connect(url, options) {
  return new WsonClient(url, options);
}
