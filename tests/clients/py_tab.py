"""A browser tab played by the `websockets` library (sync API), for the users, topics,
events and authorizer tests (tests/users.rs, tests/topics.rs, tests/events.rs,
tests/authorizer.rs).

Usage: py_tab.py MODE URL COOKIE ORIGIN [COUNT PREFIX]
  listen              prints each message until the server closes the connection
  send COUNT PREFIX   sends COUNT messages "PREFIX 0", "PREFIX 1", ... (the odd ones as
                      binary, UTF-8 encoded), says "sent", then listens as above
Prints one JSON object per line: {"event":"open"}, {"event":"message",...},
{"event":"sent","count":N}, {"event":"close","code":N,"reason":"..."}, or, for a refused
upgrade, {"event":"refused","status":N,"body":"..."}.
"""

import json
import sys

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 20  # seconds; the Rust test kills us after its own bound anyway


def say(**event):
    print(json.dumps(event), flush=True)


def describe(message):
    if isinstance(message, str):
        return {"kind": "text", "data": message}
    return {"kind": "binary", "hex": message.hex()}


def main():
    mode, url, cookie, origin = sys.argv[1:5]
    try:
        ws = connect(
            url,
            origin=origin,
            additional_headers={"Cookie": cookie},
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            ping_interval=None,
            max_size=None,
        )
    except InvalidStatus as refused:
        say(
            event="refused",
            status=refused.response.status_code,
            body=refused.response.body.decode("utf-8", "replace"),
        )
        return
    with ws:
        say(event="open")
        if mode == "send":
            count, prefix = int(sys.argv[5]), sys.argv[6]
            for index in range(count):
                text = f"{prefix} {index}"
                ws.send(text.encode() if index % 2 else text)
            say(event="sent", count=count)
        elif mode != "listen":
            say(event="unexpected", mode=mode)
            return
        while True:
            try:
                message = ws.recv(timeout=TIMEOUT)
            except ConnectionClosed as closed:
                if closed.rcvd is None:
                    say(event="close", code=1006, reason="")
                else:
                    say(event="close", code=closed.rcvd.code, reason=closed.rcvd.reason)
                return
            say(event="message", **describe(message))


if __name__ == "__main__":
    main()
