"""Publishes and calls through wson's control socket: WAMP messages as JSON in V frames.

Usage: python3 py_wamp_control.py CONTROL_SOCKET_PATH   (prints the call's result)
"""
import json, socket, sys

control = socket.socket(socket.AF_UNIX)
control.connect(sys.argv[1])
stream = control.makefile("rb")

def send(message):
    data = json.dumps(message).encode()
    control.sendall(b"%dV%s" % (len(data), data))

def read():
    """The next V frame's WAMP message (other frames are skipped)."""
    while True:
        length = b""
        while (byte := stream.read(1)).isdigit():
            length += byte
        payload = stream.read(int(length))
        if byte == b"V":
            return json.loads(payload)

send([16, 1, {}, "news.sport", ["from python"]])              # PUBLISH
send([48, 2, {}, "com.example.add", [2, 3]])                   # CALL
result = read()                                                 # RESULT: [50, 2, {}, [5]]
print(result[3][0])
