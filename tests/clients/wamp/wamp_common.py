"""Shared pieces of the Python WAMP scenario scripts: sessions with autobahn-python (asyncio),
a raw WAMP-over-WebSocket client (Python `websockets`, JSON) for what autobahn hides or refuses
to send, and the normalization of what the clients observe.

Every wait is bounded by STEP seconds. A scenario builds one JSON document; random ids
(sessions, subscriptions, registrations, publications) become stable labels in the order the
scenario first meets them ("A".."E" for the scenario's own sessions), so that two routers
give equal documents for equal behaviour.
"""

import asyncio
import json
import traceback
from urllib.parse import urlparse

import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import types  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

# Longest wait for any one thing; reached only when something is broken.
STEP = 5.0

SERIALIZERS = {
    "json": JsonSerializer,
    "msgpack": MsgPackSerializer,
    "cbor": CBORSerializer,
}

LABELS = "ABCDEFGH"

# The Origin every client sends (tests/common's ORIGIN, allowed by the test configs): wson
# refuses a handshake without one unless its origins list holds "*".
ORIGIN = "http://localhost"


class Ids:
    """Random ids -> stable labels, per kind, in order of first appearance."""

    def __init__(self):
        self.labels = {}
        self.counts = {}

    def name(self, kind, value, label):
        self.labels[(kind, value)] = label

    def known(self, kind, value):
        return (kind, value) in self.labels

    def __call__(self, kind, value):
        if value is None:
            return None
        key = (kind, value)
        if key not in self.labels:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.labels[key] = f"{kind}{self.counts[kind]}"
        return self.labels[key]

    def session(self, value):
        return self("session", value)

    def authid(self, value):
        return self("authid", value)


async def connect(session_class, url, realm, serializer, cookie=None):
    """Opens a WebSocket to `url` for a `session_class` session joining `realm`, with the wson
    cookie `cookie` in the upgrade when one is given (the session's callbacks say the rest)."""
    factory = WampWebSocketClientFactory(
        lambda: session_class(types.ComponentConfig(realm=realm)),
        url=url,
        serializers=[serializer],
        origin=ORIGIN,
        headers={"Cookie": cookie} if cookie else None,
    )
    address = urlparse(url)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.create_connection(factory, address.hostname, address.port), STEP)


def plain(value):
    """A value as JSON can carry it: bytes become {"bytes": hex}, tuples lists."""
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def error(e):
    """An ApplicationError (or anything else) as the caller saw it."""
    if isinstance(e, ApplicationError):
        out = {"error": e.error}
        if e.args:
            out["args"] = plain(list(e.args))
        if e.kwargs:
            out["kwargs"] = plain(e.kwargs)
        return out
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return {"timeout": True}
    return {"exception": type(e).__name__, "message": str(e)[:200]}


async def attempt(awaitable, shape=lambda result: result):
    """{"ok": shape(result)} or the error, within STEP."""
    try:
        result = await asyncio.wait_for(awaitable, STEP)
    except Exception as e:  # noqa: BLE001: every failure is an observation
        return error(e)
    return {"ok": plain(shape(result))}


def result_of(result):
    """A call's result as autobahn hands it over: a value, or CallResult."""
    if isinstance(result, types.CallResult):
        return {"args": plain(list(result.results)), "kwargs": plain(result.kwresults)}
    return plain(result)


class Client:
    """One autobahn-python session; events of every subscription made through `subscribe`
    land in `inbox` in arrival order."""

    def __init__(self, ctx, label):
        self.ctx = ctx
        self.label = label
        self.session = None
        self.details = None
        self.inbox = asyncio.Queue()
        self.left = asyncio.get_running_loop().create_future()

    @property
    def id(self):
        return self.details.session

    @property
    def authid(self):
        return self.details.authid

    async def subscribe(self, topic, tag=None, **options):
        ids = self.ctx.ids

        def handler(*args, details=None, **kwargs):
            event = {"to": self.label}
            if tag is not None:
                event["sub"] = tag
            event["args"] = plain(list(args))
            if kwargs:
                event["kwargs"] = plain(kwargs)
            for field in ("topic", "retained", "publisher_authrole"):
                value = getattr(details, field, None)
                if value is not None:
                    event[field] = value
            if details.publisher is not None:
                event["publisher"] = ids.session(details.publisher)
            if details.publisher_authid is not None:
                event["publisher_authid"] = ids.authid(details.publisher_authid)
            self.inbox.put_nowait(event)

        return await asyncio.wait_for(
            self.session.subscribe(
                handler, topic, options=types.SubscribeOptions(details=True, **options)
            ),
            STEP,
        )

    async def events(self, count):
        """The next `count` events (bounded wait); a missing one is {"missing": true}."""
        got = []
        for _ in range(count):
            try:
                got.append(await asyncio.wait_for(self.inbox.get(), STEP))
            except asyncio.TimeoutError:
                got.append({"missing": True})
                break
        return got

    async def until(self, marker):
        """Events up to (without) the one whose first argument is `marker`."""
        got = []
        while True:
            try:
                event = await asyncio.wait_for(self.inbox.get(), STEP)
            except asyncio.TimeoutError:
                got.append({"missing": marker})
                return got
            if event.get("args", [None])[:1] == [marker]:
                return got
            got.append(event)

    async def publish(self, topic, *args, options=None, **kwargs):
        """Publishes; with acknowledge, waits (bounded) for the Publication."""
        options = types.PublishOptions(**(options or {}))
        published = self.session.publish(topic, *args, options=options, **kwargs)
        if published is not None:
            return await asyncio.wait_for(published, STEP)
        return None

    async def call(self, procedure, *args, options=None, **kwargs):
        return await asyncio.wait_for(
            self.session.call(
                procedure, *args, options=types.CallOptions(**(options or {})), **kwargs
            ),
            STEP,
        )

    async def register(self, endpoint, procedure, **options):
        return await asyncio.wait_for(
            self.session.register(
                endpoint, procedure, options=types.RegisterOptions(details=True, **options)
            ),
            STEP,
        )

    async def leave(self):
        self.session.leave()
        await asyncio.wait_for(asyncio.shield(self.left), STEP)


class Ctx:
    """A scenario's world: the router URL, its realm, one cookie header per session label,
    the id labels and the document being built. The URL may be several, comma-separated (the
    nodes of a wson cluster): session A joins the first, B the second, and so on round."""

    def __init__(self, url, realm, cookies, dynamic_url=None):
        self.urls = url.split(",")
        self.url = self.urls[0]
        # Where logins go to the realm's dynamic authenticator (Crossbar configures one per
        # transport; wson per realm, so the same URL).
        self.dynamic_url = (dynamic_url or url).split(",")[0]
        self.realm = realm
        self.cookies = cookies
        self.ids = Ids()
        self.out = {}
        self.clients = []

    def cookie(self, label):
        return self.cookies[LABELS.index(label) % len(self.cookies)]

    def url_of(self, label):
        """The router session `label` joins (its node, in a cluster)."""
        return self.urls[LABELS.index(label) % len(self.urls)]

    def note(self, key, value):
        self.out[key] = value

    async def join(self, label, serializer="json", realm=None):
        """An autobahn-python session joined as `label` (its cookies), or raises with the
        ABORT reason."""
        client = Client(self, label)
        joined = asyncio.get_running_loop().create_future()
        realm = realm or self.realm

        class Session(ApplicationSession):
            def onJoin(self, details):
                client.session = self
                client.details = details
                if not joined.done():
                    joined.set_result(details)

            def onLeave(self, details):
                if not joined.done():
                    joined.set_exception(ApplicationError(details.reason, details.message))
                if not client.left.done():
                    client.left.set_result(details)
                self.disconnect()

            def onDisconnect(self):
                if not joined.done():
                    joined.set_exception(ConnectionError("disconnected before WELCOME"))
                if not client.left.done():
                    client.left.set_result(None)

        await connect(
            Session, self.url_of(label), realm, SERIALIZERS[serializer](), self.cookie(label)
        )
        details = await asyncio.wait_for(joined, STEP)
        self.ids.name("session", details.session, label)
        self.ids.name("authid", details.authid, label)
        self.clients.append(client)
        return client

    async def raw(self, label, realm=None, hello_details=None):
        """A raw JSON WAMP session joined as `label`."""
        raw = Raw(self, label)
        await raw.open()
        welcome = await raw.hello(realm or self.realm, hello_details)
        if welcome[0] != 2:
            raise ApplicationError(welcome[2] if len(welcome) > 2 else "?", welcome)
        self.ids.name("session", welcome[1], label)
        self.ids.name("authid", welcome[2].get("authid"), label)
        raw.id = welcome[1]
        raw.authid = welcome[2].get("authid")
        return raw

    async def close(self):
        for client in self.clients:
            try:
                if client.session is not None and client.session.is_attached():
                    client.session.leave()
                    await asyncio.wait_for(asyncio.shield(client.left), 1)
            except Exception:  # noqa: BLE001: best effort at the end
                pass


# Roles a raw client announces in HELLO: every feature these scenarios exercise.
RAW_ROLES = {
    "publisher": {"features": {"publisher_exclusion": True, "publisher_identification": True,
                               "subscriber_blackwhite_listing": True}},
    "subscriber": {"features": {"pattern_based_subscription": True,
                                "publisher_identification": True}},
    "caller": {"features": {"progressive_call_results": True, "call_canceling": True,
                            "call_timeout": True, "caller_identification": True}},
    "callee": {"features": {"progressive_call_results": True, "call_canceling": True,
                            "call_timeout": True, "caller_identification": True,
                            "pattern_based_registration": True,
                            "shared_registration": True}},
}


DISCLOSED = {"caller": "session", "callee": "session", "publisher": "session",
             "caller_authid": "authid", "callee_authid": "authid", "publisher_authid": "authid"}


class Raw:
    """WAMP over a WebSocket by hand (JSON), for messages autobahn hides or refuses to send:
    disclose_me, cancel modes, INTERRUPT details, unknown ids."""

    def __init__(self, ctx, label):
        self.ctx = ctx
        self.label = label
        self.ws = None
        self.request = 0
        self.id = None
        self.authid = None

    async def open(self, protocol="wamp.2.json", cookies=True, url=None):
        """Connects (to `url`, else the router's); without `cookies` as a client that logs in
        by WAMP authentication."""
        headers = {"Cookie": self.ctx.cookie(self.label)} if cookies else {}
        self.ws = await asyncio.wait_for(
            ws_connect(
                url or self.ctx.url_of(self.label),
                subprotocols=[protocol],
                additional_headers=headers,
                origin=ORIGIN,
                compression=None,
                ping_interval=None,
            ),
            STEP,
        )

    def next_request(self):
        self.request += 1
        return self.request

    async def send(self, message):
        await self.ws.send(json.dumps(message))

    async def recv(self):
        """The next message, or ["closed", code] when the connection ends, or ["timeout"]."""
        try:
            text = await asyncio.wait_for(self.ws.recv(), STEP)
        except asyncio.TimeoutError:
            return ["timeout"]
        except Exception:  # noqa: BLE001: websockets' ConnectionClosed*
            code = self.ws.close_code
            return ["closed", code]
        message = json.loads(text)
        # Disclosed sessions and authids in EVENT, RESULT and INVOCATION details as labels.
        index = {36: 3, 50: 2, 68: 3}.get(message[0]) if message else None
        if index is not None and len(message) > index and isinstance(message[index], dict):
            details = message[index]
            for key, kind in DISCLOSED.items():
                if key in details:
                    details[key] = self.ctx.ids(kind, details[key])
        return message

    async def hello(self, realm, details=None):
        await self.send([1, realm, details or {"roles": RAW_ROLES}])
        return await self.recv()

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 1)
        except Exception:  # noqa: BLE001: best effort
            pass


def run(scenarios, argv):
    """`SCRIPT URL REALM SCENARIO COOKIES_JSON [DYNAMIC_URL]`: runs one scenario, prints its
    document."""
    url, realm, name, cookies = argv[1], argv[2], argv[3], json.loads(argv[4])
    dynamic_url = argv[5] if len(argv) > 5 else None

    async def main():
        ctx = Ctx(url, realm, cookies, dynamic_url)
        try:
            # Under the test's own 15 s wait for the document.
            await asyncio.wait_for(scenarios[name](ctx), 12)
        except Exception as e:  # noqa: BLE001: the failure is part of the document
            # Where in the scenario: its innermost line in a scenario script.
            frames = [f for f in traceback.extract_tb(e.__traceback__)
                      if f.filename.endswith("_scenarios.py")]
            where = f" at line {frames[-1].lineno}: {frames[-1].line}" if frames else ""
            ctx.out["failed"] = f"{type(e).__name__}: {str(e)[:300]}{where}"
        finally:
            await ctx.close()
        return ctx.out

    out = asyncio.run(main())
    print(json.dumps({"scenario": name, "observed": out}, sort_keys=True))
