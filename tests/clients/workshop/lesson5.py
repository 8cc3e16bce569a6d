#!/usr/bin/env python3
"""Lesson 5 of the Crossbar real-time workshop ("Caching and listening"), with autobahn-python
(asyncio): `lesson5.py URL REALM`.

The listener worker of the lesson (there PHP/Thruway, here Python), logged in as "listener":
- "Recording messages": on `wamp.subscription.on_create` (not its own) it remembers the
  topic and subscribes to it, and records every message published there with the
  publisher's authid (the role's permission discloses it) and the thread name.
- "Listing active users": on `wamp.subscription.on_subscribe` it adds the subscriber's authid
  to the topic's list (the lesson's Redis "session-ID" keys come from its authenticator; here
  `wamp.session.get` gives the authid); on `wamp.subscription.on_unsubscribe` it rebuilds the
  list from `wamp.subscription.list_subscribers`. It registers `workshop.subscribers`, which
  returns the JSON list of a thread's users ("[]" without a topic).

Then users alice, bob and carol (WAMP-CRA) subscribe, publish, call `workshop.subscribers`,
leave and unsubscribe. Prints one JSON document. Every wait is bounded.
"""

import asyncio
import json
import sys

import workshop_common
from autobahn.wamp import types
from autobahn.wamp.exception import ApplicationError
from workshop_common import STEP

PREFIX = "workshop.chat."
SECRETS = {
    "listener": "listener-secret",
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
}


async def connect(url, realm, authid):
    """A joined session of `authid`, with its secret."""
    return await workshop_common.connect(url, realm, authid, SECRETS[authid])


class Listener:
    """The lesson's listener worker; `log` holds its terminal_log lines as data."""

    def __init__(self, session):
        self.session = session
        self.own = session.joined_details.session
        self.topics = {}  # the lesson's Redis "topic-ID" keys
        self.users = {}  # its topic -> JSON list of authids
        self.authids = {}  # its "session-ID" keys
        self.created = []
        self.messages = []
        self.snooping = {}  # topic -> future, set once subscribed to it

    async def start(self):
        s = self.session
        await s.subscribe(self.on_create, "wamp.subscription.on_create")
        await s.subscribe(self.on_subscribe, "wamp.subscription.on_subscribe")
        await s.subscribe(self.on_unsubscribe, "wamp.subscription.on_unsubscribe")
        await s.register(self.subscribers, "workshop.subscribers")

    def snooped(self, topic):
        if topic not in self.snooping:
            self.snooping[topic] = asyncio.get_running_loop().create_future()
        return self.snooping[topic]

    async def on_create(self, subscriber_session_id, details):
        if subscriber_session_id == self.own:
            return  # avoids catching our own subscriptions
        topic, topic_id = details["uri"], details["id"]
        self.created.append(topic)
        self.topics[topic_id] = topic
        self.users[topic] = []

        def message(*args, details=None):
            self.messages.append(
                {
                    "user": details.publisher_authid,
                    "thread": topic.replace(PREFIX, "", 1),
                    "message": args[0] if args else None,
                }
            )

        await self.session.subscribe(message, topic, options=types.SubscribeOptions(details=True))
        self.snooped(topic).set_result(True)

    async def on_subscribe(self, subscriber_session_id, topic_id):
        if subscriber_session_id == self.own:
            return
        session = await self.session.call("wamp.session.get", subscriber_session_id)
        user = session["authid"]
        self.authids[subscriber_session_id] = user
        topic = self.topics.get(topic_id)
        if topic is not None:
            self.users.setdefault(topic, []).append(user)

    async def on_unsubscribe(self, session_id, topic_id):
        session_ids = await self.session.call("wamp.subscription.list_subscribers", topic_id)
        topic_users = [self.authids[i] for i in session_ids if i in self.authids]
        topic = self.topics.get(topic_id)
        if topic is not None:
            self.users[topic] = topic_users

    def subscribers(self, topic=None):
        if not topic:
            return "[]"
        if not topic.startswith(PREFIX):
            topic = PREFIX + topic
        return json.dumps(self.users.get(topic))


async def attempt(awaitable):
    try:
        result = await asyncio.wait_for(awaitable, STEP)
        return {"ok": result if isinstance(result, (str, int, list, dict)) else True}
    except ApplicationError as e:
        return {"error": e.error}


async def until(caller, thread, want):
    """Calls workshop.subscribers until it answers `want` (bounded); the last answer."""
    deadline = asyncio.get_running_loop().time() + STEP
    while True:
        got = json.loads(await asyncio.wait_for(caller.call("workshop.subscribers", thread), STEP))
        if got == want or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.02)


async def main(url, realm):
    out = {}
    listener = Listener(await connect(url, realm, "listener"))
    await listener.start()
    alice = await connect(url, realm, "alice")
    bob = await connect(url, realm, "bob")
    carol = await connect(url, realm, "carol")
    thread = PREFIX + "some-thread"

    inbox = {"alice": [], "bob": []}
    alice_sub = await alice.subscribe(lambda m: inbox["alice"].append(m), thread)
    await asyncio.wait_for(listener.snooped(thread), STEP)
    out["after_alice"] = await until(carol, "some-thread", ["alice"])
    await bob.subscribe(lambda m: inbox["bob"].append(m), thread)
    out["after_bob"] = await until(carol, "some-thread", ["alice", "bob"])
    out["full_uri"] = json.loads(await carol.call("workshop.subscribers", thread))
    out["no_topic"] = await carol.call("workshop.subscribers", "")

    # wsWorkshop.connect().sub(thread).pub(thread, 'Hello to you')
    await alice.publish(thread, "Hello to you", options=types.PublishOptions(acknowledge=True))
    await bob.publish(thread, "Hi alice", options=types.PublishOptions(acknowledge=True))
    deadline = asyncio.get_running_loop().time() + STEP
    while len(listener.messages) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    out["recorded"] = listener.messages
    out["created"] = listener.created
    out["inbox"] = inbox

    # Presence: bob signs off, then alice unsubscribes.
    bob.leave()
    out["after_bob_left"] = await until(carol, "some-thread", ["alice"])
    await alice_sub.unsubscribe()
    out["after_alice_unsubscribed"] = await until(carol, "some-thread", [])

    # The users' role: no meta API, no registering the listener's procedure.
    out["user_list_subscribers"] = await attempt(carol.call("wamp.subscription.list", None))
    out["user_register"] = await attempt(carol.register(lambda: None, "workshop.subscribers"))
    out["user_publish_elsewhere"] = await attempt(
        carol.publish("other.topic", "x", options=types.PublishOptions(acknowledge=True))
    )

    print(json.dumps(out), flush=True)
    for session in (alice, carol, listener.session):
        session.leave()
    await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
