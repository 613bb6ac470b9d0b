import asyncio
import itertools
import time

import pytest

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions
_ids = itertools.count()


@pytest.fixture
def s():
    """The subscriptions module, as users import it."""
    return S


@pytest.fixture
def executor():
    ex = S.PySubscriptionExecutor()
    yield ex
    ex.close()


def register(ex, query, sub_id=None, conn="conn1", user="user1", tenant="tenant1", **kw):
    """Register query and return its subscription id."""
    sub_id = sub_id or f"sub{next(_ids)}"
    return ex.register_subscription(conn, sub_id, query, user_id=user, tenant_id=tenant, **kw)


def collect(ex, sub, count, timeout=20.0):
    """Up to count messages of sub, read as they arrive, within timeout seconds."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = ex.next_event(sub, timeout=0.5)
        if msg is not None:
            got.append(msg)
    return got


async def first_steps_run():
    """Return once every task scheduled before this call has run its first step.

    A new task's first step is a ready callback; the loop runs those in order, and the
    one that resumes this coroutine is queued after them. No timing involved."""
    loop = asyncio.get_running_loop()
    turned = loop.create_future()
    loop.call_soon(turned.set_result, None)
    await turned


def drain(ex, sub_id):
    """Every pending message of a subscription, as bytes."""
    out = []
    while (m := ex.next_event(sub_id)) is not None:
        out.append(m)
    return out


@pytest.fixture(scope="module")
def redis_server():
    from servers import RedisServer
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_server():
    from servers import PostgresServer
    server = PostgresServer()
    yield server
    server.stop()
