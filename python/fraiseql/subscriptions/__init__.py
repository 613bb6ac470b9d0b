"""Serving subscriptions: asyncio helpers and ASGI apps for WebSocket and SSE.

* ``AsyncExecutor`` (``fraiseql.subscriptions.aio``): ``await next_event_async()``
  and ``async for ... in messages()`` on a ``PySubscriptionExecutor``.
* ``GraphQLWSApp`` (``fraiseql.subscriptions.asgi``): an ASGI app speaking
  graphql-transport-ws and the legacy graphql-ws subprotocol; mount it under
  FastAPI or Starlette.
* ``GraphQLSSEApp`` (``fraiseql.subscriptions.sse``): an ASGI app speaking
  GraphQL over Server-Sent Events (graphql-sse), both modes, on the same
  hooks, limits and shutdown.

Neither needs anything beyond the standard library.
"""
from ._core import Refuse
from ._version import __version__
from .aio import AsyncExecutor, ConnectionWatch
from .asgi import Accept, GraphQLWSApp
from .sse import GraphQLSSEApp, SSERequest

__all__ = ["AsyncExecutor", "ConnectionWatch", "GraphQLWSApp", "GraphQLSSEApp", "SSERequest", "Accept", "Refuse",
           "__version__"]
