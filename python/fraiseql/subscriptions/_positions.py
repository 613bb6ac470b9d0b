"""Positions over every transport.

WebSocket (both subprotocols): a subscribe (graphql-transport-ws) or start
(graphql-ws) payload asks for them in its ``extensions``: ``{"positions":
true}`` has every result carry its event's position in
``payload.extensions.position``; ``{"after": "<a position>"}`` resumes after
it (and implies ``positions``). A position the bus cannot resume from is
refused with an ``error`` message whose ``extensions.code`` is
``POSITION_INVALID`` or ``POSITION_EXPIRED``.

The engine ends a subscription with positions by a final frame whose
payload holds ``errors`` (``POSITION_EXPIRED`` during a catch-up,
``EVENTS_LOST`` after an overflow under ``on_overflow="drop"``): the socket
sends it as an ``error`` message, which ends the operation for the client.

GraphQL over SSE does not use them yet: ``frame_position`` returns None (no
``id:`` field) and ``resume_point`` answers every ``Last-Event-ID`` with
RESUME_EXPIRED, the stream then served live.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .._fraiseql_rs.subscriptions import PositionError

GraphQLErrors = List[Dict[str, Any]]

_PAYLOAD = b'","payload":'
_ERRORS = b'{"errors":'
RESUME_EXPIRED = "RESUME_EXPIRED"


def registration_options(on_overflow: str, payload: Dict[str, Any]) -> Dict[str, Any]:
    """register_subscription's keyword arguments for a subscribe payload; ValueError
    naming what is wrong in its extensions."""
    options: Dict[str, Any] = {}
    if on_overflow == "catch_up":
        options["on_overflow"] = "catch_up"
    extensions = payload.get("extensions")
    if not isinstance(extensions, dict):
        return options
    positions = extensions.get("positions")
    if positions is not None:
        if not isinstance(positions, bool):
            raise ValueError("extensions.positions must be true or false")
        options["positions"] = positions
    after = extensions.get("after")
    if after is not None:
        if not isinstance(after, str):
            raise ValueError("extensions.after must be a position (a string) that a message carried")
        options["after"] = after
    return options


def position_errors(err: PositionError) -> GraphQLErrors:
    """The GraphQL errors of a refused position."""
    return [{"message": str(err), "extensions": {"code": err.code, "position": err.position}}]


def final_frame(frame: bytes, cut: int) -> Optional[Tuple[str, GraphQLErrors]]:
    """(internal id, errors) when frame is the engine's final frame of a subscription,
    else None. cut is where the client's id starts in frame."""
    at = frame.find(_PAYLOAD, cut)
    if at < 0 or not frame.startswith(_ERRORS, at + len(_PAYLOAD)):
        return None
    message = json.loads(frame)
    return message["id"], message["payload"]["errors"]


class ResumePoint(NamedTuple):
    """``after``: the position to register after (None: live only); ``errors``: what the
    client is told first (None: nothing, the resume is exact)."""

    after: Optional[str]
    errors: Optional[GraphQLErrors]


def frame_position(frame: bytes) -> Optional[bytes]:
    """The position of the event in an SSE stream's ``frame``; None while SSE asks for none."""
    return None


def resume_point(executor: Any, last_event_id: str) -> ResumePoint:
    """Where a stream that last saw ``last_event_id`` resumes."""
    return ResumePoint(None, [{
        "message": f"Cannot resume after event {last_event_id!r}: this server keeps no event positions; "
                   "events since then may be missing",
        "extensions": {"code": RESUME_EXPIRED, "lastEventId": last_event_id},
    }])
