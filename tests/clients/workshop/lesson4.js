// Lesson 4 of the Crossbar real-time workshop ("Dynamic authentication with workers"), the
// browser side, with autobahn-js in Node: `node lesson4.js URL REALM before` tries to log in
// before the authenticator worker runs; `node lesson4.js URL REALM APP` runs the lesson with
// the worker (lesson4_worker.py) and its app at APP. As wsWorkshop.setAuth(user,
// secret).connect() does, each user logs in with WAMP-CRA; `login(user, password)` first asks
// the app for the user's token. Prints one JSON document.
'use strict';

const { autobahn, join, within, attempt, welcome } = require('./workshop_common');

const [url, realm, app] = process.argv.slice(2);

function setAuth(authid, secret) {
  return within(
    join({
      url,
      realm,
      authmethods: ['wampcra'],
      authid,
      onchallenge: (session, method, extra) => autobahn.auth_cra.sign(secret, extra.challenge),
    }),
    `login ${authid}`,
  );
}

function outcome(joined) {
  if (joined.abort) return { abort: joined.abort };
  return { ...welcome(joined.details), authprovider: joined.details.authprovider };
}

const sub = (who, topic, handler = () => {}) =>
  attempt(who.session.subscribe(topic, handler).then(() => true), `subscribe ${topic}`);
const pub = (who, topic, args) =>
  attempt(who.session.publish(topic, args, {}, { acknowledge: true }).then(() => true), `publish ${topic}`);

async function post(path, body) {
  const response = await fetch(app + path, { method: 'POST', body: JSON.stringify(body) });
  return response.json();
}

async function main() {
  if (app === 'before') {
    // "it's not possible to connect because no authenticator is yet subscribed"
    const early = await setAuth('whatever', 'wont-work');
    console.log(JSON.stringify({ before: outcome(early) }));
    if (!early.abort) early.connection.close();
    return;
  }
  const out = {};
  const sessions = [];

  // The authenticator's own users: alice (basic-user, static permissions).
  const alice = await setAuth('alice', 'changeme');
  out.alice = outcome(alice);
  sessions.push(alice);
  out.alice_test = await sub(alice, 'test');
  let delivered;
  const event = new Promise((resolve) => (delivered = resolve));
  out.alice_chat = await sub(alice, 'workshop.chat', (args, kwargs, details) =>
    delivered({ args, publisher_authid: details.publisher_authid }),
  );
  out.wrong_password = outcome(await setAuth('alice', 'nope'));

  // bob: permissions-user, every action asks workshop.permissions.
  const bob = await setAuth('bob', 'password123');
  out.bob = outcome(bob);
  sessions.push(bob);
  out.bob_test = await sub(bob, 'test');
  out.bob_chat = await sub(bob, 'workshop.chat');
  out.bob_chat_again = await sub(bob, 'workshop.chat');
  out.bob_publish = await pub(bob, 'workshop.chat', ['hi from bob']);
  out.alice_event = await attempt(event, 'alice event');
  out.bob_call = await attempt(bob.session.call('workshop.auth', []), 'bob call');

  // Someone the authenticator does not know: role "blocked" with an empty secret.
  out.stranger = outcome(await setAuth('mallory', 'whatever'));
  const blocked = await setAuth('mallory', '');
  out.blocked = outcome(blocked);
  if (!blocked.abort) {
    sessions.push(blocked);
    out.blocked_chat = await sub(blocked, 'workshop.chat');
  }

  // "Integration with existing auth mechanisms": a user of the app.
  const created = await post('/user', { name: 'zed' });
  const { token } = await post('/login', { name: 'zed', password: created.password });
  const zed = await setAuth('zed', token);
  out.zed = outcome(zed);
  sessions.push(zed);
  out.zed_chat = await sub(zed, 'workshop.chat');
  out.zed_test = await sub(zed, 'test');

  out.log = await (await fetch(`${app}/log`)).json();
  for (const joined of sessions) if (!joined.abort) joined.connection.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
