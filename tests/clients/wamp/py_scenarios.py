#!/usr/bin/env python3
"""WAMP scenarios with autobahn-python (asyncio), and raw JSON WAMP where autobahn hides what
a router does. Run as `py_scenarios.py URL REALM SCENARIO COOKIES_JSON`: COOKIES_JSON is a JSON
list of Cookie headers, one per session label A, B, C... (the wson auth cookies of users
alice, bob, carol...; a router without cookie auth ignores them). Prints one JSON document,
{"scenario": NAME, "observed": {...}}, that tests/wamp_parity.rs compares between Crossbar.io
and wson. Each scenario uses topics and procedures under "com.<scenario>." in its own realm.

Determinism: a session's events come in the order the router sent them; a scenario that must
show that an event did NOT arrive publishes a "done" marker after it and reads up to the
marker (one publisher, one subscriber: the router keeps their order).
"""

import asyncio
import inspect
import sys

from autobahn.wamp.exception import ApplicationError

from wamp_common import STEP, attempt, error, plain, result_of, run

# --- Publish & subscribe ------------------------------------------------------------------------


async def pubsub_exact(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    await a.subscribe("com.pubsub_exact.topic", tag="exact")
    await b.publish("com.pubsub_exact.other", "not for A")
    await b.publish("com.pubsub_exact.topic", 1, "two", {"three": 3}, key="value",
                    options={"acknowledge": True})
    await b.publish("com.pubsub_exact.topic", options={"acknowledge": True})
    await b.publish("com.pubsub_exact.topic", kw_only=True, options={"acknowledge": True})
    await b.publish("com.pubsub_exact.topic", "done")
    ctx.note("events", await a.until("done"))


async def pubsub_prefix(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    await a.subscribe("com.pubsub_prefix.a", tag="prefix", match="prefix")
    for topic in ["com.pubsub_prefix.a", "com.pubsub_prefix.a.b", "com.pubsub_prefix.a.b.c",
                  "com.pubsub_prefix.ab", "com.pubsub_prefix.b", "com.pubsub_prefix"]:
        await b.publish(topic, topic, options={"acknowledge": True})
    await b.publish("com.pubsub_prefix.a.x", "done")
    ctx.note("events", await a.until("done"))


async def pubsub_wildcard(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    await a.subscribe("com.pubsub_wildcard..topic", tag="wild", match="wildcard")
    await a.subscribe("com.pubsub_wildcard.done", tag="done")
    for topic in ["com.pubsub_wildcard.x.topic", "com.pubsub_wildcard.y.topic",
                  "com.pubsub_wildcard.x.y.topic", "com.pubsub_wildcard.x.other",
                  "com.pubsub_wildcard.topic", "com.pubsub_wildcard.x.topic.z"]:
        await b.publish(topic, topic, options={"acknowledge": True})
    await b.publish("com.pubsub_wildcard.done", "done")
    ctx.note("events", await a.until("done"))


async def pubsub_overlap(ctx):
    """One session subscribed three ways to matching patterns gets one event per match."""
    a = await ctx.join("A")
    b = await ctx.join("B")
    await a.subscribe("com.pubsub_overlap.x.y", tag="exact")
    await a.subscribe("com.pubsub_overlap.x", tag="prefix", match="prefix")
    await a.subscribe("com.pubsub_overlap..y", tag="wildcard", match="wildcard")
    await b.publish("com.pubsub_overlap.x.y", "hit", options={"acknowledge": True})
    got = await a.events(3)
    ctx.note("events", sorted(got, key=lambda e: e.get("sub", "")))
    await b.publish("com.pubsub_overlap.x.y", "done")
    ctx.note("then", [e for e in await a.until("done") if e.get("sub") != "exact"])


async def subscribe_twice(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    first = await a.subscribe("com.subscribe_twice.t", tag="one")
    second = await a.subscribe("com.subscribe_twice.t", tag="two")
    ctx.note("same_id", first.id == second.id)
    other = await a.subscribe("com.subscribe_twice.t", tag="prefix", match="prefix")
    ctx.note("prefix_same_id", other.id == first.id)
    await b.publish("com.subscribe_twice.t", "once", options={"acknowledge": True})
    # autobahn hands one EVENT to both handlers of the subscription; the prefix
    # subscription is another one, with its own EVENT.
    ctx.note("events", sorted(await a.events(3), key=lambda e: e["sub"]))
    await b.publish("com.subscribe_twice.t", "done")
    ctx.note("no_more", [e for e in await a.until("done") if e["sub"] == "prefix"])


async def unsubscribe(ctx):
    b = await ctx.join("B")
    raw = await ctx.raw("A")
    request = raw.next_request()
    await raw.send([32, request, {}, "com.unsubscribe.t"])
    subscribed = await raw.recv()
    ctx.note("subscribed", [subscribed[0], subscribed[1] == request])
    sub_id = subscribed[2]
    await b.publish("com.unsubscribe.t", "before", options={"acknowledge": True})
    event = await raw.recv()
    ctx.note("event", [event[0], event[1] == sub_id, event[4:]])
    await raw.send([34, raw.next_request(), sub_id])
    ctx.note("unsubscribed", (await raw.recv())[:1])
    await b.publish("com.unsubscribe.t", "after", options={"acknowledge": True})
    await raw.send([34, 77, sub_id])
    ctx.note("again", await raw.recv())
    await raw.send([34, 78, 123456789])
    ctx.note("unknown", await raw.recv())
    await raw.close()


async def publish_ack(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    await a.subscribe("com.publish_ack.t", tag="t")
    raw = await ctx.raw("C")
    # Unacknowledged: no reply at all; acknowledged: PUBLISHED with the publication id the
    # subscriber's EVENT carries. The raw publisher reads nothing for the first one.
    await raw.send([16, 10, {}, "com.publish_ack.t", ["quiet"]])
    await raw.send([16, 11, {"acknowledge": True}, "com.publish_ack.t", ["loud"]])
    published = await raw.recv()
    ctx.note("published", [published[0], published[1], isinstance(published[2], int)])
    ctx.note("events", await a.events(2))
    publication = await b.publish("com.publish_ack.t", "from b", options={"acknowledge": True})
    ctx.note("ids_differ", publication.id != published[2])
    ctx.note("last", await a.events(1))
    await raw.close()


async def exclude_me(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    for client in (a, b):
        await client.subscribe("com.exclude_me.t", tag="t")
    await a.publish("com.exclude_me.t", "default", options={"acknowledge": True})
    await a.publish("com.exclude_me.t", "excluded", options={"acknowledge": True,
                                                               "exclude_me": True})
    await a.publish("com.exclude_me.t", "included", options={"acknowledge": True,
                                                               "exclude_me": False})
    await a.publish("com.exclude_me.t", "done", options={"acknowledge": True,
                                                           "exclude_me": False})
    ctx.note("A", await a.until("done"))
    ctx.note("B", await b.until("done"))


async def _filtered(ctx, cases):
    """A publishes each case's options to B, C and D (all subscribed); each subscriber then
    reports what it got before the "done" marker."""
    a = await ctx.join("A")
    subscribers = [await ctx.join(label) for label in "BCD"]
    for client in subscribers:
        await client.subscribe(f"com.{ctx.realm}.t", tag="t")
    who = {c.label: c for c in subscribers}
    who["A"] = a
    for name, options in cases(who):
        await a.publish(f"com.{ctx.realm}.t", name,
                        options=dict(options, acknowledge=True, exclude_me=False))
    await a.publish(f"com.{ctx.realm}.t", "done", options={"acknowledge": True})
    for client in subscribers:
        got = await client.until("done")
        ctx.note(client.label, [e["args"][0] for e in got])


async def exclude_eligible_session(ctx):
    await _filtered(ctx, lambda who: [
        ("exclude B", {"exclude": [who["B"].id]}),
        ("exclude B C", {"exclude": [who["B"].id, who["C"].id]}),
        ("eligible B", {"eligible": [who["B"].id]}),
        ("eligible B C exclude C", {"eligible": [who["B"].id, who["C"].id],
                                    "exclude": [who["C"].id]}),
        ("eligible unknown", {"eligible": [1234567]}),
        ("exclude unknown", {"exclude": [1234567]}),
    ])


async def exclude_eligible_authid(ctx):
    await _filtered(ctx, lambda who: [
        ("exclude_authid B", {"exclude_authid": [who["B"].authid]}),
        ("eligible_authid C", {"eligible_authid": [who["C"].authid]}),
        ("eligible_authid B C exclude_authid B", {
            "eligible_authid": [who["B"].authid, who["C"].authid],
            "exclude_authid": [who["B"].authid]}),
        ("eligible_authid nobody", {"eligible_authid": ["nobody-at-all"]}),
        ("eligible B exclude_authid B", {"eligible": [who["B"].id, who["C"].id],
                                         "exclude_authid": [who["B"].authid]}),
    ])


async def exclude_eligible_authrole(ctx):
    await _filtered(ctx, lambda who: [
        ("eligible_authrole own", {"eligible_authrole": [who["A"].details.authrole]}),
        ("eligible_authrole other", {"eligible_authrole": ["no-such-role"]}),
        ("exclude_authrole own", {"exclude_authrole": [who["A"].details.authrole]}),
        ("exclude_authrole other", {"exclude_authrole": ["no-such-role"]}),
    ])


async def disclose_me(ctx):
    """PUBLISH and CALL with disclose_me: the subscriber's EVENT and the callee's INVOCATION
    carry the publisher's / caller's session, authid and authrole."""
    a = await ctx.join("A")
    await a.subscribe("com.disclose_me.t", tag="t")
    seen = []

    def endpoint(*args, details=None):
        seen.append({"caller": ctx.ids.session(details.caller),
                     "caller_authid": ctx.ids.authid(details.caller_authid),
                     "caller_authrole": details.caller_authrole})
        return "ok"

    await a.register(endpoint, "com.disclose_me.p")
    raw = await ctx.raw("B")
    await raw.send([16, 1, {"acknowledge": True, "disclose_me": True}, "com.disclose_me.t",
                    ["disclosed"]])
    ctx.note("published", (await raw.recv())[:2])
    ctx.note("event", await a.events(1))
    await raw.send([48, 2, {"disclose_me": True}, "com.disclose_me.p", []])
    ctx.note("result", await raw.recv())
    ctx.note("invocation", seen)
    await raw.close()


async def retained(ctx):
    b = await ctx.join("B")
    await b.publish("com.retained.t", "first", options={"acknowledge": True, "retain": True})
    await b.publish("com.retained.t", "second", options={"acknowledge": True, "retain": True})
    await b.publish("com.retained.t", "not kept", options={"acknowledge": True})
    await b.publish("com.retained.u", "other topic", options={"acknowledge": True,
                                                                "retain": True})
    a = await ctx.join("A")
    await a.subscribe("com.retained.t", tag="get", get_retained=True)
    ctx.note("on_subscribe", await a.events(1))
    c = await ctx.join("C")
    await c.subscribe("com.retained.t", tag="plain")
    await b.publish("com.retained.t", "done", options={"acknowledge": True})
    ctx.note("without_get_retained", await c.until("done"))
    ctx.note("A_then", await a.until("done"))
    d = await ctx.join("D")
    await d.subscribe("com.retained", tag="prefix", match="prefix", get_retained=True)
    await b.publish("com.retained.t", "done", options={"acknowledge": True})
    got = await d.until("done")
    ctx.note("prefix", sorted(got, key=lambda e: str(e.get("args"))))


# --- Remote procedure calls ---------------------------------------------------------------------


def _echo(label):
    def endpoint(*args, details=None, **kwargs):
        out = {"callee": label, "args": list(args)}
        if kwargs:
            out["kwargs"] = kwargs
        if details.procedure is not None:
            out["procedure"] = details.procedure
        return out
    return endpoint


async def rpc_exact(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")

    def add(x, y, details=None):
        return x + y

    def both(*args, details=None, **kwargs):
        from autobahn.wamp.types import CallResult
        return CallResult(*reversed(args), **{k.upper(): v for k, v in kwargs.items()})

    await a.register(add, "com.rpc_exact.add")
    await a.register(both, "com.rpc_exact.both")
    await a.register(_echo("A"), "com.rpc_exact.echo")
    ctx.note("add", await attempt(b.call("com.rpc_exact.add", 2, 3), result_of))
    ctx.note("both", await attempt(b.call("com.rpc_exact.both", 1, 2, 3, x=1, y="z"),
                                   result_of))
    ctx.note("echo", await attempt(b.call("com.rpc_exact.echo", "hi", n=1), result_of))
    ctx.note("no_args", await attempt(b.call("com.rpc_exact.echo"), result_of))
    ctx.note("self_call", await attempt(a.call("com.rpc_exact.add", 40, 2), result_of))


async def rpc_prefix(ctx):
    a = await ctx.join("A")
    c = await ctx.join("C")
    b = await ctx.join("B")
    await a.register(_echo("A prefix"), "com.rpc_prefix.calc", match="prefix")
    await c.register(_echo("C exact"), "com.rpc_prefix.calc.mul")
    await c.register(_echo("C longer prefix"), "com.rpc_prefix.calc.deep", match="prefix")
    for procedure in ["com.rpc_prefix.calc", "com.rpc_prefix.calc.add", "com.rpc_prefix.calc.mul",
                      "com.rpc_prefix.calc.deep.x", "com.rpc_prefix.calcx",
                      "com.rpc_prefix.other"]:
        ctx.note(procedure, await attempt(b.call(procedure, 1), result_of))


async def rpc_wildcard(ctx):
    a = await ctx.join("A")
    c = await ctx.join("C")
    b = await ctx.join("B")
    await a.register(_echo("A wildcard"), "com.rpc_wildcard..get", match="wildcard")
    await c.register(_echo("C prefix"), "com.rpc_wildcard.user", match="prefix")
    await c.register(_echo("C exact"), "com.rpc_wildcard.item.get")
    for procedure in ["com.rpc_wildcard.item.get", "com.rpc_wildcard.thing.get",
                      "com.rpc_wildcard.user.get", "com.rpc_wildcard.x.y.get",
                      "com.rpc_wildcard.thing.put"]:
        ctx.note(procedure, await attempt(b.call(procedure), result_of))


async def invoke_single(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    await a.register(_echo("A"), "com.invoke_single.p")
    ctx.note("second_register", await attempt(b.register(_echo("B"), "com.invoke_single.p")))
    ctx.note("shared_register", await attempt(
        b.register(_echo("B"), "com.invoke_single.p", invoke="roundrobin")))
    ctx.note("same_session_again", await attempt(a.register(_echo("A2"), "com.invoke_single.p")))
    ctx.note("prefix_same_uri", await attempt(
        b.register(_echo("B prefix"), "com.invoke_single.p", match="prefix"), lambda r: "ok"))
    ctx.note("call", await attempt(b.call("com.invoke_single.p", 1), result_of))


async def _shared(ctx, policy, calls):
    callees = [await ctx.join(label) for label in "ACD"]
    b = await ctx.join("B")
    for callee in callees:
        await callee.register(_echo(callee.label), f"com.{ctx.realm}.p", invoke=policy)
    got = []
    for n in range(calls):
        result = await attempt(b.call(f"com.{ctx.realm}.p", n), result_of)
        got.append(result.get("ok", {}).get("callee", result) if "ok" in result else result)
    return callees, b, got


async def invoke_roundrobin(ctx):
    callees, b, got = await _shared(ctx, "roundrobin", 7)
    ctx.note("callees", got)
    await callees[1].leave()
    ctx.note("after_C_left", [(await attempt(b.call("com.invoke_roundrobin.p"), result_of))
                              ["ok"]["callee"] for _ in range(4)])
    ctx.note("other_policy", await attempt(
        b.register(_echo("B"), "com.invoke_roundrobin.p", invoke="first")))


async def invoke_random(ctx):
    callees, b, got = await _shared(ctx, "random", 30)
    # Which callee is random; that every call reached one of them is not.
    ctx.note("all_answered_by_a_callee", all(g in ("A", "C", "D") for g in got))
    ctx.note("more_than_one_callee", len(set(got)) > 1)


async def invoke_first(ctx):
    callees, b, got = await _shared(ctx, "first", 3)
    ctx.note("callees", got)
    await callees[0].leave()
    ctx.note("after_A_left", (await attempt(b.call("com.invoke_first.p"), result_of))
             ["ok"]["callee"])


async def invoke_last(ctx):
    callees, b, got = await _shared(ctx, "last", 3)
    ctx.note("callees", got)
    await callees[2].leave()
    ctx.note("after_D_left", (await attempt(b.call("com.invoke_last.p"), result_of))
             ["ok"]["callee"])


PAYLOAD_ARGS = [
    None, True, False, 0, -1, 2**31, 2**53 - 1, -(2**53) + 1, 2**53, 2**63 - 1, -(2**63),
    1.5, -0.25, 1e300, "", "ascii", "unicode \u00e9\u4e2d\U0001f600", [], {},
    [1, [2, [3, [4, {"five": [6]}]]]],
    {"nested": {"list": [1, "two", 3.0, None], "empty": {}}},
]
PAYLOAD_KWARGS = {"\u00fcnicode key": "v", "n": 18446744073709551615, "f": 0.1,
                  "deep": {"a": {"b": {"c": [True]}}}}


async def _passthrough(ctx, callee_serializer, caller_serializer, binary):
    a = await ctx.join("A", callee_serializer)
    b = await ctx.join("B", caller_serializer)
    seen = []

    def endpoint(*args, details=None, **kwargs):
        seen.append({"args": plain(list(args)), "kwargs": plain(kwargs)})
        from autobahn.wamp.types import CallResult
        return CallResult(*args, **kwargs)

    await a.register(endpoint, "com.passthrough.p")
    await a.subscribe("com.passthrough.t", tag="t")
    args = list(PAYLOAD_ARGS)
    kwargs = dict(PAYLOAD_KWARGS)
    if binary:
        args += [b"\x00\x01\xfe\xff", b""]
        kwargs["bin"] = b"\x80binary"
    ctx.note("result", await attempt(b.call("com.passthrough.p", *args, **kwargs), result_of))
    ctx.note("invocation", seen)
    await b.publish("com.passthrough.t", *args, options={"acknowledge": True}, **kwargs)
    ctx.note("event", await a.events(1))


async def passthrough_json(ctx):
    await _passthrough(ctx, "json", "json", False)


async def passthrough_msgpack(ctx):
    await _passthrough(ctx, "msgpack", "msgpack", True)


async def passthrough_cbor(ctx):
    await _passthrough(ctx, "cbor", "cbor", True)


async def passthrough_mixed(ctx):
    """Caller and callee on different serializers: the router converts, binary included
    (WAMP: binary in JSON is a string "\\0" + base64)."""
    await _passthrough(ctx, "msgpack", "json", True)


async def passthrough_mixed_cbor(ctx):
    await _passthrough(ctx, "json", "cbor", True)


async def no_such_procedure(ctx):
    b = await ctx.join("B")
    ctx.note("unknown", await attempt(b.call("com.no_such_procedure.nothing", 1)))
    a = await ctx.join("A")
    registration = await a.register(_echo("A"), "com.no_such_procedure.gone")
    ctx.note("registered", await attempt(b.call("com.no_such_procedure.gone"), result_of))
    await registration.unregister()
    ctx.note("after_unregister", await attempt(b.call("com.no_such_procedure.gone")))
    raw = await ctx.raw("C")
    await raw.send([66, 5, 987654321])
    ctx.note("unregister_unknown", await raw.recv())
    await raw.close()


async def application_error(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")

    def fails(kind, details=None):
        if kind == "plain":
            raise ApplicationError("com.application_error.oops")
        if kind == "args":
            raise ApplicationError("com.application_error.oops", 1, "two", {"3": [4]},
                                   reason="because", n=5)
        if kind == "unicode":
            raise ApplicationError("com.application_error.\u00e9", "\u4e2d")
        raise ValueError("plain python exception")

    await a.register(fails, "com.application_error.p")
    for kind in ("plain", "args", "unicode"):
        ctx.note(kind, await attempt(b.call("com.application_error.p", kind)))
    runtime = await attempt(b.call("com.application_error.p", "python"))
    ctx.note("python_exception_uri", runtime.get("error"))
    raw = await ctx.raw("C")
    await raw.send([48, 1, {}, "com.application_error.p", ["args"]])
    ctx.note("raw", await raw.recv())
    await raw.close()


async def progressive(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")

    async def counter(n, details=None):
        for i in range(n):
            if details.progress:
                details.progress(i, step=f"s{i}")
            await asyncio.sleep(0)
        return "final"

    await a.register(counter, "com.progressive.p")
    progress = []
    result = await attempt(b.call("com.progressive.p", 3, options={
        "on_progress": lambda *args, **kwargs: progress.append(
            {"args": list(args), "kwargs": kwargs})}), result_of)
    ctx.note("progress", progress)
    ctx.note("result", result)
    # Without receive_progress the callee's progress calls are not offered: the raw caller
    # sees only the final RESULT.
    raw = await ctx.raw("C")
    await raw.send([48, 1, {}, "com.progressive.p", [2]])
    ctx.note("raw_without_progress", await raw.recv())
    await raw.send([48, 2, {"receive_progress": True}, "com.progressive.p", [2]])
    ctx.note("raw_with_progress", [await raw.recv() for _ in range(3)])
    await raw.close()


async def call_timeout(ctx):
    """CALL with a timeout option the router enforces: the caller gets wamp.error.canceled,
    the callee an INTERRUPT."""
    raw_callee = await ctx.raw("A")
    await raw_callee.send([64, 1, {}, "com.call_timeout.slow"])
    ctx.note("registered", (await raw_callee.recv())[:2])
    caller = await ctx.raw("B")
    # WAMP: CALL.Options.timeout is in milliseconds. Crossbar reads it as seconds; 1 is short
    # either way.
    await caller.send([48, 1, {"timeout": 1}, "com.call_timeout.slow", [1]])
    invocation = await raw_callee.recv()
    ctx.note("invocation", [invocation[0], invocation[4:]])
    interrupt = await raw_callee.recv()
    ctx.note("interrupt", [interrupt[0], interrupt[1] == invocation[1], interrupt[2:]])
    ctx.note("caller", await caller.recv())
    # The callee answers late: the router drops it; the callee still serves.
    await raw_callee.send([70, invocation[1], {}, ["late"]])
    await caller.send([48, 2, {}, "com.call_timeout.slow", [2]])
    invocation = await raw_callee.recv()
    await raw_callee.send([70, invocation[1], {}, ["on time"]])
    ctx.note("next_call", await caller.recv())
    await raw_callee.close()
    await caller.close()


async def _cancel(ctx, mode):
    raw_callee = await ctx.raw("A")
    await raw_callee.send([64, 1, {}, f"com.{ctx.realm}.p"])
    await raw_callee.recv()
    caller = await ctx.raw("B")
    await caller.send([48, 7, {}, f"com.{ctx.realm}.p", [1]])
    invocation = await raw_callee.recv()
    ctx.note("invocation", [invocation[0], invocation[4:]])
    await caller.send([49, 7, {"mode": mode}])
    if mode == "skip":
        # Skip: the callee is not told; its late answer is dropped. What the caller gets is
        # read below, up to the next call's RESULT.
        await raw_callee.send([70, invocation[1], {}, ["late"]])
    elif mode == "kill":
        interrupt = await raw_callee.recv()
        ctx.note("interrupt", [interrupt[0], interrupt[1] == invocation[1], interrupt[2:]])
        # Kill: the caller waits for the callee's answer to the interrupt (an error of its
        # own here, to show whose ERROR the caller gets).
        await raw_callee.send([8, 68, invocation[1], {}, "com.cancel_kill.stopped",
                               ["callee stopped"], {"at": 1}])
        ctx.note("caller", await caller.recv())
    else:
        ctx.note("caller", await caller.recv())
        interrupt = await raw_callee.recv()
        ctx.note("interrupt", [interrupt[0], interrupt[1] == invocation[1], interrupt[2:]])
        await raw_callee.send([8, 68, invocation[1], {}, "wamp.error.canceled"])
    # Either way the callee keeps serving, and the caller can call again.
    await caller.send([48, 8, {}, f"com.{ctx.realm}.p", [2]])
    invocation = await raw_callee.recv()
    ctx.note("next_invocation", [invocation[0], invocation[4:]])
    await raw_callee.send([70, invocation[1], {}, ["fine"]])
    got = []
    while len(got) < 4:
        message = await caller.recv()
        got.append(message)
        if message[:2] == [50, 8] or message[0] in ("timeout", "closed"):
            break
    ctx.note("caller_then" if mode == "skip" else "next_result", got)
    await raw_callee.close()
    await caller.close()


async def cancel_skip(ctx):
    await _cancel(ctx, "skip")


async def cancel_kill(ctx):
    await _cancel(ctx, "kill")


async def cancel_killnowait(ctx):
    await _cancel(ctx, "killnowait")


async def callee_leaves(ctx):
    raw_callee = await ctx.raw("A")
    await raw_callee.send([64, 1, {}, "com.callee_leaves.p"])
    await raw_callee.recv()
    b = await ctx.join("B")
    call = asyncio.ensure_future(attempt(b.call("com.callee_leaves.p")))
    invocation = await raw_callee.recv()
    ctx.note("invocation", invocation[0])
    await raw_callee.send([6, {}, "wamp.close.normal"])
    ctx.note("goodbye", await raw_callee.recv())
    ctx.note("caller", await call)
    ctx.note("after", await attempt(b.call("com.callee_leaves.p")))
    # The same when the callee's connection just drops.
    raw_callee = await ctx.raw("C")
    await raw_callee.send([64, 1, {}, "com.callee_leaves.p"])
    await raw_callee.recv()
    call = asyncio.ensure_future(attempt(b.call("com.callee_leaves.p")))
    await raw_callee.recv()
    raw_callee.ws.transport.abort()
    ctx.note("caller_after_drop", await call)


async def caller_leaves(ctx):
    raw_callee = await ctx.raw("A")
    await raw_callee.send([64, 1, {}, "com.caller_leaves.p"])
    await raw_callee.recv()
    caller = await ctx.raw("B")
    await caller.send([48, 1, {}, "com.caller_leaves.p", ["first"]])
    invocation = await raw_callee.recv()
    ctx.note("invocation", [invocation[0], invocation[4:]])
    await caller.send([6, {}, "wamp.close.normal"])
    ctx.note("goodbye", await caller.recv())
    # Crossbar tells the callee with an INTERRUPT (its mode: killnowait).
    told = await raw_callee.recv()
    ctx.note("callee_told", [told[0], told[1] == invocation[1]] + told[2:]
             if told[0] == 69 else told)
    await raw_callee.send([70, invocation[1], {}, ["late"]])
    c = await ctx.join("C")
    call = asyncio.ensure_future(attempt(c.call("com.caller_leaves.p", "second"), result_of))
    next_message = await raw_callee.recv()
    ctx.note("callee_next", [next_message[0], next_message[4:] if next_message[0] == 68 else
                             next_message])
    if next_message[0] == 68:
        await raw_callee.send([70, next_message[1], {}, ["served"]])
    ctx.note("second_caller", await call)
    await raw_callee.close()
    # An autobahn-python callee answers the INTERRUPT with ERROR wamp.error.canceled (its
    # handler is cancelled); it too must survive and serve the next caller.
    d = await ctx.join("D")
    started = asyncio.get_running_loop().create_future()

    async def slow(n, details=None):
        if n == "wait":
            started.set_result(True)
            try:
                await asyncio.sleep(STEP * 2)
            except asyncio.CancelledError:
                interrupted.append(True)
                raise
        return f"served {n}"

    interrupted = []
    await d.register(slow, "com.caller_leaves.q")
    caller = await ctx.raw("B")
    await caller.send([48, 1, {}, "com.caller_leaves.q", ["wait"]])
    await asyncio.wait_for(started, STEP)
    await caller.send([6, {}, "wamp.close.normal"])
    ctx.note("goodbye_again", await caller.recv())
    ctx.note("autobahn_callee_interrupted", await _eventually(lambda: bool(interrupted)))
    ctx.note("autobahn_callee_then", await attempt(c.call("com.caller_leaves.q", "next")))
    ctx.note("autobahn_callee_attached", d.session.is_attached())


async def _eventually(condition):
    """Whether `condition()` becomes true within STEP (checked on each loop turn)."""
    deadline = asyncio.get_running_loop().time() + STEP
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# --- Meta API -----------------------------------------------------------------------------------


def _session_details(ctx, details):
    if not isinstance(details, dict):
        return details
    return {
        "session": ctx.ids.session(details.get("session")),
        "authid": ctx.ids.authid(details.get("authid")),
        "authrole": details.get("authrole"),
    }


async def meta_session(ctx):
    a = await ctx.join("A")
    b = await ctx.join("B")
    c = await ctx.join("C")
    ctx.note("count", await attempt(a.call("wamp.session.count")))
    ctx.note("count_by_role", await attempt(a.call("wamp.session.count", [a.details.authrole])))
    ctx.note("count_other_role", await attempt(a.call("wamp.session.count", ["no-such-role"])))
    ctx.note("list", await attempt(a.call("wamp.session.list"),
                                   lambda ids: sorted(ctx.ids.session(i) for i in ids)))
    ctx.note("get", await attempt(a.call("wamp.session.get", b.id),
                                  lambda d: _session_details(ctx, d)))
    ctx.note("get_unknown", await attempt(a.call("wamp.session.get", 424242)))
    await a.subscribe("wamp.session.on_leave", tag="on_leave")
    ctx.note("kill", await attempt(a.call("wamp.session.kill", b.id,
                                          reason="com.meta_session.kicked", message="bye")))
    left = await asyncio.wait_for(asyncio.shield(b.left), STEP)
    ctx.note("killed_saw", {"reason": left.reason, "message": left.message})
    ctx.note("on_leave", _on_leave(ctx, await a.events(1)))
    ctx.note("kill_unknown", await attempt(a.call("wamp.session.kill", 424242)))
    ctx.note("count_after", await attempt(c.call("wamp.session.count")))
    # The WAMP spec: "the caller's own session ID ... will result in wamp.error.no_such_session".
    call = asyncio.ensure_future(attempt(c.call("wamp.session.kill", c.id)))
    done, _ = await asyncio.wait([call, c.left], timeout=STEP,
                                 return_when=asyncio.FIRST_COMPLETED)
    if c.left in done:
        call.cancel()
        ctx.note("kill_self", {"killed": c.left.result().reason})
    else:
        ctx.note("kill_self", await call)


def _on_leave(ctx, events):
    """on_leave's arguments: the session id, then (WAMP spec, newer) authid and authrole."""
    for event in events:
        args = event.get("args")
        if args:
            event["args"] = [ctx.ids.session(args[0])] + (
                [ctx.ids.authid(args[1])] if len(args) > 1 else []) + args[2:]
    return events


async def meta_join_leave(ctx):
    a = await ctx.join("A")
    await a.subscribe("wamp.session.on_join", tag="on_join")
    await a.subscribe("wamp.session.on_leave", tag="on_leave")
    c = await ctx.join("C")
    joined = await a.events(1)
    for event in joined:
        details = event["args"][0]
        event["args"] = [_session_details(ctx, details)]
        event["details_keys"] = sorted(k for k in details
                                       if k in ("session", "authid", "authrole", "authmethod",
                                                "authprovider", "transport"))
    ctx.note("on_join", joined)
    await c.leave()
    ctx.note("on_leave", _on_leave(ctx, await a.events(1)))
    # A dropped connection leaves too.
    d = await ctx.join("D")
    await a.events(1)
    d.session._transport.transport.abort()
    left = await a.events(1)
    ctx.note("on_leave_drop", [ctx.ids.session(e["args"][0]) if "args" in e else e
                               for e in left])


def _sub_details(ctx, details, kind="sub"):
    if not isinstance(details, dict):
        return details
    out = {k: details.get(k) for k in ("uri", "match", "invoke") if k in details}
    out["id"] = ctx.ids(kind, details.get("id"))
    out["created_is_text"] = isinstance(details.get("created"), str)
    return out


async def meta_subscription(ctx):
    watcher = await ctx.join("A")
    for meta in ("on_create", "on_subscribe", "on_unsubscribe", "on_delete"):
        await watcher.subscribe(f"wamp.subscription.{meta}", tag=meta)
    b = await ctx.join("B")
    c = await ctx.join("C")
    sub_b = await b.subscribe("com.meta_subscription.t", tag="t")
    ctx.ids("sub", sub_b.id)
    sub_c = await c.subscribe("com.meta_subscription.t", tag="t")
    pattern = await c.subscribe("com.meta_subscription", tag="p", match="prefix")
    ctx.ids("sub", pattern.id)
    events = await watcher.events(5)
    for event in events:
        args = event["args"]
        event["args"] = [ctx.ids.session(args[0])] + [
            _sub_details(ctx, args[1]) if isinstance(args[1], dict) else ctx.ids("sub", args[1])]
    ctx.note("events_subscribe", events)
    meta = "wamp.subscription."
    ctx.note("lookup", await attempt(b.call(meta + "lookup", "com.meta_subscription.t"),
                                     lambda i: ctx.ids("sub", i)))
    ctx.note("lookup_prefix", await attempt(
        b.call(meta + "lookup", "com.meta_subscription", {"match": "prefix"}),
        lambda i: ctx.ids("sub", i)))
    ctx.note("lookup_none", await attempt(b.call(meta + "lookup", "com.meta_subscription.x")))
    ctx.note("match", await attempt(b.call(meta + "match", "com.meta_subscription.t"),
                                    lambda ids: sorted(ctx.ids("sub", i) for i in ids)))
    ctx.note("match_none", await attempt(b.call(meta + "match", "com.other")))
    ctx.note("get", await attempt(b.call(meta + "get", sub_b.id),
                                  lambda d: _sub_details(ctx, d)))
    ctx.note("get_unknown", await attempt(b.call(meta + "get", 31337)))
    ctx.note("list_subscribers", await attempt(
        b.call(meta + "list_subscribers", sub_b.id),
        lambda ids: sorted(ctx.ids.session(i) for i in ids)))
    ctx.note("count_subscribers", await attempt(b.call(meta + "count_subscribers", sub_b.id)))
    ctx.note("count_unknown", await attempt(b.call(meta + "count_subscribers", 31337)))
    ctx.note("list", await attempt(
        b.call(meta + "list"),
        lambda d: {k: sorted(ctx.ids("sub", i) for i in v) for k, v in d.items()}))
    await sub_b.unsubscribe()
    await sub_c.unsubscribe()
    events = await watcher.events(3)
    for event in events:
        args = event["args"]
        event["args"] = [ctx.ids.session(args[0]), ctx.ids("sub", args[1])]
    ctx.note("events_unsubscribe", events)
    await c.leave()
    events = await watcher.events(2)
    for event in events:
        args = event["args"]
        event["args"] = [ctx.ids.session(args[0]), ctx.ids("sub", args[1])]
    ctx.note("events_leave", events)


async def meta_registration(ctx):
    watcher = await ctx.join("A")
    for meta in ("on_create", "on_register", "on_unregister", "on_delete"):
        await watcher.subscribe(f"wamp.registration.{meta}", tag=meta)
    b = await ctx.join("B")
    c = await ctx.join("C")
    reg_b = await b.register(_echo("B"), "com.meta_registration.p", invoke="roundrobin")
    ctx.ids("reg", reg_b.id)
    reg_c = await c.register(_echo("C"), "com.meta_registration.p", invoke="roundrobin")
    pattern = await c.register(_echo("C"), "com.meta_registration", match="prefix")
    ctx.ids("reg", pattern.id)
    events = await watcher.events(5)
    for event in events:
        args = event["args"]
        event["args"] = [ctx.ids.session(args[0])] + [
            _sub_details(ctx, args[1], "reg") if isinstance(args[1], dict)
            else ctx.ids("reg", args[1])]
    ctx.note("events_register", events)
    meta = "wamp.registration."
    ctx.note("lookup", await attempt(b.call(meta + "lookup", "com.meta_registration.p"),
                                     lambda i: ctx.ids("reg", i)))
    ctx.note("lookup_prefix", await attempt(
        b.call(meta + "lookup", "com.meta_registration", {"match": "prefix"}),
        lambda i: ctx.ids("reg", i)))
    ctx.note("lookup_none", await attempt(b.call(meta + "lookup", "com.meta_registration.x")))
    ctx.note("match", await attempt(b.call(meta + "match", "com.meta_registration.p"),
                                    lambda i: ctx.ids("reg", i)))
    ctx.note("match_prefix", await attempt(b.call(meta + "match", "com.meta_registration.q"),
                                           lambda i: ctx.ids("reg", i)))
    ctx.note("match_none", await attempt(b.call(meta + "match", "com.other")))
    ctx.note("get", await attempt(b.call(meta + "get", reg_b.id),
                                  lambda d: _sub_details(ctx, d, "reg")))
    ctx.note("get_unknown", await attempt(b.call(meta + "get", 31337)))
    ctx.note("list_callees", await attempt(
        b.call(meta + "list_callees", reg_b.id),
        lambda ids: sorted(ctx.ids.session(i) for i in ids)))
    ctx.note("count_callees", await attempt(b.call(meta + "count_callees", reg_b.id)))
    ctx.note("count_unknown", await attempt(b.call(meta + "count_callees", 31337)))
    ctx.note("list", await attempt(
        b.call(meta + "list"),
        lambda d: {k: sorted(ctx.ids("reg", i) for i in v) for k, v in d.items()}))
    await reg_b.unregister()
    await reg_c.unregister()
    events = await watcher.events(3)
    for event in events:
        args = event["args"]
        event["args"] = [ctx.ids.session(args[0]), ctx.ids("reg", args[1])]
    ctx.note("events_unregister", events)
    await c.leave()
    events = await watcher.events(2)
    for event in events:
        args = event["args"]
        event["args"] = [ctx.ids.session(args[0]), ctx.ids("reg", args[1])]
    ctx.note("events_leave", events)


# --- URIs, realms, serializers ------------------------------------------------------------------


async def invalid_uri(ctx):
    cases = [
        ("subscribe empty component", [32, 1, {}, "com..x"]),
        ("subscribe space", [32, 2, {}, "com.invalid uri"]),
        ("subscribe prefix trailing dot", [32, 3, {"match": "prefix"}, "com.x."]),
        ("subscribe wildcard ok", [32, 4, {"match": "wildcard"}, "com..x"]),
        ("subscribe hash", [32, 5, {}, "com.#"]),
        ("publish empty component", [16, 6, {"acknowledge": True}, "com..x", []]),
        ("publish space", [16, 7, {"acknowledge": True}, "com. x", []]),
        ("register empty component", [64, 8, {}, "com..x"]),
        ("register wildcard ok", [64, 9, {"match": "wildcard"}, "com..y"]),
        ("call empty component", [48, 10, {}, "com..x", []]),
        ("call space", [48, 11, {}, "com.x y", []]),
        ("subscribe unicode ok", [32, 12, {}, "com.\u00e9t\u00e9"]),
        ("subscribe upper case ok", [32, 13, {}, "com.Invalid_URI.X"]),
        ("publish reserved wamp", [16, 14, {"acknowledge": True}, "wamp.session.on_join", []]),
        ("register reserved wamp", [64, 15, {}, "wamp.mine"]),
    ]
    for name, message in cases:
        raw = await ctx.raw("A")
        await raw.send(message)
        reply = await raw.recv()
        if reply[0] in (33, 65, 17):
            reply = "accepted"
        elif reply[0] == 8:
            reply = reply[4]
        elif reply[0] == 3:
            reply = f"abort {reply[2]}"
        elif reply[0] == "closed":
            reply = f"closed {reply[1]}"
        ctx.note(name, reply)
        await raw.close()


async def no_such_realm(ctx):
    try:
        await ctx.join("A", realm="com.no_such_realm.nowhere")
        ctx.note("autobahn", "joined")
    except ApplicationError as e:
        ctx.note("autobahn", error(e))
    from wamp_common import Raw
    raw = Raw(ctx, "B")
    await raw.open()
    reply = await raw.hello("com.no_such_realm.nowhere")
    ctx.note("raw_abort", reply[:1] + [reply[2]] if reply and reply[0] == 3 else reply)
    await raw.close()
    # The same realm name is fine once it is the right one.
    a = await ctx.join("A")
    ctx.note("right_realm", a.details.realm)


async def welcome(ctx):
    a = await ctx.join("A")
    d = a.details
    ctx.note("autobahn", {"realm": d.realm, "authrole": d.authrole, "authmethod": d.authmethod,
                          "authid_is_text": isinstance(d.authid, str),
                          "session_is_int": isinstance(d.session, int)})
    raw = await ctx.raw("B")
    raw2 = await ctx.raw("C")
    ctx.note("distinct_sessions", len({a.id, raw.id, raw2.id}) == 3)
    await raw.close()
    await raw2.close()
    from wamp_common import Raw
    raw = Raw(ctx, "D")
    await raw.open()
    welcome = await raw.hello(ctx.realm)
    ctx.note("raw_roles", sorted(welcome[2].get("roles", {})) if welcome[0] == 2 else welcome)
    # A second HELLO on an established session is a protocol violation. What comes back
    # first: an ABORT, or the PUBLISHED of the publication sent right after it.
    await raw.send([1, ctx.realm, {"roles": {"subscriber": {}}}])
    await raw.send([16, 1, {"acknowledge": True}, "com.welcome.t", []])
    reply = await raw.recv()
    ctx.note("second_hello", reply[:1] + reply[2:3] if reply[0] == 3 else reply[:2])
    await raw.close()


async def _serializer(ctx, serializer):
    a = await ctx.join("A", serializer)
    b = await ctx.join("B", serializer)
    await a.subscribe("com.serializer.t", tag="t")
    await a.register(_echo("A"), "com.serializer.p")
    await b.publish("com.serializer.t", "\u00e9", 1, 2.5, {"k": [None]}, kw="\u4e2d",
                    options={"acknowledge": True})
    ctx.note("event", await a.events(1))
    ctx.note("call", await attempt(b.call("com.serializer.p", "x", [1], k=True), result_of))
    ctx.note("protocol", a.session._transport.websocket_protocol_in_use)


async def serializer_json(ctx):
    await _serializer(ctx, "json")


async def serializer_msgpack(ctx):
    await _serializer(ctx, "msgpack")


async def serializer_cbor(ctx):
    await _serializer(ctx, "cbor")


# --- Authentication and authorization -----------------------------------------------------------
# The auth_* realms share one logical configuration (tests/common/wamp.rs, `auth_spec`): ticket
# principals boss (everything), worker, nothing, picky, watcher (the roles of the same names);
# WAMP-CRA principals peter (plain) and salty (salted); WAMP-Cryptosign principals cora and
# cody (role worker; the public keys of CRYPTOSIGN_PRIVATE[0] and [1]); the clients send no
# wson cookies.


def _reply(message):
    """A login or action reply in a router-independent shape."""
    kind = {2: "welcome", 3: "abort", 4: "challenge", 8: "error", 17: "ok", 33: "ok", 50: "ok",
            65: "ok"}.get(message[0], message[0])
    if kind == "welcome":
        d = message[2]
        return [kind, {k: d.get(k) for k in ("authid", "authrole", "authmethod",
                                              "authprovider")}]
    if kind == "abort":
        return [kind, message[2]]
    if kind == "challenge":
        return [kind, message[1], sorted(message[2])]
    if kind == "error":
        return [kind, message[4]]
    return [kind] if kind == "ok" else message


async def _login(ctx, label, method, authid, answer, url=None, authextra=None):
    """A cookie-less raw session (to `url`, else the router's): HELLO offering `method` as
    `authid` (none when None) with `authextra`, then `answer(extra)` (a string or an
    awaitable) to a CHALLENGE. Returns (raw, steps): the replies in the shape of `_reply`."""
    from wamp_common import RAW_ROLES, Raw
    raw = Raw(ctx, label)
    await raw.open(cookies=False, url=url)
    details = {"roles": RAW_ROLES, "authmethods": [method]}
    if authid is not None:
        details["authid"] = authid
    if authextra is not None:
        details["authextra"] = authextra
    await raw.send([1, ctx.realm, details])
    first = await raw.recv()
    steps = {"hello": _reply(first)}
    if first[0] == 4:
        signature = answer(first[2])
        if inspect.isawaitable(signature):
            signature = await signature
        await raw.send([5, signature, {}])
        second = await raw.recv()
        steps["authenticate"] = _reply(second)
        first = second
    if first[0] == 2:
        raw.id = first[1]
    return raw, steps


async def _try_login(ctx, method, authid, answer, url=None, authextra=None):
    raw, steps = await _login(ctx, "A", method, authid, answer, url, authextra)
    await raw.close()
    return steps


async def auth_ticket(ctx):
    ctx.note("right", await _try_login(ctx, "ticket", "worker", lambda _: "worker-ticket"))
    ctx.note("wrong", await _try_login(ctx, "ticket", "worker", lambda _: "nope"))
    ctx.note("unknown", await _try_login(ctx, "ticket", "stranger", lambda _: "x"))
    # A WAMP-CRA principal offering ticket: it has no ticket.
    ctx.note("cra_principal", await _try_login(ctx, "ticket", "peter", lambda _: "peter-secret"))


def _cra(secret):
    from autobahn.wamp import auth

    def answer(extra):
        key = secret.encode()
        if "salt" in extra:
            key = auth.derive_key(secret, extra["salt"], extra["iterations"], extra["keylen"])
        return auth.compute_wcs(key, extra["challenge"]).decode()
    return answer


async def auth_wampcra(ctx):
    ctx.note("plain", await _try_login(ctx, "wampcra", "peter", _cra("peter-secret")))
    ctx.note("plain_wrong", await _try_login(ctx, "wampcra", "peter", _cra("nope")))
    ctx.note("salted", await _try_login(ctx, "wampcra", "salty", _cra("salty-secret")))
    ctx.note("salted_wrong", await _try_login(ctx, "wampcra", "salty", _cra("nope")))
    ctx.note("unknown", await _try_login(ctx, "wampcra", "stranger", _cra("x")))
    # A ticket principal offering wampcra: it has no secret.
    ctx.note("ticket_principal", await _try_login(ctx, "wampcra", "worker",
                                                  _cra("worker-ticket")))


# Private keys (hex): those of the WAMP spec's cryptosign test vectors, then one of our own
# that no static principal lists (auth_dynamic).
CRYPTOSIGN_PRIVATE = [
    "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
    "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
    "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
]


def _cryptosign_key(index):
    from autobahn.wamp.cryptosign import CryptosignKey
    return CryptosignKey.from_bytes(bytes.fromhex(CRYPTOSIGN_PRIVATE[index]))


def _pubkey(index):
    return {"pubkey": _cryptosign_key(index).public_key()}


def _cryptosign(index, signature_only=False):
    """autobahn's own answer to a cryptosign CHALLENGE: `sign_challenge` with private key
    `index` (hex signature + challenge, 96 bytes), or the 64-byte signature alone."""
    from autobahn.wamp.types import Challenge

    async def answer(extra):
        signed = await _cryptosign_key(index).sign_challenge(Challenge("cryptosign", extra))
        return signed[:128] if signature_only else signed
    return answer


async def auth_cryptosign(ctx):
    ctx.note("right", await _try_login(ctx, "cryptosign", "cora", _cryptosign(0),
                                       authextra=_pubkey(0)))
    # cora's key announced, another key signs.
    ctx.note("wrong", await _try_login(ctx, "cryptosign", "cora", _cryptosign(2),
                                       authextra=_pubkey(0)))
    ctx.note("signature_only", await _try_login(ctx, "cryptosign", "cora",
                                                _cryptosign(0, signature_only=True),
                                                authextra=_pubkey(0)))
    ctx.note("unknown", await _try_login(ctx, "cryptosign", "stranger", _cryptosign(0),
                                         authextra=_pubkey(0)))
    # cody's key, for cora: a key the principal does not list.
    ctx.note("unlisted", await _try_login(ctx, "cryptosign", "cora", _cryptosign(1),
                                          authextra=_pubkey(1)))
    # No authid: the principal listing the key, or nobody.
    ctx.note("by_key", await _try_login(ctx, "cryptosign", None, _cryptosign(1),
                                        authextra=_pubkey(1)))
    ctx.note("by_unknown_key", await _try_login(ctx, "cryptosign", None, _cryptosign(2),
                                                authextra=_pubkey(2)))
    # A ticket principal offering cryptosign: it has no keys.
    ctx.note("ticket_principal", await _try_login(ctx, "cryptosign", "worker", _cryptosign(0),
                                                  authextra=_pubkey(0)))
    # Asked for TLS channel binding over a connection without TLS: refused at HELLO.
    ctx.note("tls_unique", await _try_login(
        ctx, "cryptosign", "cora", _cryptosign(0),
        authextra=dict(_pubkey(0), channel_binding="tls-unique")))


async def _boss(ctx, procedures):
    """The trusted backend (role boss): registers `procedures` so that calls reach the
    authorization, not a missing procedure."""
    boss, steps = await _login(ctx, "B", "ticket", "boss", lambda _: "boss-ticket")
    assert steps["authenticate"][0] == "welcome", steps
    for i, procedure in enumerate(procedures):
        await boss.send([64, 100 + i, {}, procedure])
        reply = await boss.recv()
        assert reply[0] == 65, reply
    return boss


async def _authz(ctx, role, uris):
    """Each action of `role` on each URI: "ok" or the ERROR URI. SUBSCRIBE, PUBLISH (with
    acknowledge) and REGISTER (undone when it succeeds) first; then the boss registers every
    URI and the role CALLs them, so that a call meets the authorization, not a missing
    procedure (Crossbar answers no_such_procedure before it authorizes)."""
    raw, steps = await _login(ctx, "A", "ticket", role, lambda _: role + "-ticket")
    ctx.note("login", steps)
    out = {uri: {} for uri in uris}
    for uri in uris:
        for action, message in [
            ("subscribe", [32, raw.next_request(), {}, uri]),
            ("publish", [16, raw.next_request(), {"acknowledge": True}, uri, []]),
            ("register", [64, raw.next_request(), {}, uri]),
        ]:
            await raw.send(message)
            reply = await raw.recv()
            out[uri][action] = _reply(reply)[-1]
            if reply[0] == 65:
                await raw.send([66, raw.next_request(), reply[2]])
                assert (await raw.recv())[0] == 67
    boss = await _boss(ctx, uris)

    async def serve():
        while True:
            message = await boss.recv()
            if message[0] == 68:
                await boss.send([70, message[1], {}, ["served"]])
            elif message[0] == "closed":
                return
    server = asyncio.ensure_future(serve())
    for uri in uris:
        await raw.send([48, raw.next_request(), {}, uri, []])
        out[uri]["call"] = _reply(await raw.recv())[-1]
    ctx.note("actions", out)
    server.cancel()
    await raw.close()
    await boss.close()


async def auth_permissions(ctx):
    # worker: prefix com.auth.open. everything; exact com.auth.read subscribe and call.
    await _authz(ctx, "worker", ["com.auth.open.x", "com.auth.read", "com.auth.read.x",
                                 "com.auth.other"])


async def auth_no_permissions(ctx):
    await _authz(ctx, "nothing", ["com.auth.open.x", "com.auth.read"])


async def auth_precedence(ctx):
    # picky: prefix com.prec. subscribe; prefix com.prec.a. publish; wildcard com.prec..x
    # register; exact com.prec.a.x call; exact com.prec.c call.
    await _authz(ctx, "picky", ["com.prec.a.x", "com.prec.b.x", "com.prec.a.y",
                                "com.prec.b.y", "com.prec.cd"])


async def auth_check_order(ctx):
    """What is checked first: the permission, or the state of the procedure. worker may not
    register or call com.auth.other: REGISTER it while the boss holds it, CALL com.auth.gone
    (registered by nobody)."""
    boss = await _boss(ctx, ["com.auth.other"])
    raw, steps = await _login(ctx, "A", "ticket", "worker", lambda _: "worker-ticket")
    ctx.note("login", steps)
    await raw.send([64, 1, {}, "com.auth.other"])
    ctx.note("register_taken", _reply(await raw.recv())[-1])
    await raw.send([48, 2, {}, "com.auth.gone", []])
    ctx.note("call_unregistered", _reply(await raw.recv())[-1])
    await raw.close()
    await boss.close()


async def auth_meta(ctx):
    """watcher: call wamp.session.count and subscribe wamp.session. (prefix), nothing else."""
    raw, steps = await _login(ctx, "A", "ticket", "watcher", lambda _: "watcher-ticket")
    ctx.note("login", steps)
    for key, message in [
        ("count", [48, 1, {}, "wamp.session.count", []]),
        ("list", [48, 2, {}, "wamp.session.list", []]),
        ("get", [48, 3, {}, "wamp.session.get", [raw.id]]),
        ("sub_list", [48, 4, {}, "wamp.subscription.list", []]),
        ("on_join", [32, 5, {}, "wamp.session.on_join"]),
        ("on_create", [32, 6, {}, "wamp.subscription.on_create"]),
    ]:
        await raw.send(message)
        reply = await raw.recv()
        ctx.note(key, _reply(reply)[-1] if reply[0] == 8 else _reply(reply)[0])
    # The count itself: the watcher alone (Crossbar does not count its service sessions).
    await raw.send([48, 7, {}, "wamp.session.count", []])
    ctx.note("count_value", (await raw.recv())[3:])
    await raw.close()


async def auth_dynamic(ctx):
    """The realm's dynamic authenticator and the role `dynamic`'s authorizer, both
    procedures of the boss (Crossbar's signatures): who logs in (ticket, WAMP-CRA and
    WAMP-Cryptosign), what each is asked, what their answers do (errors, an unknown role, no
    authid anywhere, cached and uncached answers)."""
    boss = await _boss(ctx, [])
    registrations = {}
    for request, procedure in [(200, "com.dyn.authenticate"), (201, "com.dyn.authorize")]:
        await boss.send([64, request, {}, procedure])
        reply = await boss.recv()
        assert reply[0] == 65, reply
        registrations[reply[2]] = procedure
    asked = {"authenticate": [], "authorize": []}
    principals = {"dora": {"secret": "dora-secret", "role": "dynamic"},
                  "king": {"secret": "king-secret", "role": "king"}}

    def authenticate(realm, authid, details):
        pubkey = (details.get("authextra") or {}).get("pubkey")
        asked["authenticate"].append([realm == ctx.realm, authid, details.get("authmethod"),
                                      isinstance(details.get("session"), int),
                                      details.get("ticket"), pubkey])
        if details.get("authmethod") == "cryptosign":
            # The key HELLO announced is the one that must sign. A login without authid is
            # named here for key 3 (kim) only: key 2 stays nameless.
            principal = {"pubkey": pubkey, "role": "dynamic"}
            if authid is None and pubkey == _pubkey(3)["pubkey"]:
                principal["authid"] = "kim"
            return [70, {}, [principal]]
        if details.get("authmethod") == "ticket":
            if details.get("ticket") == "tim-ticket":
                return [70, {}, ["worker"]]
            return [8, {}, "com.dyn.bad_ticket", ["wrong ticket"]]
        if authid in principals:
            return [70, {}, [principals[authid]]]
        return [8, {}, "com.dyn.no_such_user", ["no such user"]]

    def authorize(details, uri, action, options=None):
        asked["authorize"].append([details.get("authid"), details.get("authrole"), uri,
                                   action])
        if uri.startswith("com.dyn.open."):
            return [70, {}, [{"allow": True, "cache": True}]]
        if uri == "com.dyn.nocache":
            return [70, {}, [True]]
        return [70, {}, [False]]

    async def serve():
        while True:
            message = await boss.recv()
            if message[0] == "closed":
                return
            if message[0] != 68:
                continue
            handler = {"com.dyn.authenticate": authenticate,
                       "com.dyn.authorize": authorize}[registrations[message[2]]]
            answer = handler(*message[4])
            if answer[0] == 70:
                await boss.send([70, message[1]] + answer[1:])
            else:
                await boss.send([8, 68, message[1]] + answer[1:])
    server = asyncio.ensure_future(serve())
    dynamic = ctx.dynamic_url
    ctx.note("dora", await _try_login(ctx, "wampcra", "dora", _cra("dora-secret"), dynamic))
    ctx.note("dora_wrong", await _try_login(ctx, "wampcra", "dora", _cra("nope"), dynamic))
    ctx.note("tim", await _try_login(ctx, "ticket", "tim", lambda _: "tim-ticket", dynamic))
    ctx.note("tim_wrong", await _try_login(ctx, "ticket", "tim", lambda _: "nope", dynamic))
    ctx.note("zoe", await _try_login(ctx, "wampcra", "zoe", _cra("x"), dynamic))
    ctx.note("king", await _try_login(ctx, "wampcra", "king", _cra("king-secret"), dynamic))
    ctx.note("cleo", await _try_login(ctx, "cryptosign", "cleo", _cryptosign(0), dynamic,
                                      _pubkey(0)))
    ctx.note("cleo_wrong", await _try_login(ctx, "cryptosign", "cleo", _cryptosign(2), dynamic,
                                            _pubkey(0)))
    ctx.note("kim", await _try_login(ctx, "cryptosign", None, _cryptosign(3), dynamic,
                                     _pubkey(3)))
    ctx.note("nameless", await _try_login(ctx, "cryptosign", None, _cryptosign(2), dynamic,
                                          _pubkey(2)))
    raw, steps = await _login(ctx, "A", "wampcra", "dora", _cra("dora-secret"), dynamic)
    actions = []
    for message in [
        [32, 1, {}, "com.dyn.open.a"],
        [32, 2, {}, "com.dyn.open.a"],
        [32, 3, {}, "com.dyn.nocache"],
        [32, 4, {}, "com.dyn.nocache"],
        [32, 5, {}, "com.dyn.closed"],
        [16, 6, {"acknowledge": True}, "com.dyn.open.b", []],
        [16, 7, {"acknowledge": True}, "com.dyn.closed", []],
        [48, 8, {}, "com.dyn.closed", []],
        [64, 9, {}, "com.dyn.open.p"],
    ]:
        await raw.send(message)
        actions.append(_reply(await raw.recv())[-1])
    ctx.note("actions", actions)
    ctx.note("asked", asked)
    server.cancel()
    await raw.close()
    await boss.close()


SCENARIOS = {name: fn for name, fn in list(globals().items())
             if asyncio.iscoroutinefunction(fn) and not name.startswith("_")
             and fn.__module__ == __name__}

if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        print("\n".join(SCENARIOS))
    else:
        run(SCENARIOS, sys.argv)
