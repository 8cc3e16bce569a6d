"""A standard autobahn-python subscriber of a topic with history (tests/wamp_history.rs).

Usage: py_history.py URL REALM COOKIE TOPIC COUNT

Joins REALM with the Cookie header COOKIE, subscribes to TOPIC asking for EVENT details,
prints {"subscribed": true}, then waits for COUNT events and prints them, each with what
the handler got (args, kwargs, details.publication) and the EVENT's raw details dict as it
came over the wire: autobahn's EventDetails keeps only the standard keys, so the script
records Event.parse's input to show the `_wson_position` extension arrives and that the
client takes the EVENT like any other.
"""

import asyncio
import json
import sys

from wamp_common import STEP, connect, plain

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp import message, types
from autobahn.wamp.serializer import JsonSerializer

RAW_DETAILS = {}

_parse = message.Event.parse


def _recording_parse(wmsg):
    event = _parse(wmsg)
    RAW_DETAILS[wmsg[2]] = wmsg[3]
    return event


message.Event.parse = staticmethod(_recording_parse)


async def main(url, realm, cookie, topic, count):
    count = int(count)
    done = asyncio.get_running_loop().create_future()
    events = []

    class Session(ApplicationSession):
        async def onJoin(self, details):
            def handler(*args, details=None, **kwargs):
                events.append(
                    {
                        "args": plain(list(args)),
                        "kwargs": plain(kwargs),
                        "publication": details.publication,
                        "raw_details": RAW_DETAILS.get(details.publication),
                    }
                )
                if len(events) == count and not done.done():
                    done.set_result({"events": events})

            await self.subscribe(
                handler, topic, options=types.SubscribeOptions(details_arg="details")
            )
            print(json.dumps({"subscribed": True}), flush=True)

        def onLeave(self, details):
            if not done.done():
                done.set_result({"left": details.reason})

        def onDisconnect(self):
            if not done.done():
                done.set_result({"left": "disconnected"})

    await connect(Session, url, realm, JsonSerializer(), cookie)
    print(json.dumps(await asyncio.wait_for(done, STEP)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
