"""wson's real-client session, run with the `websockets` library (sync API).

Usage: py_websockets.py MODE URL COOKIE ORIGIN (see README.md in this folder).
Prints one JSON object per line; tests/real_clients.rs reads them.
"""

import json
import sys

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 20  # seconds; the Rust test kills us after its own bound anyway


def say(**event):
    print(json.dumps(event), flush=True)


def describe(message):
    """A message as JSON fields; long ones by length only."""
    kind = "text" if isinstance(message, str) else "binary"
    if len(message) > 100:
        return {"kind": kind, "len": len(message)}
    if kind == "text":
        return {"kind": kind, "data": message}
    return {"kind": kind, "hex": message.hex()}


def main():
    mode, url, cookie, origin = sys.argv[1:5]
    try:
        ws = connect(
            url,
            origin=origin,
            additional_headers={"Cookie": cookie},
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            # Our explicit ping below is the one under test.
            ping_interval=None,
            max_size=None,
        )
    except InvalidStatus as refused:
        say(event="refused", status=refused.response.status_code)
        return
    with ws:
        say(event="open")
        if mode == "session":
            session(ws)
        elif mode == "server-close":
            try:
                message = ws.recv(timeout=TIMEOUT)
                say(event="unexpected", **describe(message))
            except ConnectionClosed as closed:
                say(event="close", code=closed.rcvd.code, reason=closed.rcvd.reason)
        else:
            say(event="unexpected", mode=mode)


def session(ws):
    # Pushes from the control socket; the test sends five once it has seen "open".
    for _ in range(5):
        say(event="message", **describe(ws.recv(timeout=TIMEOUT)))
    for sent in ["echo \u2713", bytes([0, 1, 0xFE, 0xFF]), "x" * 70000]:
        ws.send(sent)
        back = ws.recv(timeout=TIMEOUT)
        say(event="echo", same=back == sent, **describe(back))
    # ping() returns an event that is set when a pong with the same payload arrives.
    if ws.ping(b"wson").wait(TIMEOUT):
        say(event="pong", hex=b"wson".hex())
    else:
        say(event="no-pong")
    ws.close(code=4000, reason="bye")
    # close_rcvd: the Close frame the server sent back.
    say(event="close", code=ws.protocol.close_rcvd.code, reason=ws.protocol.close_rcvd.reason)


if __name__ == "__main__":
    main()
