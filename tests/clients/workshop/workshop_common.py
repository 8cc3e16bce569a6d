"""Shared by the workshop's autobahn-python workers (asyncio): a WAMP-CRA session as the
lessons' PHP workers open one with Thruway, and bounded waits."""

import asyncio
from urllib.parse import urlparse

import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import auth, types  # noqa: E402
from autobahn.wamp.serializer import JsonSerializer  # noqa: E402

ORIGIN = "http://localhost"
STEP = 5.0


async def connect(url, realm, authid, secret):
    """A joined ApplicationSession logged in with WAMP-CRA as `authid`."""
    joined = asyncio.get_running_loop().create_future()

    class Session(ApplicationSession):
        def onConnect(self):
            self.join(realm, authmethods=["wampcra"], authid=authid)

        def onChallenge(self, challenge):
            return auth.compute_wcs(secret, challenge.extra["challenge"]).decode("ascii")

        def onJoin(self, details):
            self.joined_details = details
            if not joined.done():
                joined.set_result(self)

        def onLeave(self, details):
            if not joined.done():
                joined.set_exception(RuntimeError(f"{authid} left: {details.reason}"))
            self.disconnect()

    factory = WampWebSocketClientFactory(
        lambda: Session(types.ComponentConfig(realm=realm)),
        url=url,
        serializers=[JsonSerializer()],
        origin=ORIGIN,
    )
    address = urlparse(url)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.create_connection(factory, address.hostname, address.port), STEP)
    return await asyncio.wait_for(joined, STEP)
