// Lesson 5 of the Crossbar real-time workshop, "Permissions via API calls", the browser side,
// with autobahn-js in Node: `node lesson5_permissions.js URL REALM APP`. A user of the app
// (lesson4_worker.py in its lesson5 mode, whose authorizer asks the app) gets a thread, then
// `login(user, password)`, `wsWorkshop.connect().sub(thread).pub(thread, 'Hello to you')`.
// Prints one JSON document.
'use strict';

const { autobahn, join, within, attempt, welcome } = require('./workshop_common');

const [url, realm, app] = process.argv.slice(2);

async function post(path, body) {
  const response = await fetch(app + path, { method: 'POST', body: JSON.stringify(body) });
  return response.json();
}

async function main() {
  const out = {};
  // curl -X POST -d '{"name": "my user", "title": "some thread"}' localhost:8015/thread
  const created = await post('/user', { name: 'yan' });
  out.thread = await post('/thread', { name: 'yan', title: 'some-thread' });
  const { token } = await post('/login', { name: 'yan', password: created.password });
  const yan = await within(
    join({
      url,
      realm,
      authmethods: ['wampcra'],
      authid: 'yan',
      onchallenge: (session, method, extra) => autobahn.auth_cra.sign(token, extra.challenge),
    }),
    'login yan',
  );
  if (yan.abort) {
    console.log(JSON.stringify({ abort: yan.abort }));
    return;
  }
  out.yan = welcome(yan.details);
  const thread = 'workshop.chat.some-thread';
  let delivered;
  const event = new Promise((resolve) => (delivered = resolve));
  out.sub = await attempt(
    yan.session.subscribe(thread, (args) => delivered(args)).then(() => true),
    'subscribe',
  );
  out.pub = await attempt(
    yan.session.publish(thread, ['Hello to you'], {}, { acknowledge: true, exclude_me: false }).then(() => true),
    'publish',
  );
  out.event = await attempt(event, 'event');
  out.other_thread = await attempt(
    yan.session.subscribe('workshop.chat.other-thread', () => {}).then(() => true),
    'subscribe other',
  );
  out.call = await attempt(yan.session.call('workshop.subscribers', []), 'call');
  out.log = (await (await fetch(`${app}/log`)).json()).permissions;
  yan.connection.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
