#!/usr/bin/env python3
"""An autobahn-python (asyncio) login without wson cookies: `py_auth.py URL REALM AUTHMETHOD
AUTHID SECRET`, AUTHMETHOD "ticket", "wampcra" (salted or not: autobahn's own `derive_key`
and `compute_wcs` answer the CHALLENGE) or "cryptosign" (SECRET the hex Ed25519 private key:
autobahn's `CryptosignKey` announces its public key and signs the challenge; an empty AUTHID
sends none). Once joined it subscribes to TOPIC_OK
and TOPIC_DENIED (the second must be refused by the session's role). Prints one JSON
document: {"welcome": {authid, authrole, authmethod, authprovider}, "subscribed": bool,
"denied": ERROR URI or null} or {"abort": reason}.

Every wait is bounded by STEP seconds.
"""

import asyncio
import json
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.wamp import auth  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import JsonSerializer  # noqa: E402

from wamp_common import STEP, connect  # noqa: E402

TOPIC_OK = "com.example.news"
TOPIC_DENIED = "org.other"


async def main(url, realm, method, authid, secret):
    done = asyncio.get_running_loop().create_future()
    authextra = None
    if method == "cryptosign":
        from autobahn.wamp.cryptosign import CryptosignKey

        private_key = CryptosignKey.from_bytes(bytes.fromhex(secret))
        authextra = {"pubkey": private_key.public_key()}

    class Session(ApplicationSession):
        def onConnect(self):
            self.join(realm, authmethods=[method], authid=authid or None, authextra=authextra)

        def onChallenge(self, challenge):
            if challenge.method == "ticket":
                return secret
            if challenge.method == "cryptosign":
                return private_key.sign_challenge(challenge)
            key = secret
            if "salt" in challenge.extra:
                key = auth.derive_key(
                    secret,
                    challenge.extra["salt"],
                    challenge.extra["iterations"],
                    challenge.extra["keylen"],
                )
            return auth.compute_wcs(key, challenge.extra["challenge"]).decode("ascii")

        async def onJoin(self, details):
            report = {
                "welcome": {
                    "authid": details.authid,
                    "authrole": details.authrole,
                    "authmethod": details.authmethod,
                    "authprovider": details.authprovider,
                },
                "subscribed": False,
                "denied": None,
            }
            await self.subscribe(lambda *args: None, TOPIC_OK)
            report["subscribed"] = True
            try:
                await self.subscribe(lambda *args: None, TOPIC_DENIED)
            except ApplicationError as e:
                report["denied"] = e.error
            if not done.done():
                done.set_result(report)
            self.leave()

        def onLeave(self, details):
            if not done.done():
                done.set_result({"abort": details.reason})
            self.disconnect()

        def onDisconnect(self):
            if not done.done():
                done.set_result({"abort": "disconnected"})

    await connect(Session, url, realm, JsonSerializer())
    print(json.dumps(await asyncio.wait_for(done, STEP)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
