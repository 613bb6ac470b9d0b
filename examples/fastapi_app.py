"""FastAPI + fraiseql subscriptions: publish over HTTP, receive over WebSocket.

Run it from the repository root::

    python -m uvicorn examples.fastapi_app:app --port 8000

Then connect a graphql-ws client to ``ws://127.0.0.1:8000/graphql`` with
``connectionParams: {token: "alice-token"}``, subscribe to
``subscription { users { id name } }`` and publish::

    curl -X POST localhost:8000/events -H 'content-type: application/json' \\
         -d '{"channel": "users", "event_type": "userCreated",
              "data": {"id": 1, "name": "Ann", "tenant_id": "acme"}}'

Events carrying ``tenant_id`` (or ``user_id``) reach only subscribers of
that tenant (user); events without them reach every subscriber.

The executor is made in the lifespan, in the worker process, never at
import time: a pre-forking server (gunicorn -k uvicorn.workers.UvicornWorker)
imports the app before it forks.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, Optional

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions import AsyncExecutor, GraphQLWSApp

# A stand-in for real authentication: token -> security context.
TOKENS: Dict[str, Dict[str, str]] = {
    "alice-token": {"user_id": "alice", "tenant_id": "acme"},
    "bob-token": {"user_id": "bob", "tenant_id": "globex"},
}


def on_connect(connection_params: Dict[str, Any], scope: Dict[str, Any]) -> Optional[Dict[str, str]]:
    """The connection_init payload's token decides user and tenant; None refuses (4403)."""
    return TOKENS.get(connection_params.get("token", ""))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.executor = PySubscriptionExecutor()
    yield
    AsyncExecutor(app.state.executor).close()


app = FastAPI(lifespan=lifespan)
# The factory runs on the first WebSocket, after the lifespan made the executor.
graphql_ws = GraphQLWSApp(lambda: app.state.executor, on_connect=on_connect)
# A mount serves ws://host/graphql/ (and below); the route serves ws://host/graphql itself.
app.mount("/graphql", graphql_ws)
app.add_websocket_route("/graphql", graphql_ws)


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


@app.get("/metrics")
async def metrics() -> Dict[str, Any]:
    """The engine's counters (``active`` is the number of live subscriptions)."""
    return app.state.executor.get_metrics()
