"""An executor with a schema behind the ASGI app: a refused document's error message carries the
GraphQL errors with their locations; results carry field errors in the next payload."""
import json

import pytest
from asgi_helpers import ACK, PONG, Server, init, recv, subscribe, ws

from fraiseql._fraiseql_rs.subscriptions import GraphQLDocumentError, PySubscriptionExecutor
from fraiseql.subscriptions.asgi import GraphQLWSApp

SDL = """
type Query { ok: Boolean }
type User { id: ID! name: String! age: Int }
type Subscription { users: User }
"""


@pytest.fixture(scope="module")
def server():
    executor = PySubscriptionExecutor(schema=SDL)
    srv = Server({"/graphql": GraphQLWSApp(executor)}).start()
    srv.executor = executor
    yield srv
    srv.stop()
    executor.close()


def test_document_error_carries_graphql_errors():
    with PySubscriptionExecutor(schema=SDL) as ex, pytest.raises(GraphQLDocumentError) as info:
        ex.register_subscription("c", "s", "subscription($v: Int) {\n  users { id nmae } }",
                                 user_id="u", tenant_id="t")
    assert isinstance(info.value, ValueError)
    assert info.value.errors == [
        {"message": 'Variable "$v" is never used.', "locations": [{"line": 1, "column": 14}]},
        {"message": 'Cannot query field "nmae" on type "User". Did you mean "name"?',
         "locations": [{"line": 2, "column": 14}]}]
    assert str(info.value).startswith('GraphQL validation error at line 1, column 14: Variable "$v"')


@pytest.mark.asyncio
async def test_transport_ws_error_message_has_locations(server):
    async with ws(server, "/graphql") as conn:
        await init(conn)
        await subscribe(conn, "bad", "subscription { users { id nmae } }")
        assert json.loads(await recv(conn)) == {"type": "error", "id": "bad", "payload": [
            {"message": 'Cannot query field "nmae" on type "User". Did you mean "name"?',
             "locations": [{"line": 1, "column": 27}]}]}
        assert await recv(conn) == PONG
        await subscribe(conn, "v", "subscription($n: Boolean!) { users { id @skip(if: $n) } }")
        assert json.loads(await recv(conn))["payload"] == [{
            "message": "Variable '$n' of required type 'Boolean!' was not provided.",
            "locations": [{"line": 1, "column": 14}]}]
        assert await recv(conn) == PONG
        await subscribe(conn, "ok", "subscription { users { id name } }")
        assert await recv(conn) == PONG
        server.executor.publish_event("e", "users", {"id": 1})
        assert json.loads(await recv(conn)) == {"type": "next", "id": "ok", "payload": {
            "data": {"users": None}, "errors": [{
                "message": "Cannot return null for non-nullable field User.name.",
                "locations": [{"line": 1, "column": 27}], "path": ["users", "name"]}]}}


@pytest.mark.asyncio
async def test_legacy_ws_error_message(server):
    async with ws(server, "/graphql", protocol="graphql-ws") as conn:
        await conn.send('{"type":"connection_init"}')
        assert await recv(conn) == ACK
        assert await recv(conn) == '{"type":"ka"}'
        await conn.send(json.dumps({"type": "start", "id": "2", "payload": {"query": "subscription { nope }"}}))
        assert json.loads(await recv(conn)) == {"type": "error", "id": "2", "payload": {
            "message": 'Cannot query field "nope" on type "Subscription".',
            "locations": [{"line": 1, "column": 16}]}}
