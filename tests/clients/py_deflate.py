"""Autobahn|Testsuite groups 12 and 13 (permessage-deflate) against wson's echo, with the
`websockets` library as the compressing client (tests/deflate.rs runs it).

Usage: py_deflate.py URL COOKIE ORIGIN CASES_JSON

CASES_JSON is a list of cases: {"id", "corpus", "binary", "size", "count", "fragment",
"offers"}; each offer is a dict of ClientPerMessageDeflateFactory arguments. Each case opens
its own connection with those offers, sends `count` messages of `size` bytes cut from the
corpus at successive offsets (so consecutive messages differ and a kept context matters),
each in frames of `fragment` bytes (0: one frame), waits for each echo and compares it.
Prints one JSON object per case: what was negotiated, how many echoes matched, and how many
of the server's frames came compressed (RSV1).
"""

import json
import random
import sys

from websockets.extensions import permessage_deflate
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

TIMEOUT = 60

# Frames from the server that arrive with RSV1 set, counted where websockets inflates them.
compressed_frames = 0
_decode = permessage_deflate.PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    global compressed_frames
    if frame.rsv1:
        compressed_frames += 1
    return _decode(self, frame, max_size=max_size)


permessage_deflate.PerMessageDeflate.decode = counting_decode


def corpus(name):
    """Stand-ins for Autobahn's data files, generated (no files to ship), each about 300 KB
    and about as compressible as the original kind."""
    rng = random.Random(name)
    if name == "json":
        items = []
        while sum(map(len, items)) < 300_000:
            items.append(json.dumps({
                "id": rng.randrange(10**9),
                "user": rng.choice(["alice", "bob", "carol", "dave"]) + str(rng.randrange(1000)),
                "price": round(rng.uniform(1, 1000), 2),
                "tags": rng.sample(["red", "green", "blue", "new", "sale", "\u00e9t\u00e9"], 3),
                "ok": rng.random() < 0.5,
            }, ensure_ascii=False))
        return ("[" + ",".join(items) + "]").encode()
    if name == "text":
        words = ("Habe nun, ach! Philosophie, Juristerei und Medizin, und leider auch "
                 "Theologie durchaus studiert, mit heißem Bemühn. Da steh ich nun, ich "
                 "armer Tor! Und bin so klug als wie zuvor").split()
        return " ".join(rng.choice(words) for _ in range(45_000)).encode()
    if name == "html":
        rows = [f"<tr><td class=\"c{rng.randrange(9)}\">{rng.randrange(10**6)}</td>"
                f"<td><a href=\"/item/{rng.randrange(10**5)}\">item</a></td></tr>\n"
                for _ in range(4000)]
        return ("<html><body><table>\n" + "".join(rows) + "</table></body></html>").encode()
    if name == "image":
        # A 24-bit bitmap of gradients with a little noise.
        return bytes((x * 3 + y + rng.randrange(4)) & 0xFF
                     for y in range(300) for x in range(1000))
    if name == "pdf":
        # Text streams between random (already compressed) chunks.
        out = bytearray()
        while len(out) < 300_000:
            out += b"BT /F1 12 Tf 72 712 Td (Hello, PDF) Tj ET\n" * rng.randrange(5, 40)
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(200, 2000)))
        return bytes(out)
    raise ValueError(name)


def message(data, index, size, binary):
    start = (index * 7919) % max(1, len(data) - size)
    chunk = data[start:start + size]
    if binary:
        return chunk
    # Cut at a character boundary: drop a trailing partial code point, pad with ASCII.
    text = chunk.decode("utf-8", errors="ignore")
    text = text + "x" * (size - len(text.encode()))
    return text


def fragments(payload, fragment):
    return [payload[i:i + fragment] for i in range(0, len(payload), fragment)]


def run(url, cookie, origin, case, corpora):
    global compressed_frames
    compressed_frames = 0
    offers = [ClientPerMessageDeflateFactory(**offer) for offer in case["offers"]]
    ws = connect(url, origin=origin, additional_headers={"Cookie": cookie},
                 extensions=offers, compression=None, open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT, ping_interval=None, max_size=None)
    with ws:
        negotiated = None
        for extension in ws.protocol.extensions:
            negotiated = {
                "server_no_context_takeover": extension.remote_no_context_takeover,
                "client_no_context_takeover": extension.local_no_context_takeover,
                "server_max_window_bits": extension.remote_max_window_bits,
                "client_max_window_bits": extension.local_max_window_bits,
            }
        data = corpora.setdefault(case["corpus"], corpus(case["corpus"]))
        same = 0
        for index in range(case["count"]):
            payload = message(data, index, case["size"], case["binary"])
            if case["fragment"]:
                ws.send(fragments(payload, case["fragment"]))
            else:
                ws.send(payload)
            echo = ws.recv(timeout=TIMEOUT)
            if echo == payload:
                same += 1
            else:
                break
        ws.close()
    return {"id": case["id"], "negotiated": negotiated, "same": same,
            "count": case["count"], "compressed_frames": compressed_frames}


def main():
    url, cookie, origin, cases = sys.argv[1:5]
    corpora = {}
    for case in json.loads(cases):
        try:
            result = run(url, cookie, origin, case, corpora)
        except Exception as error:  # reported, so the test names the case
            result = {"id": case["id"], "error": repr(error)}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
