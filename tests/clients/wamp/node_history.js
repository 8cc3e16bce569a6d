// autobahn-js in Node and the topic history (tests/wamp_history.rs), with README's wrapper of
// the EVENT handler ("Missed messages", WAMP sessions). Run as
// `node node_history.js URL REALM TOPIC COOKIES_JSON`.
//
// Session A subscribes to TOPIC and prints {"subscribed": true}; the test publishes two
// messages with `Y`. A keeps the positions its EVENTs carry and leaves; session B publishes
// two more; A' subscribes with `_wson_resume` from the last position A saw and gets those
// two, then subscribes to a topic without history with a resume and gets a reload. Prints
// one JSON document: {"first": [..], "resumed": [..], "reload": {..}}.
'use strict';

const { within, report, cookieWebSocket } = require('./node_common');

const [url, realm, topic, cookiesJson] = process.argv.slice(2);
cookieWebSocket(JSON.parse(cookiesJson));

const autobahn = require('autobahn');

function join() {
  return new Promise((resolve, reject) => {
    const connection = new autobahn.Connection({
      url,
      realm,
      serializers: [new autobahn.serializer.JSONSerializer()],
      max_retries: 0,
    });
    connection.onopen = (session) => resolve({ connection, session });
    connection.onclose = (reason) => {
      reject(new Error(`closed: ${reason}`));
      return true;
    };
    connection.open();
  });
}

/** README's wrapper: positions and reload notices from the raw EVENT details. The topic
 * comes from autobahn's own table, filled when SUBSCRIBED arrives: a replay follows
 * SUBSCRIBED at once, before the subscribe promise's continuation runs. */
function watch(session, seen, reloads) {
  const onEvent = session._MESSAGE_MAP[36];
  session._MESSAGE_MAP[36] = (msg) => {
    const [, subscription, , details] = msg;
    const subs = session._subscriptions[subscription];
    const name = details.topic || (subs && subs[0] && subs[0].topic);
    if (details._wson_reload) { reloads.push({ topic: name, ...details._wson_reload }); }
    else if (details._wson_position) { seen[name] = details._wson_position; }
    if (!details._wson_reload) { onEvent(msg); }
  };
}

/** A promise of `count` events, each {args, position} as the handler saw them. */
function collect(count, seen, name) {
  const events = [];
  let handler;
  const done = new Promise((resolve) => {
    handler = (args) => {
      events.push({ args, position: seen[name] });
      if (events.length === count) resolve(events);
    };
  });
  return { handler, done };
}

async function main() {
  const seen = {};
  const reloads = [];
  const a = await within(join(), 'join A');
  const first = collect(2, seen, topic);
  watch(a.session, seen, reloads);
  await within(a.session.subscribe(topic, first.handler), 'subscribe');
  console.log(JSON.stringify({ subscribed: true }));
  const out = { first: await within(first.done, 'first events') };
  a.connection.close();

  const b = await within(join(), 'join B');
  for (const text of ['while away 1', 'while away 2']) {
    await within(b.session.publish(topic, [text], {}, { acknowledge: true }), 'publish');
  }
  const again = await within(join(), "join A'");
  watch(again.session, seen, reloads);
  const resumed = collect(2, seen, topic);
  const resume = { _wson_resume: seen[topic] };
  await within(again.session.subscribe(topic, resumed.handler, resume), 'resume');
  out.resumed = await within(resumed.done, 'resumed events');
  await within(again.session.subscribe('chat', () => {}, resume), 'resume chat');
  const deadline = Date.now() + 5000;
  while (reloads.length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  out.reload = reloads[0] || null;
  again.connection.close();
  b.connection.close();
  return out;
}

report(main);
