"""Serving subscriptions: asyncio helpers and the graphql-transport-ws ASGI app."""
