"""FastAPI + fraiseql subscriptions: publish over HTTP, receive over WebSocket or SSE.

Run it from the repository root::

    python -m uvicorn examples.fastapi_app:app --port 8000

Then connect a graphql-ws client to ``ws://127.0.0.1:8000/graphql`` with
``connectionParams: {token: "alice-token"}``, subscribe to
``subscription { users { id name } }`` and publish::

    curl -X POST localhost:8000/events -H 'content-type: application/json' \\
         -d '{"channel": "users", "event_type": "userCreated",
              "data": {"id": 1, "name": "Ann", "tenant_id": "acme"}}'

The same path serves GraphQL over Server-Sent Events (graphql-sse, both
modes) to plain HTTP requests, authenticated by ``Authorization: Bearer
<token>`` or the ``session`` cookie; ``/live`` is a page that sets that
cookie (a stand-in for a login) and shows the events with ``EventSource``.

Events carrying ``tenant_id`` (or ``user_id``) reach only subscribers of
that tenant (user); events without them reach every subscriber. Only admins
may subscribe to ``audit``; ``/metrics`` is the Prometheus exposition (it
needs the ``prometheus`` extra).

The executor is made in the lifespan, in the worker process, never at
import time: a pre-forking server (gunicorn -k uvicorn.workers.UvicornWorker)
imports the app before it forks.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import AsyncExecutor, GraphQLSSEApp, GraphQLWSApp, Refuse, SSERequest
from fraiseql.subscriptions.asgi import WSConnection
from fraiseql.subscriptions.prometheus import SubscriptionsCollector

# A stand-in for real authentication: token -> security context and roles.
TOKENS: Dict[str, Dict[str, Any]] = {
    "alice-token": {"user_id": "alice", "tenant_id": "acme", "roles": ["admin"]},
    "bob-token": {"user_id": "bob", "tenant_id": "globex", "roles": []},
}


def on_connect(connection_params: Dict[str, Any], scope: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The connection_init payload's token decides user and tenant; None refuses (4403)."""
    return TOKENS.get(connection_params.get("token", ""))


def on_connect_sse(request: SSERequest) -> Optional[Dict[str, Any]]:
    """A bearer token (fetch clients) or the session cookie (a browser's EventSource):
    none is 401, an unknown one 403."""
    auth = request.headers.get("authorization", "")
    token = auth[len("Bearer "):] if auth.startswith("Bearer ") else request.cookies.get("session")
    if not token:
        raise Refuse(401, "Missing credentials")
    return TOKENS.get(token)


def on_subscribe(connection: WSConnection, payload: Dict[str, Any]) -> Optional[List[Dict[str, Any]]]:
    """A role check: only admins may subscribe to the audit trail."""
    if "audit" in payload["query"] and "admin" not in connection.info["roles"]:
        return [{"message": "audit needs the admin role", "extensions": {"code": "FORBIDDEN"}}]
    return None  # accepted as asked


metrics_registry = CollectorRegistry()
collector = SubscriptionsCollector()
metrics_registry.register(collector)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.executor = PySubscriptionExecutor()
    collector.add("main", app.state.executor)
    yield
    # Sockets get their pending messages and a complete for each subscription first.
    await graphql_ws.shutdown(timeout=5.0)
    await graphql_sse.shutdown(timeout=5.0)
    collector.remove("main")
    app.state.executor.close()


app = FastAPI(lifespan=lifespan)
# The factory runs on the first WebSocket, after the lifespan made the executor.
graphql_ws = GraphQLWSApp(lambda: app.state.executor, on_connect=on_connect, on_subscribe=on_subscribe,
                          max_subscriptions_per_connection=100, on_overflow="drop")
# ws://host/graphql. Router methods: FastAPI 0.115 through today's releases (Starlette 0.41
# through 1.x) all have them (FastAPI's app.add_websocket_route is gone in Starlette 1.x).
app.router.add_websocket_route("/graphql", graphql_ws)
# Plain HTTP on the same path: GraphQL over SSE. Every method goes to the app (it answers 405 itself).
graphql_sse = GraphQLSSEApp(lambda: app.state.executor, on_connect=on_connect_sse, on_subscribe=on_subscribe,
                            max_subscriptions_per_connection=100, on_overflow="drop")
app.router.add_route("/graphql", graphql_sse, include_in_schema=False)


class Event(BaseModel):
    channel: str
    event_type: str
    data: Dict[str, Any]


@app.post("/events")
async def publish(event: Event) -> Dict[str, bool]:
    """A mutation's side effect: publish to every matching subscriber.

    The awaitable publish waits for Redis or PostgreSQL off the event loop,
    so a slow bus never stalls the WebSockets."""
    try:
        await AsyncExecutor(app.state.executor).publish_event_async(event.event_type, event.channel, event.data)
    except (TypeError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"published": True}


@app.get("/live")
async def live() -> HTMLResponse:
    """A page that subscribes with EventSource; the cookie stands in for a login."""
    page = HTMLResponse(Path(__file__).with_name("live.html").read_text(encoding="utf-8"))
    page.set_cookie("session", "alice-token", httponly=True, samesite="strict")
    return page


@app.get("/metrics")
async def metrics() -> Response:
    """The engine's metrics in the Prometheus text format."""
    return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)
