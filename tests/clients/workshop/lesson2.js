// Lesson 2 of the Crossbar real-time workshop ("Realms & Permissions"), with autobahn-js in
// Node: `node lesson2.js URL METHOD` (METHOD "ticket" or "wampcra"). Joins the realm
// "somewhere-else" as barry (role seethings: call and subscribe) and steve (role dothings:
// register and publish) the way wsWorkshop.setConfig({...}).connectAgain() does, then tries
// the pub/sub and RPC commands of lesson 1 as each. Also: a wrong password, a guest in
// "ws-workshop", and a realm the router does not have. Prints one JSON document.
'use strict';

const { autobahn, join, within, attempt, welcome } = require('./workshop_common');

const [url, method] = process.argv.slice(2);
const REALM = 'somewhere-else';

function login(authid, password) {
  return within(
    join({
      url,
      realm: REALM,
      authmethods: [method],
      authid,
      onchallenge: (session, challengeMethod, extra) =>
        challengeMethod === 'wampcra' ? autobahn.auth_cra.sign(password, extra.challenge) : password,
    }),
    `login ${authid}`,
  );
}

async function main() {
  const out = {};
  const barry = await login('barry', 'notsosecret');
  const steve = await login('steve', 'slightlymoresecret');
  if (barry.abort || steve.abort) {
    console.log(JSON.stringify({ barry: barry.abort, steve: steve.abort }));
    return;
  }
  out.welcome = { barry: welcome(barry.details), steve: welcome(steve.details) };
  out.authid = { barry: barry.details.authid, steve: steve.details.authid };

  // barry (seethings) may subscribe; steve (dothings) may publish to him.
  let gotEvent;
  const event = new Promise((resolve) => (gotEvent = resolve));
  const onEvent = (args, kwargs, details) => gotEvent({ args, topic: details.topic });
  out.barry_subscribe = await attempt(barry.session.subscribe('test', onEvent).then(() => true), 'barry subscribe');
  out.steve_publish = await attempt(
    steve.session.publish('test', ['abc'], {}, { acknowledge: true }).then(() => true),
    'steve publish',
  );
  out.barry_event = await attempt(event, 'barry event');

  // steve may register; barry may call.
  let invoked = null;
  out.steve_register = await attempt(
    steve.session
      .register('test', (args) => {
        invoked = args;
        return 1;
      })
      .then(() => true),
    'steve register',
  );
  out.barry_call = await attempt(barry.session.call('test', [1, 'abc']), 'barry call');
  out.invoked = invoked;

  // What each role may not do.
  out.barry_publish = await attempt(
    barry.session.publish('test', ['abc'], {}, { acknowledge: true }).then(() => true),
    'barry publish',
  );
  out.barry_register = await attempt(barry.session.register('test2', () => 2).then(() => true), 'barry register');
  out.steve_subscribe = await attempt(steve.session.subscribe('test', () => {}).then(() => true), 'steve subscribe');
  out.steve_call = await attempt(steve.session.call('test', []), 'steve call');

  // A wrong password (steve's for barry) is refused at login.
  const wrong = await login('barry', 'slightlymoresecret');
  out.wrong_password = wrong.abort || 'joined';

  barry.connection.close();
  steve.connection.close();

  // The lesson's first realm takes guests; a realm the router lacks is refused.
  const guest = await within(join({ url, realm: 'ws-workshop' }), 'guest');
  out.guest = guest.abort ? { abort: guest.abort } : welcome(guest.details);
  if (!guest.abort) guest.connection.close();
  const nowhere = await within(join({ url, realm: 'nowhere' }), 'nowhere');
  out.unknown_realm = nowhere.abort || 'joined';
  if (!nowhere.abort) nowhere.connection.close();

  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
