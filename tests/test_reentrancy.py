"""The hand-written entry points (pyapi/fastcall.c, encode.c) stay correct when Python code
runs in the middle of them: on CPython 3.11 and older any allocation of a list, tuple or dict
can run the cyclic collector, with the __del__ methods and weakref.finalize callbacks of
whatever it frees, and those may call the same entries or release the GIL (any gopy call does)
so that another thread calls them.

Each test arms the collector (threshold 1, the list free list emptied, a reference cycle
holding a finalizer left as garbage) and then calls one entry point. The finalizer calls every
entry point on another subscription, connection and channel, in this thread or, in the thread
variant, in another thread while it waits with the GIL released. The outer call must return its
own messages, the inner calls theirs, and every message must be delivered exactly once."""
import gc
import sys
import threading
import weakref

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
X = S.PySubscriptionExecutor
E = S._fast(S._native.engine())

# Where the collector runs inside an allocation (3.12 moved it to the eval loop's checks).
GC_IN_ALLOCATION = sys.version_info < (3, 12)


def frame(sid, root, i, blob=None):
    extra = b',"blob":"%s"' % blob.encode() if blob is not None else b""
    return b'{"type":"next","id":"%s","payload":{"data":{"%s":{"id":%d%s}}}}' % (
        sid.encode(), root.encode(), i, extra)


class World:
    """Subscription A on connection c1 (channel users) for the outer call, B on c2 (channel
    orders) for the finalizer's calls; every frame either reads is recorded."""

    def __init__(self, backlog=5, blob_size=0):
        self.ex = X(queue_size=10_000, max_payload_bytes=64 * 1024 * 1024)
        self.ex.register_subscription("c1", "A", "subscription { users { id } }", user_id="u", tenant_id="t")
        self.ex.register_subscription("c2", "B", "subscription { orders { id blob } }", user_id="u",
                                      tenant_id="t")
        self.blob = "x" * blob_size
        self.next_a = 0  # ids published to A so far
        self.next_b = 0
        for _ in range(backlog):
            self.publish_a()
            self.publish_b()
        self.inner = []  # (what, result) of each call the finalizer made
        self.inner_runs = 0
        # Set when a run of inner_calls ends: the collector may run the finalizer on
        # another thread (any thread's allocation can start a collection), and then
        # gc.collect() on this one returns at once, before the finalizer is done.
        self.finished = threading.Event()
        self.ran_inside = False
        self.in_call = False

    def publish_a(self):
        self.ex.publish_event("users", "users", {"id": self.next_a})
        self.next_a += 1

    def publish_b(self):
        self.ex.publish_event("orders", "orders", self.b_data())

    def b_data(self):
        data = {"id": self.next_b, "blob": self.blob}
        self.next_b += 1
        return data

    def b_frame(self, i):
        return frame("B", "orders", i, self.blob)

    def inner_calls(self):
        """Every entry point, on B / c2 / orders only."""
        ex, fid, out = self.ex, self.ex._fid, self.inner

        def call(what, f, *args):
            try:
                out.append((what, f(*args)))
            except Exception as err:  # noqa: BLE001 - recorded and compared
                out.append((what, (type(err).__name__, str(err))))

        call("next_event", ex.next_event, "B")
        call("drain_connection", ex.drain_connection, "c2")
        call("publish_event", ex.publish_event, "orders", "orders", self.b_data())
        call("_fq_next", E._fq_next, fid, "B")
        call("_fq_publish", E._fq_publish, fid, "orders", "orders", self.b_data())
        call("_fq_drain", E._fq_drain, fid, "c2", 0)
        call("_fq_encode", E._fq_encode, {"k": [1, 2.5, None, "v"]})
        call("unknown id", ex.next_event, "nope")
        call("unknown connection", ex.drain_connection, "nope")
        self.inner_runs += 1
        self.ran_inside = self.ran_inside or self.in_call
        self.finished.set()

    def check_inner(self, first_b):
        """What the finalizer's calls returned, given B's first queued id."""
        runs, self.inner = self.inner, []
        assert len(runs) % 9 == 0 and runs, runs
        b = first_b
        for k in range(0, len(runs), 9):
            got = dict(runs[k:k + 9])
            assert got["next_event"] == self.b_frame(b)
            drained = got["drain_connection"]
            assert drained == [self.b_frame(i) for i in range(b + 1, b + 1 + len(drained))]
            b += 1 + len(drained)
            assert got["publish_event"] is None and got["_fq_publish"] is None
            assert got["_fq_next"] == self.b_frame(b)
            assert got["_fq_drain"] == [self.b_frame(b + 1)]
            b += 2
            assert got["_fq_encode"] == b'{"k":[1,2.5,null,"v"]}'
            assert got["unknown id"] == ("SubscriptionNotFound", "Subscription not found: nope")
            assert got["unknown connection"] == []
        return b

    def check_all_accounted(self, a_read):
        """Each message once: A's were read by the outer calls, B's by the finalizer."""
        assert a_read == [frame("A", "users", i) for i in range(self.next_a)]
        assert self.ex.drain_connection("c1") == [] and self.ex.drain_connection("c2") == []
        assert self.ex.subscription_stats("A")["read"] == self.next_a
        assert self.ex.subscription_stats("B")["read"] == self.next_b
        m = self.ex.get_metrics()
        assert (m["messages_read"], m["queued"]) == (self.next_a + self.next_b, 0)


class _Del:
    def __init__(self, action):
        self.action = action
        self.me = self  # a cycle: only the collector frees it

    def __del__(self):
        self.action()


class _Node:
    pass


def _leave_garbage(kind, action):
    """A reference cycle that runs action when the collector frees it."""
    if kind == "__del__":
        _Del(action)
    else:
        node = _Node()
        node.me = node
        weakref.finalize(node, action)


@pytest.fixture
def armed():
    """arm(kind, action): with the collector off, leave a cycle whose finalizer runs action
    and empty the list free list; then switch the collector on with threshold 1, so that
    the next list, tuple or dict allocated (by the entry point) collects the cycle."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    keep = []

    def arm(kind, action):
        gc.collect()
        gc.disable()
        _leave_garbage(kind, action)
        keep.clear()  # (the lists freed here refill the free list)
        keep.extend([] for _ in range(200))  # it holds at most 80
        gc.set_threshold(1)
        gc.enable()

    yield arm
    gc.set_threshold(*threshold)
    if not enabled:
        gc.disable()
    else:
        gc.enable()
    gc.collect()


class Worker:
    """The thread variant: the finalizer hands the inner calls to another thread and waits
    for them with the GIL released."""

    def __init__(self, world):
        self.world = world
        self.go = threading.Event()
        self.done = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            self.go.wait()
            self.go.clear()
            if self.stop:
                return
            try:
                self.world.inner_calls()
            finally:
                self.done.set()

    def action(self):
        if threading.current_thread() is self.thread:  # collected by the worker's own allocation
            self.world.inner_calls()
            return
        self.done.clear()
        self.go.set()
        assert self.done.wait(30), "the worker thread did not finish"
        self.world.ran_inside = self.world.ran_inside or self.world.in_call

    def close(self):
        self.stop = True
        self.go.set()
        self.thread.join(30)


def _outer_calls(world):
    """entry point name -> a call that reads (or publishes) A's messages; returns the frames
    of A it read."""
    ex, fid = world.ex, world.ex._fid

    def publish_then_read(publish):
        def call():
            publish()
            world.next_a += 1
            return []
        return call

    def encode():
        assert E._fq_encode({"a": [[{"b": None}]] * 2}) == b'{"a":[[{"b":null}],[{"b":null}]]}'
        return []

    return {
        "next_event": lambda: [f] if (f := ex.next_event("A")) is not None else [],
        "drain_connection": lambda: ex.drain_connection("c1"),
        "drain_connection_max": lambda: ex.drain_connection("c1", 2),
        "publish_event": publish_then_read(lambda: ex.publish_event("users", "users", {"id": world.next_a})),
        "_fq_next": lambda: [f] if (f := E._fq_next(fid, "A")) is not None else [],
        "_fq_drain": lambda: E._fq_drain(fid, "c1", 0),
        "_fq_publish": publish_then_read(
            lambda: E._fq_publish(fid, "users", "users", '{"id":%d}' % world.next_a)),
        "_fq_encode": encode,
    }


ENTRIES = ["next_event", "drain_connection", "drain_connection_max", "publish_event",
           "_fq_next", "_fq_drain", "_fq_publish", "_fq_encode"]
# The entries that allocate a list after Go has written: the collector runs inside them.
ALLOCATING = {"drain_connection", "drain_connection_max", "_fq_drain"}


def _run(world, entry, kind, action, armed, rounds=6):
    outer = _outer_calls(world)[entry]
    a_read, first_b = [], 0
    for _ in range(rounds):
        armed(kind, action)
        world.in_call = True
        try:
            a_read += outer()
        finally:
            world.in_call = False
        gc.collect()  # the finalizer has run, inside the call or now, or runs on another thread
        assert world.finished.wait(30), "the finalizer never ran"
        world.finished.clear()
        first_b = world.check_inner(first_b)
        world.publish_a()
        world.publish_b()
    a_read += world.ex.drain_connection("c1")
    b_rest = world.ex.drain_connection("c2")
    assert b_rest == [world.b_frame(i) for i in range(first_b, world.next_b)]
    world.check_all_accounted(a_read)
    if GC_IN_ALLOCATION and entry in ALLOCATING:
        assert world.ran_inside, "the collector never ran inside the entry point: the test tests nothing"


@pytest.mark.parametrize("kind", ["__del__", "weakref.finalize"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_finalizer_calling_every_entry_point(entry, kind, armed):
    world = World()
    _run(world, entry, kind, world.inner_calls, armed)
    world.ex.close()


@pytest.mark.parametrize("entry", ENTRIES)
def test_finalizer_calling_every_entry_point_with_large_frames(entry, armed):
    """The finalizer's calls read frames larger than the buffer the entries keep between
    calls (1 MiB): theirs is replaced while the outer call may still be reading it."""
    world = World(backlog=2, blob_size=1_500_000)
    _run(world, entry, "__del__", world.inner_calls, armed, rounds=3)
    world.ex.close()


@pytest.mark.parametrize("entry", ENTRIES)
def test_finalizer_releasing_the_gil_to_a_thread_calling_every_entry_point(entry, armed):
    world = World()
    worker = Worker(world)
    try:
        _run(world, entry, "weakref.finalize", worker.action, armed)
    finally:
        worker.close()
    world.ex.close()


def test_threads_calling_entries_while_a_drain_collects():
    """Nothing unusual in the program: a drain in one thread collects garbage whose
    finalizer makes a gopy call (the GIL is released), while other threads read other
    subscriptions, publish and ask for unknown ids."""
    ex = X(queue_size=100_000)
    conns = 4
    for c in range(conns):
        ex.register_subscription(f"c{c}", f"s{c}", "subscription { users { id } }", user_id="u", tenant_id="t")
    stop = threading.Event()
    errors = []
    got = {c: [] for c in range(conns)}

    def reader(c):
        try:
            while not stop.is_set():
                if c == 0:
                    _leave_garbage("__del__", lambda: ex.get_limits())  # a gopy call: GIL released
                    got[c] += ex.drain_connection(f"c{c}")
                elif c == 1:
                    while (f := ex.next_event(f"s{c}")) is not None:
                        got[c].append(f)
                else:
                    got[c] += ex.drain_connection(f"c{c}", 3)
                try:
                    ex.next_event("unknown")
                except S.SubscriptionNotFound:
                    pass
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threshold = gc.get_threshold()
    gc.set_threshold(1)
    threads = [threading.Thread(target=reader, args=(c,)) for c in range(conns)]
    try:
        for t in threads:
            t.start()
        for i in range(3000):
            ex.publish_event("users", "users", {"id": i})
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        gc.set_threshold(*threshold)
        gc.collect()  # the garbage left behind calls the executor: collect it while it is open
    assert not errors, errors
    for c in range(conns):
        got[c] += ex.drain_connection(f"c{c}")
        assert got[c] == [frame(f"s{c}", "users", i) for i in range(3000)], c
    ex.close()
