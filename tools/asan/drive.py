"""Run by tools/asan/engine.c (make asan): every entry point of pyapi/fastcall.c and the
encoder of pyapi/encode.c, against the C stand-in engine, with the collector armed to run
finalizers that call the entry points inside them, in this thread and in others. Any
out-of-bounds or freed-memory access, or undefined behaviour, stops the run with the
sanitizer's report; a wrong result fails an assert."""
import gc
import json
import sys
import threading
import weakref

import fqasan as M

STDLIB = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class NotFound(ValueError):
    pass


class OutcomeUnknown(RuntimeError):
    pass


M._fq_init(NotFound, OutcomeUnknown, "forked")
FID = 1


def frame(sid, i, size=0):
    return b'{"type":"next","id":"%s","payload":{"i":%d,"b":"%s"}}' % (sid.encode(), i, b"x" * size)


class Exec:
    """What the bound entries hold weakly; the fallback records unusual calls."""

    def __init__(self):
        self.fallbacks = []

        def fallback(name):
            def call(ex, *args, **kwargs):
                ex.fallbacks.append((name, args, kwargs))
                return "fallback"
            return call
        ref = weakref.ref(self)
        self.next_event = M._fq_bind(0, FID, ref, fallback("next"))
        self.drain_connection = M._fq_bind(1, FID, ref, fallback("drain"))
        self.publish_event = M._fq_bind(2, FID, ref, fallback("publish"))


def setup():
    M.reset()
    M.add("c1", "A", "users")
    M.add("c2", "B", "orders")
    M.add("c2", "B2", "orders")


def check_basics(ex):
    setup()
    for size in (0, 100, 70_000, 1_500_000, 10):  # past the 64 KiB buffer and the 1 MiB kept one
        M.push("A", frame("A", size, size))
        assert M._fq_next(FID, "A") == frame("A", size, size)
    assert M._fq_next(FID, "A") is None
    try:
        M._fq_next(FID, "nope")
    except NotFound as err:
        assert str(err) == "Subscription not found: nope"
    else:
        raise AssertionError("no NotFound")
    for call in (lambda: M._fq_next(2, "A"), lambda: M._fq_drain(2, "c1", 0)):
        try:
            call()
        except RuntimeError as err:
            assert str(err) == "executor is closed"
    for bad in ((FID,), ("1", "A"), (FID, b"A"), (FID, "a\x00"), (FID, "\ud800"), (2**70, "A")):
        try:
            M._fq_next(*bad)
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(bad)
    frames = [frame("B", i, 30_000 * (i % 3)) for i in range(40)]
    for f in frames:
        M.push("B", f)
    got = M._fq_drain(FID, "c2", 7) + ex.drain_connection("c2", 2**40) + M._fq_drain(FID, "c2", 0)
    assert got == frames, len(got)
    # The read-ahead window: a backlog of small frames, then ones too large for it.
    frames = [frame("A", i, 500 if i % 10 else 20_000) for i in range(300)]
    for f in frames:
        M.push("A", f)
    got = []
    while (f := ex.next_event("A")) is not None:
        got.append(f)
        if len(got) == 150:  # another reader takes the window back
            got += M._fq_drain(FID, "c1", 5)
    assert got == frames
    assert ex.next_event("A", timeout=1) == "fallback" and ex.next_event(7) == "fallback"
    assert ex.drain_connection("c1", max_messages=1) == "fallback"
    # Publish: encoded here, or the JSON text; large data moves the encoder to the heap.
    for data in ({"id": 1}, {"s": "é\n\"" * 5000, "l": list(range(2000)), "f": [0.1, -0.0, 1e300]}):
        assert ex.publish_event("users", "users", data) is None
        assert M._fq_publish(FID, "users", "users", STDLIB(data)) is None
        want = b'{"type":"next","id":"A","payload":%s}' % STDLIB(data).encode()
        assert M._fq_drain(FID, "c1", 0) == [want, want]
    assert ex.publish_event("users", "users", {1: "not a str key"}) == "fallback"
    try:
        M._fq_publish(FID, "users", "users", "[]")
    except ValueError as err:
        assert str(err).startswith("data is not a JSON object")
    # With an idempotency key; the stand-in engine reports the key "lost" as an unknown outcome.
    assert M._fq_publish(FID, "users", "users", '{"k":1}', "key-1") is None
    assert M._fq_drain(FID, "c1", 0) == [b'{"type":"next","id":"A","payload":{"k":1}}']
    try:
        M._fq_publish(FID, "users", "users", '{"k":2}', "lost")
        raise AssertionError("no error")
    except OutcomeUnknown as err:
        assert str(err) == "the outcome is unknown: key lost"


def check_encoder():
    nested = [1]
    for depth in range(1, 320):
        value = {"d": nested}
        got = M._fq_encode(value)
        if depth < 200:
            assert got == STDLIB(value).encode(), depth
        elif depth > 200:
            assert got is NotImplemented, depth
        nested = [nested] if depth % 2 else {"k": nested}
    odd = [{"n": float("nan")}, {"n": 2**64}, {1: 1}, {"s": type("S", (str,), {})("x")}, {"o": object()}]
    for value in odd:
        assert M._fq_encode(value) is NotImplemented
    circular = {}
    circular["self"] = [circular]
    assert M._fq_encode(circular) is NotImplemented
    for value in ({"s": "\ud800\U0001f600\x00\x7f" * 3000}, {"t": (1, (2.5, None), [True, False]) * 500},
                  {"i": [-(2**63), 2**63 - 1, 0, -1]}, {}, [], "x" * 100_000):
        assert M._fq_encode(value) == STDLIB(value).encode(), str(value)[:40]


class World:
    """Outer calls on A / c1 / users; the finalizer's calls on B / c2 / orders."""

    def __init__(self, ex, size):
        setup()
        self.ex, self.size, self.a, self.b, self.inner = ex, size, 0, 0, []
        for _ in range(5):
            self.push_a()
            self.push_b()

    def push_a(self):
        M.push("A", frame("A", self.a, self.size))
        self.a += 1

    def push_b(self):
        M.push("B", frame("B", self.b, self.size))
        self.b += 1

    def inner_calls(self):
        ex, out = self.ex, self.inner
        out.append(ex.next_event("B"))
        out += ex.drain_connection("c2")
        ex.publish_event("orders", "orders", {"p": 1})
        M._fq_publish(FID, "orders", "orders", '{"p":2}')
        out.append(M._fq_next(FID, "B"))
        out.append(M._fq_next(FID, "B2"))
        out += M._fq_drain(FID, "c2", 0)
        assert M._fq_encode({"k": [1, "v"]}) == b'{"k":[1,"v"]}'
        try:
            ex.next_event("nope")
        except NotFound:
            pass


def arm(action):
    gc.collect()
    gc.disable()
    node = type("Node", (), {})()
    node.me = node
    weakref.finalize(node, action)
    del node
    arm.keep = None
    arm.keep = [[] for _ in range(200)]
    gc.set_threshold(1)
    gc.enable()


class Handoff:
    """The thread variant: the finalizer has another thread make the calls and waits for it
    with the GIL released."""

    def __init__(self, world):
        self.world, self.go, self.done = world, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.work)
        self.thread.start()

    def work(self):
        self.go.wait()
        self.world.inner_calls()
        self.done.set()

    def action(self):
        if threading.current_thread() is self.thread:  # collected by the worker's own allocation
            self.world.inner_calls()
            return
        self.go.set()
        assert self.done.wait(30)


def check_reentrancy(ex, size, threaded):
    outers = {
        "next": lambda: [f] if (f := ex.next_event("A")) is not None else [],
        "drain": lambda: ex.drain_connection("c1"),
        "_fq_next": lambda: [f] if (f := M._fq_next(FID, "A")) is not None else [],
        "_fq_drain": lambda: M._fq_drain(FID, "c1", 2),
        "publish": lambda: ex.publish_event("users", "users", {"x": [1, 2]}) or [],
        "_fq_encode": lambda: M._fq_encode({"a": [[1]] * 3}) and [],
    }
    for name, outer in outers.items():
        world = World(ex, size)
        handoff = Handoff(world) if threaded else None
        got = []
        arm(handoff.action if handoff else world.inner_calls)
        got += outer()
        gc.set_threshold(700)
        gc.collect()
        if handoff:
            handoff.thread.join()
        got += M._fq_drain(FID, "c1", 0)
        a_frames = [f for f in got if b'"id":"A"' in f and b'"x"' not in f]
        assert a_frames == [frame("A", i, size) for i in range(world.a)], name
        b_frames = [f for f in world.inner if f is not None and b'"p"' not in f]
        b_frames += [f for f in M._fq_drain(FID, "c2", 0) if b'"p"' not in f]
        assert b_frames == [frame("B", i, size) for i in range(world.b)], name


def check_threads(ex):
    setup()
    stop = threading.Event()
    errors = []

    def hammer(k):
        try:
            while not stop.is_set():
                ex.next_event("A")
                M._fq_drain(FID, "c2", 3)
                ex.publish_event("orders", "orders", {"k": k, "s": "y" * (k * 5000)})
                M._fq_encode({"k": [k] * 100})
                try:
                    M._fq_next(FID, "nope")
                except NotFound:
                    pass
        except BaseException as err:  # noqa: BLE001 - reported
            errors.append(err)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for i in range(3000):
        M.push("A", frame("A", i, i % 700))
        M._fq_publish(FID, "users", "users", '{"i":%d}' % i)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors


def check_claim_hook(ex):
    """A test's hook between the window claim's load and its compare-and-swap: run once,
    its take-back makes the claim fail; bad arguments and a raising hook are errors."""
    setup()
    frames = [frame("A", i) for i in range(5)]
    for f in frames:
        M.push("A", f)
    got = [ex.next_event("A")]  # read through the engine, the rest lent
    ran = []

    def take_back():
        ran.append(1)
        got.extend(M._fq_drain(FID, "c1", 0))
    M._fq_claim_hook(ex.next_event, take_back)
    assert ex.next_event("A") is None and ex.next_event("A") is None
    assert got == frames and ran == [1]
    for bad in ((ex.drain_connection, take_back), (ex.next_event, 1), (ex.next_event,)):
        try:
            M._fq_claim_hook(*bad)
        except TypeError:
            pass
        else:
            raise AssertionError(bad)

    def failing():
        raise KeyError("hook")
    for f in frames:
        M.push("A", f)
    assert ex.next_event("A") == frames[0]
    M._fq_claim_hook(ex.next_event, failing)
    try:
        ex.next_event("A")
    except KeyError:
        pass
    else:
        raise AssertionError("the hook's error was lost")
    assert [ex.next_event("A") for _ in frames[1:]] == frames[1:]


ex = Exec()
check_basics(ex)
check_claim_hook(ex)
check_encoder()
for size in (10, 2_000_000):
    for threaded in (False, True):
        check_reentrancy(ex, size, threaded)
check_threads(ex)
del ex
gc.collect()
print("asan drive: every check passed")
sys.stdout.flush()
