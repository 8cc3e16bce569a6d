"""wson's real-client session, run with the `websocket-client` library.

Usage: py_websocket_client.py MODE URL COOKIE ORIGIN (see README.md in this folder).
Prints one JSON object per line; tests/real_clients.rs reads them.
"""

import json
import struct
import sys

import websocket
from websocket import ABNF

TIMEOUT = 20  # seconds; the Rust test kills us after its own bound anyway


def say(**event):
    print(json.dumps(event), flush=True)


def describe(opcode, data):
    """A message as JSON fields; long ones by length only."""
    kind = {ABNF.OPCODE_TEXT: "text", ABNF.OPCODE_BINARY: "binary"}.get(opcode, str(opcode))
    if kind == "text" and isinstance(data, bytes):
        data = data.decode("utf-8")
    if len(data) > 100:
        return {"kind": kind, "len": len(data)}
    if kind == "text":
        return {"kind": kind, "data": data}
    return {"kind": kind, "hex": bytes(data).hex()}


def close_fields(frame):
    code, = struct.unpack("!H", frame.data[:2]) if len(frame.data) >= 2 else (None,)
    return {"code": code, "reason": frame.data[2:].decode("utf-8")}


def main():
    mode, url, cookie, origin = sys.argv[1:5]
    try:
        ws = websocket.create_connection(url, timeout=TIMEOUT, cookie=cookie, origin=origin)
    except websocket.WebSocketBadStatusException as refused:
        say(event="refused", status=refused.status_code)
        return
    say(event="open")
    if mode == "session":
        session(ws)
    elif mode == "server-close":
        # recv_data_frame answers the server's Close with one of ours and returns it.
        opcode, frame = ws.recv_data_frame()
        if opcode == ABNF.OPCODE_CLOSE:
            say(event="close", **close_fields(frame))
        else:
            say(event="unexpected", **describe(opcode, frame.data))
        ws.shutdown()
    else:
        say(event="unexpected", mode=mode)


def session(ws):
    # Pushes from the control socket; the test sends five once it has seen "open".
    for _ in range(5):
        say(event="message", **describe(*ws.recv_data()))
    for sent in ["echo \u2713", bytes([0, 1, 0xFE, 0xFF]), "x" * 70000]:
        if isinstance(sent, str):
            ws.send(sent)
        else:
            ws.send_binary(sent)
        opcode, back = ws.recv_data()
        fields = describe(opcode, back)
        same = (back.decode("utf-8") if opcode == ABNF.OPCODE_TEXT else back) == sent
        say(event="echo", same=same, **fields)
    ws.ping(b"wson")
    opcode, frame = ws.recv_data_frame(control_frame=True)
    if opcode == ABNF.OPCODE_PONG:
        say(event="pong", hex=frame.data.hex())
    else:
        say(event="no-pong", opcode=opcode)
    # Low level on purpose: close() hides the Close frame the server answers with.
    ws.send_close(4000, b"bye")
    frame = ws.recv_frame()
    if frame.opcode == ABNF.OPCODE_CLOSE:
        say(event="close", **close_fields(frame))
    else:
        say(event="unexpected", opcode=frame.opcode)
    ws.shutdown()


if __name__ == "__main__":
    main()
