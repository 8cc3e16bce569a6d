// Lesson 1 of the Crossbar real-time workshop ("Exploring a WAMP system"), as the browser
// console does it, with autobahn-js: in Node, `node lesson1.js URL REALM` prints one JSON
// document; in a page (lesson1.html, headless Chromium), `lesson1(workshop, URL, REALM)`
// resolves to the same document. An anonymous guest (no cookies, no authmethods): subscribe
// 'test', publish to it with exclude_me false, register 'test', call it, register it again
// (must fail), call a procedure nobody registered (must fail).
'use strict';

async function lesson1({ join, within, attempt }, url, realm) {
  const out = {};
  const joined = await within(join({ url, realm }), 'join');
  if (joined.abort) {
    return { abort: joined.abort };
  }
  const { connection, session, details } = joined;
  out.welcome = {
    authrole: details.authrole,
    authmethod: details.authmethod,
    authid_is_string: typeof details.authid === 'string' && details.authid.length > 0,
  };

  // Pub-sub: session.subscribe('test', ...) then
  // session.publish('test', ['abc'], {}, {exclude_me: false}).
  let gotEvent;
  const event = new Promise((resolve) => (gotEvent = resolve));
  const subscribed = await attempt(
    session.subscribe('test', (args, kwargs, details) =>
      gotEvent({ args, kwargs, topic: details.topic }),
    ).then(() => true),
    'subscribe',
  );
  out.subscribe = subscribed;
  session.publish('test', ['abc'], {}, { exclude_me: false });
  out.event = await attempt(event, 'event');

  // RPC: register "test" (returns 1), call it with [1, 'abc'].
  let invoked = null;
  out.register = await attempt(
    session
      .register('test', (args, kwargs) => {
        invoked = { args, kwargs };
        return 1;
      })
      .then(() => true),
    'register',
  );
  out.call = await attempt(session.call('test', [1, 'abc']), 'call');
  out.invoked = invoked;
  // "What arguments can you send to a procedure?": lists, objects, keyword arguments.
  out.call_kwargs = await attempt(
    session.call('test', [{ nested: [true, null] }], { k: 'v' }),
    'call with kwargs',
  );
  out.invoked_kwargs = invoked;

  // Registering the same procedure twice fails; so does calling one nobody registered.
  out.register_again = await attempt(session.register('test', () => 2), 'register again');
  out.call_unknown = await attempt(session.call('nothing.here', []), 'call unknown');
  // The first registration is still the one answering.
  out.call_after = await attempt(session.call('test', []), 'call after');

  connection.close();
  return out;
}

if (typeof module !== 'undefined' && require.main === module) {
  const [url, realm] = process.argv.slice(2);
  lesson1(require('./workshop_common'), url, realm)
    .then((out) => console.log(JSON.stringify(out)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
