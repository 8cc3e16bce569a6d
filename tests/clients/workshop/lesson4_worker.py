#!/usr/bin/env python3
"""Lesson 4 of the Crossbar real-time workshop ("Dynamic authentication with workers"), the
router side, with autobahn-python (asyncio): `lesson4_worker.py URL REALM [lesson5]`.

The lesson's PHP worker `authenticator.php` (there Thruway), logged in with WAMP-CRA as the
static user "authenticator", registers:
- `workshop.auth` (realm, authid, details): `token_from_user` - alice and bob are known to
  the worker, anyone else is asked of the application over HTTP (`GET /auth?name=`); an
  unknown user gets the `blocked` role with an empty secret, as the lesson returns;
- `workshop.permissions` (details, uri, action, options): publish and subscribe on
  `workshop.chat*` only, cached, the publisher disclosed. With `lesson5`, as lesson 5's
  "Permissions via API calls" replaces it: no call or register; publish and subscribe on
  `workshop.chat.THREAD` when the application says the user may (`GET /access?thread=&user=`).

It also runs the lesson's app (`lesson-4/app`, there Slim): `POST /user {"name"}` creates a
user and answers its password and token, `POST /login {"name", "password"}` answers the token
(the page's `login(user, password)`), `GET /auth?name=` the token the authenticator asks for,
`GET /log` what the worker was asked (for the test); lesson 5's second app adds
`POST /thread {"name", "title"}` (the user may use the thread) and `GET /access`.

Prints `{"app": URL}` once both procedures are registered, then serves until killed.
"""

import asyncio
import json
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import workshop_common

AUTHENTICATOR = ("authenticator", "authenticator-kZ%3g@JR1oXb")

USERS = {}  # the app's users: name -> {"password", "token"}
THREADS = set()  # (user, thread) the app allows
LOG = {"auth": [], "permissions": []}


class App(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/auth":
            name = urllib.parse.parse_qs(url.query).get("name", [""])[0]
            self.answer(200, USERS.get(name, {}).get("token", ""))
        elif url.path == "/log":
            self.answer(200, LOG)
        elif url.path == "/access":
            query = urllib.parse.parse_qs(url.query)
            asked = (query.get("user", [""])[0], query.get("thread", [""])[0])
            self.answer(200 if asked in THREADS else 404, "")
        else:
            self.answer(404, "")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/user" and body.get("name") not in USERS:
            USERS[body["name"]] = {
                "password": secrets.token_urlsafe(12),
                "token": secrets.token_urlsafe(24),
            }
            self.answer(200, {"name": body["name"], **USERS[body["name"]]})
        elif self.path == "/thread" and body.get("name") in USERS:
            THREADS.add((body["name"], body["title"]))
            self.answer(200, {"thread": body["title"]})
        elif self.path == "/login" and USERS.get(body.get("name"), {}).get("password") == body.get(
            "password"
        ):
            self.answer(200, {"token": USERS[body["name"]]["token"]})
        else:
            self.answer(403, "")


def token_from_user(app, name):
    if name == "alice":
        return "changeme", "basic-user"
    if name == "bob":
        return "password123", "permissions-user"
    url = f"{app}/auth?" + urllib.parse.urlencode({"name": name})
    with urllib.request.urlopen(url, timeout=workshop_common.STEP) as response:
        token = response.read().decode().strip()
    if token:
        return token, "app-user"
    raise LookupError(f"No user found with name '{name}'")


def thread_access(app, user, uri):
    """Lesson 5: may `user` use the thread of `uri`? Asks the application."""
    thread = uri.replace("workshop.chat.", "", 1)
    if not thread or thread == uri:
        return False
    url = f"{app}/access?" + urllib.parse.urlencode({"thread": thread, "user": user})
    try:
        with urllib.request.urlopen(url, timeout=workshop_common.STEP):
            return True
    except urllib.error.HTTPError:
        return False


async def main(url, realm, lesson="lesson4"):
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = f"http://127.0.0.1:{server.server_port}"
    session = await workshop_common.connect(url, realm, *AUTHENTICATOR)
    loop = asyncio.get_running_loop()

    async def authenticate(realm, authid, details):
        LOG["auth"].append(
            {
                "realm": realm,
                "authid": authid,
                "authmethod": details.get("authmethod"),
                "session_is_int": isinstance(details.get("session"), int),
            }
        )
        try:
            # The HTTP call is blocking: off the event loop.
            token, role = await loop.run_in_executor(None, token_from_user, app, authid)
        except LookupError:
            return {"role": "blocked", "secret": "", "disclose": True}
        return {"role": role, "secret": token}

    async def permissions(details, uri, action, options=None):
        LOG["permissions"].append(
            {
                "authid": details["authid"],
                "authrole": details["authrole"],
                "uri": uri,
                "action": action,
            }
        )
        if lesson == "lesson5":
            if action in ("call", "register"):
                return False
            allowed = await loop.run_in_executor(
                None, thread_access, app, details["authid"], uri
            )
            return {"allow": True, "disclose": True, "cache": True} if allowed else False
        if action == "publish" and uri.startswith("workshop.chat"):
            return {"allow": True, "disclose": True, "cache": True}
        if action == "subscribe" and uri.startswith("workshop.chat"):
            return {"allow": True, "cache": True}
        return False

    await session.register(authenticate, "workshop.auth")
    await session.register(permissions, "workshop.permissions")
    print(json.dumps({"app": app}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
