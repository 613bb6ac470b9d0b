"""GraphQLSSEApp under uvicorn over real HTTP (httpx): every status code of the
graphql-sse reference handler, the exact bytes of both modes, malformed
requests, hooks, keep-alives, resuming and shutdown.

The test thread publishes straight into the shared executor. A distinct
stream's first comment comes once its subscription is registered; a single
connection mode POST answers 202 once registered.
"""
import asyncio
import json
import logging
import socket
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from asgi_helpers import Server
from sse_helpers import SSE, TOKEN, active, next_event, stream, wait_until

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import Accept, GraphQLSSEApp, Refuse, SSERequest

# uvicorn 0.34 still drives the websockets library's legacy API.
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

Q = "subscription { users { id name } }"
LOGGER = "fraiseql.subscriptions"
USERS = {"alice": Accept("alice", "acme", info={"roles": {"admin"}}),
         "bob": Accept("bob", "globex", info={"roles": set()})}


def on_connect(request: SSERequest):
    """Bearer token or a session cookie; no credentials is 401, an unknown one 403."""
    auth = request.headers.get("authorization", "")
    name = auth[len("Bearer "):] if auth.startswith("Bearer ") else request.cookies.get("session")
    if name is None:
        raise Refuse(401, "Missing credentials")
    if name == "boom":
        raise LookupError("on_connect failed on purpose")
    return USERS.get(name)


def on_subscribe(connection, params):
    if "audit" in params["query"] and "admin" not in connection.info["roles"]:
        return [{"message": "audit needs the admin role", "extensions": {"code": "FORBIDDEN"}}]
    return None


@pytest.fixture(scope="module")
def server():
    executor = PySubscriptionExecutor()
    srv = Server({
        "/sse": GraphQLSSEApp(executor, on_connect=on_connect, on_subscribe=on_subscribe),
        "/open": GraphQLSSEApp(executor),
        "/ka": GraphQLSSEApp(executor, keepalive=0.05),
        "/limit1": GraphQLSSEApp(executor, max_subscriptions_per_connection=1),
    })
    srv.executor = executor
    srv.start()
    yield srv
    srv.stop()
    executor.close()


@pytest_asyncio.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as c:
        yield c
    wait_until(lambda: active(server.executor) == 0, "every subscription to end")


ALICE = {"authorization": "Bearer alice"}
BOB = {"authorization": "Bearer bob"}


def publish(server, data, channel="users"):
    server.executor.publish_event("userCreated", channel, data)


def error_body(response):
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return [e["message"] for e in response.json()["errors"]]


# ---- distinct connections mode ---------------------------------------------------------------

async def test_post_streams_each_message_as_next(server, client):
    async with stream(client, "POST", "/sse", json={"query": Q}, headers=ALICE) as s:
        r = s.response
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        assert r.headers["connection"] == "keep-alive"
        assert await s.next() == ":"
        publish(server, {"id": 1, "name": "Ann \u00e9\u65e5", "secret": "s"})
        publish(server, {"id": 2, "name": "Bo"})
        assert await s.events(2) == [next_event('{"data":{"users":{"id":1,"name":"Ann \u00e9\u65e5"}}}'),
                                     next_event('{"data":{"users":{"id":2,"name":"Bo"}}}')]


async def test_get_with_query_parameters_and_variables(server, client):
    query = 'subscription S($id: ID) { users(id: $id) { id } }'
    url = f"/sse?query={quote(query)}&operationName=S&variables={quote(json.dumps({'id': 7}))}"
    async with stream(client, "GET", url, headers=ALICE) as s:
        assert s.response.status_code == 200 and await s.next() == ":"
        publish(server, {"id": 6, "name": "no"})
        publish(server, {"id": 7, "name": "yes"})
        assert await s.events(1) == [next_event('{"data":{"users":{"id":7}}}')]


async def test_cookie_authenticates_and_tenants_are_kept_apart(server, client):
    cookie = {"cookie": "theme=dark; session=alice"}
    async with stream(client, "POST", "/sse", json={"query": Q}, headers=cookie) as a, \
            stream(client, "POST", "/sse", json={"query": Q}, headers=BOB) as b:
        assert await a.next() == ":" and await b.next() == ":"
        publish(server, {"id": 1, "name": "acme only", "tenant_id": "acme"})
        publish(server, {"id": 2, "name": "globex only", "tenant_id": "globex"})
        publish(server, {"id": 3, "name": "all"})
        assert await a.events(2) == [next_event('{"data":{"users":{"id":1,"name":"acme only"}}}'),
                                     next_event('{"data":{"users":{"id":3,"name":"all"}}}')]
        assert await b.events(2) == [next_event('{"data":{"users":{"id":2,"name":"globex only"}}}'),
                                     next_event('{"data":{"users":{"id":3,"name":"all"}}}')]


async def test_invalid_document_is_reported_in_the_stream_then_complete(client):
    async with stream(client, "POST", "/sse", json={"query": "subscription { users { id }"}, headers=ALICE) as s:
        assert s.response.status_code == 200
        first, last = await s.ended()
        assert first.startswith('event: next\ndata: {"errors":[{"message":"GraphQL syntax error')
        assert last == "event: complete\ndata:"


async def test_on_subscribe_refusal_is_reported_in_the_stream_then_complete(client):
    async with stream(client, "POST", "/sse", json={"query": "subscription { audit { id } }"}, headers=BOB) as s:
        assert await s.ended() == [
            next_event('{"errors":[{"message":"audit needs the admin role","extensions":{"code":"FORBIDDEN"}}]}'),
            "event: complete\ndata:"]


@pytest.mark.parametrize("headers, status, message", [
    ({}, 401, "Missing credentials"),
    ({"authorization": "Bearer mallory"}, 403, "Forbidden"),
    ({"authorization": "Bearer boom"}, 500, "Internal server error"),
])
async def test_on_connect_refusals(client, caplog, headers, status, message):
    caplog.set_level(logging.INFO, logger=LOGGER)
    r = await client.post("/sse", json={"query": Q}, headers={**SSE, **headers})
    assert r.status_code == status and error_body(r) == [message]
    assert ("www-authenticate" in r.headers) == (status == 401)
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if status == 500:
        (record,) = [r for r in caplog.records if "on_connect raised" in r.getMessage()]
        assert record.levelno == logging.WARNING and record.exc_info[0] is LookupError
    else:
        assert any(r.getMessage() == f"POST /sse: refused by on_connect ({status})" for r in caplog.records)


@pytest.mark.parametrize("kw, status, message", [
    ({"json": {}}, 400, "Missing query"),
    ({"json": {"query": 1}}, 400, "Invalid query"),
    ({"json": {"query": Q, "variables": [1]}}, 400, "Invalid variables"),
    ({"json": {"query": Q, "extensions": "x"}}, 400, "Invalid extensions"),
    ({"json": {"query": Q, "operationName": 3}}, 400, "Invalid operationName"),
    ({"json": [Q]}, 400, "JSON body must be an object"),
    ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, "Unparsable JSON body"),
    ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "Missing body"),
    ({"content": b"query=x", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415, None),
    ({"content": b'{"query":"' + b"x" * (1 << 20) + b'"}', "headers": {"content-type": "application/json"}},
     413, "Body larger than 1048576 bytes"),
])
async def test_malformed_post(client, kw, status, message):
    headers = {**SSE, **kw.pop("headers", {})}
    r = await client.post("/open", headers=headers, **kw)
    assert r.status_code == status
    if message is None:
        assert r.content == b""
    else:
        assert error_body(r) == [message]


@pytest.mark.parametrize("query, message", [
    ("", "Missing query"),
    (f"query={quote(Q)}&variables=%7Bnot", "Invalid variables: not JSON"),
    (f"query={quote(Q)}&variables=%5B1%5D", "Invalid variables"),
    (f"query={quote(Q)}&extensions=1", "Invalid extensions"),
])
async def test_malformed_get(client, query, message):
    r = await client.get(f"/open?{query}", headers=SSE)
    assert r.status_code == 400 and error_body(r) == [message]


async def test_keepalive_comments(client):
    async with stream(client, "POST", "/ka", json={"query": Q}) as s:
        assert await s.take(3) == [":", ":", ":"]


async def test_accept_with_several_media_ranges_gets_a_stream(server, client):
    headers = {"accept": "application/json;q=0.5, text/event-stream"}
    async with client.stream("POST", "/open", json={"query": Q}, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")


async def test_client_leaving_ends_its_subscription(server, client):
    async with stream(client, "POST", "/open", json={"query": Q}) as s:
        assert await s.next() == ":"
        assert active(server.executor) == 1
    wait_until(lambda: active(server.executor) == 0, "the subscription to end")


async def test_each_event_id_is_its_position_and_data_stays_the_result(server, client):
    async with stream(client, "POST", "/open", json={"query": Q}) as s:
        assert await s.next() == ":"
        publish(server, {"id": 1, "name": "a"})
        publish(server, {"id": 2, "name": "b"})
        assert await s.events(2) == [next_event('{"data":{"users":{"id":1,"name":"a"}}}'),
                                     next_event('{"data":{"users":{"id":2,"name":"b"}}}')]
        first, second = s.ids
        assert first.startswith("m") and first.split(":")[0] == second.split(":")[0]
        assert int(second.split(":")[1]) > int(first.split(":")[1])
    # Asked for in the request's extensions, the position is in the result too.
    async with stream(client, "POST", "/open", json={"query": Q, "extensions": {"positions": True}}) as s:
        assert await s.next() == ":"
        publish(server, {"id": 3, "name": "c"})
        [event] = await s.events(1)
        assert event == next_event('{"data":{"users":{"id":3,"name":"c"}},"extensions":{"position":"%s"}}'
                                   % s.ids[0])


async def test_last_event_id_resumes_without_gap_or_duplicate(server, client):
    async with stream(client, "POST", "/open", json={"query": Q}) as s:
        assert await s.next() == ":"
        for i in (1, 2, 3):
            publish(server, {"id": i, "name": f"n{i}"})
        live = await s.events(3)
        ids = list(s.ids)
    publish(server, {"id": 4, "name": "during the cut"})
    publish(server, {"id": 5, "name": "n5", "tenant_id": "other"})  # never this stream's
    async with stream(client, "POST", "/open", json={"query": Q}, headers={"last-event-id": ids[0]}) as s:
        assert await s.events(3) == live[1:] + [next_event('{"data":{"users":{"id":4,"name":"during the cut"}}}')]
        assert s.ids[:2] == ids[1:]
        publish(server, {"id": 6, "name": "live"})
        assert await s.events(1) == [next_event('{"data":{"users":{"id":6,"name":"live"}}}')]
        assert "RESUME" not in s.raw.decode() and "POSITION" not in s.raw.decode()
    assert server.executor.get_metrics()["resumes"] >= 1


@pytest.mark.parametrize("last_event_id", ["42", "m0123456789abcdef:1"])  # malformed; another epoch
async def test_a_refused_last_event_id_is_told_then_live_events(server, client, last_event_id):
    async with stream(client, "POST", "/open", json={"query": Q}, headers={"last-event-id": last_event_id}) as s:
        first = await s.next()
        assert not first.startswith("id:")  # the error keeps the client's Last-Event-ID
        error = json.loads(first.removeprefix("event: next\ndata: "))["errors"][0]
        assert error["extensions"] == {"code": "POSITION_INVALID", "position": last_event_id}
        assert "not one of this bus" in error["message"]
        assert await s.next() == ":"
        publish(server, {"id": 5, "name": "live"})
        assert await s.events(1) == [next_event('{"data":{"users":{"id":5,"name":"live"}}}')]
        assert s.ids[0]


@pytest.mark.parametrize("headers", [{}, {"last-event-id": ""}], ids=["no-last-event-id", "an-empty-one"])
@pytest.mark.parametrize("after, error", [
    ("nope", {"code": "POSITION_INVALID", "position": "nope"}),  # refused by the bus
    ("", None),  # refused by the engine: not a position at all
])
async def test_a_refused_extensions_after_is_a_refused_subscription(client, headers, after, error):
    """The request's own after= ends the stream as any refused subscription does (its
    error, then complete); only a Last-Event-ID, which EventSource would send again on
    the next reconnect, is told and then served live. An empty one is none."""
    body = {"query": Q, "extensions": {"after": after}}
    async with stream(client, "POST", "/open", json=body, headers=headers) as s:
        messages = await s.ended()
    assert len(messages) == 2 and messages[1] == "event: complete\ndata:"
    (got,) = json.loads(messages[0].removeprefix("event: next\ndata: "))["errors"]
    if error is None:
        assert got == {"message": "after must not be empty"}
    else:
        assert got["extensions"] == error


async def test_an_expired_last_event_id_is_told_then_live_events():
    executor = PySubscriptionExecutor(history_size=2)
    srv = Server({"/open": GraphQLSSEApp(executor)})
    srv.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}", timeout=5) as client:
            async with stream(client, "POST", "/open", json={"query": Q}) as s:
                assert await s.next() == ":"
                executor.publish_event("userCreated", "users", {"id": 1, "name": "a"})
                await s.events(1)
                seen = s.ids[0]
            for i in range(2, 6):  # the history keeps 2: what followed `seen` is gone
                executor.publish_event("userCreated", "users", {"id": i, "name": "x"})
            async with stream(client, "POST", "/open", json={"query": Q}, headers={"last-event-id": seen}) as s:
                error = json.loads((await s.next()).removeprefix("event: next\ndata: "))["errors"][0]
                assert error["extensions"] == {"code": "POSITION_EXPIRED", "position": seen}
                assert await s.next() == ":"
                executor.publish_event("userCreated", "users", {"id": 9, "name": "live"})
                assert await s.events(1) == [next_event('{"data":{"users":{"id":9,"name":"live"}}}')]
            assert executor.get_metrics()["positions_expired"] == 1
    finally:
        srv.stop()
        executor.close()


async def test_single_connection_stream_carries_ids_and_resumes_an_operation(server, client):
    token = await reserve(client)
    auth = {TOKEN: token}
    async with stream(client, "GET", "/sse", headers=auth) as s:
        assert await s.next() == ":"
        r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": "a"}}, headers=auth)
        assert r.status_code == 202
        publish(server, {"id": 1, "name": "Ann"})
        publish(server, {"id": 2, "name": "Bo"})
        assert await s.events(2) == [next_event('{"id":"a","payload":{"data":{"users":{"id":1,"name":"Ann"}}}}'),
                                     next_event('{"id":"a","payload":{"data":{"users":{"id":2,"name":"Bo"}}}}')]
        first = s.ids[0]
        r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": "b", "after": first}},
                              headers=auth)
        assert r.status_code == 202
        assert await s.events(1) == [next_event('{"id":"b","payload":{"data":{"users":{"id":2,"name":"Bo"}}}}')]
        assert s.ids[2] == s.ids[1]
        r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": "c", "after": "nope"}},
                              headers=auth)
        assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "POSITION_INVALID"


async def test_websocket_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /open HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 403")


# ---- single connection mode -----------------------------------------------------------------

async def reserve(client, path="/sse", headers=ALICE):
    r = await client.put(path, headers=headers)
    assert r.status_code == 201 and r.headers["content-type"] == "text/plain; charset=utf-8"
    return r.text


async def test_single_connection_two_operations_stop_one(server, client):
    token = await reserve(client)
    assert len(token) >= 32
    auth = {TOKEN: token}
    async with stream(client, "GET", "/sse", headers=auth) as s:
        assert s.response.status_code == 200 and s.response.headers["x-accel-buffering"] == "no"
        assert await s.next() == ":"
        # An id beyond ASCII is written as UTF-8 in every event, as the data is.
        for op, query in (("a", Q), ("bé", "subscription { users { name } }")):
            r = await client.post("/sse", json={"query": query, "extensions": {"operationId": op}}, headers=auth)
            assert (r.status_code, r.content) == (202, b"")
        publish(server, {"id": 1, "name": "Ann"})
        assert await s.events(2) == [
            next_event('{"id":"a","payload":{"data":{"users":{"id":1,"name":"Ann"}}}}'),
            next_event('{"id":"bé","payload":{"data":{"users":{"name":"Ann"}}}}')]
        r = await client.delete("/sse?operationId=a", headers=auth)
        assert (r.status_code, r.content) == (200, b"")
        assert await s.events(1) == ['event: complete\ndata: {"id":"a"}']
        publish(server, {"id": 2, "name": "Bo"})
        assert await s.events(1) == [next_event('{"id":"bé","payload":{"data":{"users":{"name":"Bo"}}}}')]
        r = await client.delete("/sse?operationId=nope", headers=auth)  # unknown operation: 200, no event
        assert r.status_code == 200
        publish(server, {"id": 3, "name": "Cy"})
        assert await s.events(1) == [next_event('{"id":"bé","payload":{"data":{"users":{"name":"Cy"}}}}')]
        # the token in the query string works as well as in the header
        r = await client.delete(f"/sse?operationId={quote('bé')}&token={token}")
        assert r.status_code == 200
        assert await s.events(1) == ['event: complete\ndata: {"id":"bé"}']


async def test_operation_before_the_stream_opens_is_flushed_on_open(server, client):
    token = await reserve(client)
    r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": "early"}}, headers={TOKEN: token})
    assert r.status_code == 202
    publish(server, {"id": 9, "name": "queued"})
    async with stream(client, "GET", f"/sse?token={token}") as s:
        assert await s.events(1) == [next_event('{"id":"early","payload":{"data":{"users":{"id":9,"name":"queued"}}}}')]


async def test_operation_stopped_before_the_stream_opens_is_gone_when_it_opens(server, client):
    token = await reserve(client)
    auth = {TOKEN: token}
    for op in ("stopped", "kept"):
        r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": op}}, headers=auth)
        assert r.status_code == 202
    r = await client.delete("/sse?operationId=stopped", headers=auth)
    assert (r.status_code, r.content) == (200, b"")  # no stream yet to tell it on
    publish(server, {"id": 9, "name": "after the stop"})
    async with stream(client, "GET", "/sse", headers=auth) as s:
        assert await s.events(1) == [
            next_event('{"id":"kept","payload":{"data":{"users":{"id":9,"name":"after the stop"}}}}')]


async def test_put_with_a_token_of_the_client_then_409(client):
    r = await client.put("/sse", headers={**ALICE, TOKEN: "my-token.1"})
    assert (r.status_code, r.text) == (201, "my-token.1")
    r = await client.put("/sse?token=my-token.1", headers=ALICE)
    assert r.status_code == 409 and error_body(r) == ["Stream already registered"]
    r = await client.put("/sse", headers={**ALICE, TOKEN: "bad token"})
    assert r.status_code == 400 and error_body(r) == ["Invalid token: 1 to 128 of A-Z a-z 0-9 . _ ~ -"]


async def test_second_stream_of_a_reservation_is_409(client):
    token = await reserve(client)
    async with stream(client, "GET", "/sse", headers={TOKEN: token}) as s:
        assert await s.next() == ":"
        r = await client.get("/sse", headers={**SSE, TOKEN: token})
        assert r.status_code == 409 and error_body(r) == ["Stream already open"]


@pytest.mark.parametrize("headers, status", [({"accept": "application/json"}, 406), ({"accept": "text/plain"}, 201),
                                             ({"accept": "text/*"}, 201), ({}, 201)])
async def test_put_accept(client, headers, status):
    r = await client.put("/sse", headers={**ALICE, **headers})
    assert r.status_code == status
    if status == 406:
        assert r.content == b""


async def test_put_refused_by_on_connect(client):
    r = await client.put("/sse")
    assert r.status_code == 401 and error_body(r) == ["Missing credentials"]
    r = await client.put("/sse", headers={"authorization": "Bearer mallory"})
    assert r.status_code == 403 and error_body(r) == ["Forbidden"]


async def test_operation_errors(server, client):
    token = await reserve(client, headers=BOB)  # not an admin
    auth = {TOKEN: token}
    async with stream(client, "GET", "/sse", headers=auth) as s:
        assert await s.next() == ":"
        post = lambda body, **h: client.post("/sse", json=body, headers={**auth, **h})  # noqa: E731
        r = await post({"query": Q})
        assert r.status_code == 400 and error_body(r) == ["Operation ID is missing"]
        r = await post({"query": Q, "extensions": {"operationId": "x"}}, accept="text/html")
        assert (r.status_code, r.content) == (406, b"")
        r = await post({"query": Q, "extensions": {"operationId": "x"}})
        assert r.status_code == 202
        r = await post({"query": Q, "extensions": {"operationId": "x"}})
        assert r.status_code == 409 and error_body(r) == ["Operation with ID already exists"]
        r = await post({"query": "subscription { audit { id } }", "extensions": {"operationId": "y"}})
        assert r.status_code == 400 and r.json() == {
            "errors": [{"message": "audit needs the admin role", "extensions": {"code": "FORBIDDEN"}}]}
        r = await post({"query": "subscription {", "extensions": {"operationId": "z"}})
        assert r.status_code == 400 and error_body(r)[0].startswith("GraphQL syntax error")
        r = await client.post("/sse", content=b"x", headers={**auth, "content-type": "text/plain"})
        assert (r.status_code, r.content) == (415, b"")
        r = await client.delete("/sse", headers=auth)
        assert r.status_code == 400 and error_body(r) == ["Operation ID is missing"]
        # the operation over GET, with its parameters in the query string
        r = await client.get(f"/sse?query={quote(Q)}&extensions={quote(json.dumps({'operationId': 'g'}))}",
                             headers=auth)
        assert r.status_code == 202
        publish(server, {"id": 3, "name": "C"})
        assert await s.events(2) == [
            next_event('{"id":"x","payload":{"data":{"users":{"id":3,"name":"C"}}}}'),
            next_event('{"id":"g","payload":{"data":{"users":{"id":3,"name":"C"}}}}')]


async def test_limit_per_stream(client):
    token = await reserve(client, "/limit1", {})
    auth = {TOKEN: token}
    r = await client.post("/limit1", json={"query": Q, "extensions": {"operationId": "1"}}, headers=auth)
    assert r.status_code == 202
    r = await client.post("/limit1", json={"query": Q, "extensions": {"operationId": "2"}}, headers=auth)
    assert r.status_code == 400 and error_body(r) == [
        "Too many subscriptions on this connection: the limit is 1 (max_subscriptions_per_connection)"]
    async with stream(client, "GET", "/limit1", headers=auth) as s:  # opened so that the reservation ends
        assert await s.next() == ":"


@pytest.mark.parametrize("method, path, headers", [
    ("POST", "/sse", {}), ("POST", "/sse", {TOKEN: "unknown"}), ("GET", "/sse", {}),
    ("DELETE", "/sse?operationId=a", {}), ("DELETE", "/sse?operationId=a&token=unknown", {}),
])
async def test_no_stream_is_404(client, method, path, headers):
    r = await client.request(method, path, headers=headers, json={"query": Q} if method == "POST" else None)
    assert r.status_code == 404 and error_body(r) == ["Stream not found"]


@pytest.mark.parametrize("method", ["PATCH", "HEAD", "OPTIONS"])
async def test_other_methods_are_405_with_allow(client, method):
    r = await client.request(method, "/sse")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST, PUT, DELETE"


async def test_reservation_not_opened_in_time_is_removed():
    # The app is built here, in the test that relies on its reservation_timeout (the
    # default, 30 s, is past wait_until's bound).
    executor = PySubscriptionExecutor()
    app = GraphQLSSEApp(executor, reservation_timeout=0.05)
    srv = Server({"/expire": app})
    srv.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}", timeout=5) as client:
            token = await reserve(client, "/expire", {})
            r = await client.post("/expire", json={"query": Q, "extensions": {"operationId": "a"}},
                                  headers={TOKEN: token})
            assert r.status_code in (202, 404)  # 404 when it already expired
            wait_until(lambda: token not in app.reservations and not app.connections, "the reservation to expire")
            r = await client.get("/expire", headers={TOKEN: token})
            assert r.status_code == 404
            wait_until(lambda: active(executor) == 0, "its operation to end")
    finally:
        srv.stop()
        executor.close()


async def test_stream_end_ends_the_reservation_and_its_operations(server, client):
    app = server.apps["/sse"]
    token = await reserve(client)
    async with stream(client, "GET", "/sse", headers={TOKEN: token}) as s:
        assert await s.next() == ":"
        r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": "a"}}, headers={TOKEN: token})
        assert r.status_code == 202 and active(server.executor) == 1
    wait_until(lambda: token not in app.reservations and active(server.executor) == 0, "the reservation to end")
    r = await client.post("/sse", json={"query": Q, "extensions": {"operationId": "b"}}, headers={TOKEN: token})
    assert r.status_code == 404


# ---- shutdown -----------------------------------------------------------------------------------

async def test_shutdown_flushes_completes_and_ends_every_stream(server):
    executor = server.executor
    app = GraphQLSSEApp(executor)
    server.apps["/shutdown"] = app
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        token = await reserve(client, "/shutdown", {})
        async with stream(client, "POST", "/shutdown", json={"query": Q}) as distinct, \
                stream(client, "GET", "/shutdown", headers={TOKEN: token}) as single:
            assert await distinct.next() == ":" and await single.next() == ":"
            r = await client.post("/shutdown", json={"query": Q, "extensions": {"operationId": "op"}},
                                  headers={TOKEN: token})
            assert r.status_code == 202
            unopened = await reserve(client, "/shutdown", {})
            r = await client.post("/shutdown", json={"query": Q, "extensions": {"operationId": "q"}},
                                  headers={TOKEN: unopened})
            assert r.status_code == 202 and active(executor) == 3

            async def publish_then_shutdown():
                executor.publish_event("userCreated", "users", {"id": 1, "name": "last"})
                await app.shutdown(timeout=5)

            await server.run(publish_then_shutdown)
            assert await distinct.ended() == [next_event('{"data":{"users":{"id":1,"name":"last"}}}'),
                                              "event: complete\ndata:"]
            assert await single.ended() == [
                next_event('{"id":"op","payload":{"data":{"users":{"id":1,"name":"last"}}}}'),
                'event: complete\ndata: {"id":"op"}']
        assert active(executor) == 0 and not app.reservations and not app.connections
        r = await client.post("/shutdown", json={"query": Q}, headers=SSE)
        assert r.status_code == 503 and error_body(r) == ["Server is shutting down"]


async def test_single_connection_operation_ended_by_the_engine_gets_its_errors_then_complete(server):
    executor = PySubscriptionExecutor(queue_size=2)
    app = GraphQLSSEApp(executor)
    server.apps["/lost"] = app
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            token = await reserve(client, "/lost", {})
            async with stream(client, "GET", "/lost", headers={TOKEN: token}) as s:
                assert await s.next() == ":"
                r = await client.post("/lost", json={"query": Q, "extensions": {"operationId": "a"}},
                                      headers={TOKEN: token})
                assert r.status_code == 202

                async def overflow():
                    for n in range(5):  # on the server's loop: the writer cannot run in between
                        executor.publish_event("userCreated", "users", {"id": n, "name": "x"})

                await server.run(overflow)
                events = await s.events(4)
                assert events[:2] == [next_event('{"id":"a","payload":{"data":{"users":{"id":%d,"name":"x"}}}}' % n)
                                      for n in range(2)]
                lost = json.loads(events[2].removeprefix("event: next\ndata: "))
                assert lost["id"] == "a" and s.ids[2] == ""
                [error] = lost["payload"]["errors"]
                assert error["extensions"] == {"code": "EVENTS_LOST", "position": s.ids[1]}
                assert events[3] == 'event: complete\ndata: {"id":"a"}'
                wait_until(lambda: active(executor) == 0, "the operation to be removed")
                # The operation resumes after the position the error names.
                r = await client.post("/lost", json={"query": Q, "extensions": {"operationId": "b",
                                                                                 "after": s.ids[1]}},
                                      headers={TOKEN: token})
                assert r.status_code == 202
                assert await s.events(3) == [
                    next_event('{"id":"b","payload":{"data":{"users":{"id":%d,"name":"x"}}}}' % n) for n in (2, 3, 4)]
    finally:
        executor.close()


async def test_slow_stream_is_ended_without_complete(server):
    executor = PySubscriptionExecutor(queue_size=2)
    app = GraphQLSSEApp(executor, on_overflow="close", overflow_check_interval=0.01)
    server.apps["/slow"] = app
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
            async with stream(client, "POST", "/slow", json={"query": Q}) as s:
                assert await s.next() == ":"

                async def overflow():
                    for n in range(5):  # on the server's loop: the writer cannot run in between
                        executor.publish_event("userCreated", "users", {"id": n, "name": "x"})

                await server.run(overflow)
                # What the queue held (the engine keeps the oldest for a stream with positions),
                # then the end without complete: the client reconnects with its Last-Event-ID.
                events = await s.ended()
                everything = [next_event('{"data":{"users":{"id":%d,"name":"x"}}}' % n) for n in range(5)]
                assert 1 <= len(events) <= 2 and events == everything[:len(events)]
                last = s.ids[-1]
            wait_until(lambda: not app.connections, "the slow stream to be removed")
            async with stream(client, "POST", "/slow", json={"query": Q}, headers={"last-event-id": last}) as s:
                assert await s.events(5 - len(events)) == everything[len(events):]
    finally:
        executor.close()


async def test_options_are_checked():
    executor = object()
    for bad in (0, None):  # a reservation always expires
        with pytest.raises(ValueError, match="^reservation_timeout must be a positive number$"):
            GraphQLSSEApp(executor, reservation_timeout=bad)
    with pytest.raises(ValueError, match="keepalive"):
        GraphQLSSEApp(executor, keepalive=-1)
    with pytest.raises(ValueError, match="on_overflow"):
        GraphQLSSEApp(executor, on_overflow="block")
    with pytest.raises(ValueError, match="401 or 403"):
        Refuse(404)


async def test_stream_headers_leave_out_connection_on_http2():
    from fraiseql.subscriptions._sse_http import stream_headers
    assert (b"connection", b"keep-alive") in stream_headers({"http_version": "1.1"})
    assert [name for name, _ in stream_headers({"http_version": "2"})] == [
        b"content-type", b"cache-control", b"x-accel-buffering"]


# ---- the HTTP side, as on_connect sees a request ---------------------------------------------

async def test_error_bodies_are_utf8_not_ascii_escapes():
    app = GraphQLSSEApp(object(), on_connect=lambda request: Refuse(403, "Accès refusé"))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/sse", "query_string": b"",
             "headers": [(b"accept", b"text/event-stream")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 403
    assert sent[1]["body"] == '{"errors":[{"message":"Accès refusé"}]}'.encode()


async def test_request_headers_cookies_and_query_parameters():
    from fraiseql.subscriptions._sse_http import SSERequest
    scope = {"method": "post", "path": "/sse", "query_string": b"token=&a=1&a=2",
             # HTTP/2 may send each cookie in a header of its own (RFC 9113 8.2.3)
             "headers": [(b"Cookie", b"session=alice; flag; =nameless"), (b"cookie", b'session=bob; theme="dark"'),
                         (b"X-Tag", b"one"), (b"x-tag", b"two")]}
    request = SSERequest(scope)
    assert (request.method, request.path) == ("POST", "/sse")
    assert request.headers == {"cookie": 'session=alice; flag; =nameless; session=bob; theme="dark"',
                               "x-tag": "one, two"}
    assert request.cookies == {"session": "alice", "theme": "dark"}  # the first of a name; no value, no name: left out
    assert request.query_params == {"token": "", "a": "1"}  # blank values kept; the first of each


async def test_media_ranges_refused_with_q_0_are_left_out():
    from fraiseql.subscriptions._sse_http import accepts, media_types
    assert media_types("text/event-stream;q=0.5, application/json; q=0, text/plain;q = 0.000") == [
        "text/event-stream"]
    assert accepts("text/event-stream; q=0.9", ["text/event-stream"])
    assert not accepts("text/event-stream;q=0", ["text/event-stream"])


async def test_body_up_to_the_limit_in_one_or_several_messages():
    from fraiseql.subscriptions._sse_http import MAX_BODY_BYTES, BadRequest, read_body

    def receiver(*messages):
        queue = [*messages, {"type": "http.disconnect"}]

        async def receive():
            return queue.pop(0)
        return receive

    # more_body is optional: without it the message is the last.
    assert await read_body(receiver({"type": "http.request", "body": b"{}"})) == b"{}"
    half = b"x" * (MAX_BODY_BYTES // 2)
    whole = receiver({"type": "http.request", "body": half, "more_body": True}, {"type": "http.request", "body": half})
    assert await read_body(whole) == half + half  # exactly the limit
    over = receiver({"type": "http.request", "body": half, "more_body": True},
                    {"type": "http.request", "body": half + b"x"})
    with pytest.raises(BadRequest) as info:
        await read_body(over)
    assert (info.value.status, info.value.message) == (413, f"Body larger than {MAX_BODY_BYTES} bytes")


async def test_refuse_in_a_websocket_on_connect_closes_4403_with_its_message(server):
    from asgi_helpers import closed_with, ws

    from fraiseql.subscriptions import GraphQLWSApp

    def refuse(params, scope):
        raise Refuse(401, "token expired")

    server.apps["/ws-refuse"] = GraphQLWSApp(server.executor, on_connect=refuse)
    async with ws(server, "/ws-refuse") as conn:
        await conn.send('{"type":"connection_init"}')
        assert await closed_with(conn) == (4403, "token expired")


async def test_stream_ending_while_on_subscribe_runs_is_204_and_leaves_nothing(server, client):
    async def close_first(connection, params):
        await connection.close()  # the stream ends meanwhile, and its cleanup finishes
        while not connection._run_task.done():
            await asyncio.sleep(0)
        return None

    server.apps["/race"] = GraphQLSSEApp(server.executor, on_subscribe=close_first)
    token = await reserve(client, "/race", {})
    async with stream(client, "GET", "/race", headers={TOKEN: token}) as s:
        assert await s.next() == ":"
        r = await client.post("/race", json={"query": Q, "extensions": {"operationId": "a"}}, headers={TOKEN: token})
        assert (r.status_code, r.content) == (204, b"")
        assert await s.ended() == []
    wait_until(lambda: active(server.executor) == 0 and not server.apps["/race"].connections, "nothing left")
