"""Serving subscriptions: asyncio helpers and the graphql-transport-ws ASGI app.

* ``AsyncExecutor`` (``fraiseql.subscriptions.aio``): ``await next_event_async()``
  and ``async for ... in messages()`` on a ``PySubscriptionExecutor``.
* ``GraphQLWSApp`` (``fraiseql.subscriptions.asgi``): an ASGI app speaking
  graphql-transport-ws and the legacy graphql-ws subprotocol; mount it under
  FastAPI or Starlette.

Neither needs anything beyond the standard library.
"""
from ._version import __version__
from .aio import AsyncExecutor, ConnectionWatch
from .asgi import Accept, GraphQLWSApp

__all__ = ["AsyncExecutor", "ConnectionWatch", "GraphQLWSApp", "Accept", "__version__"]
