"""Positions on every transport: asking for them, resuming, and the engine's final frames.

WebSocket (both subprotocols): a subscribe (graphql-transport-ws) or start
(graphql-ws) payload asks for them in its ``extensions``: ``{"positions":
true}`` has every result carry its event's position in
``payload.extensions.position``; ``{"after": "<a position>"}`` resumes after
it (and implies ``positions``). A position the bus cannot resume from is
refused with an ``error`` message whose ``extensions.code`` is
``POSITION_INVALID`` or ``POSITION_EXPIRED``.

GraphQL over SSE: every stream registers with positions, and each event's
position is its SSE ``id:`` field (``frame_position``), so that a browser's
``EventSource`` sends it back as ``Last-Event-ID`` when it reconnects; the
``data:`` stays the ExecutionResult the protocol defines, without the
position unless the request's ``extensions`` asked for ``positions``. A
reconnecting stream's ``Last-Event-ID`` becomes ``after=`` (``resume_options``):
the events after it are replayed before the live ones, no gap, no duplicate.
A refused one is told first (``position_errors``: a ``next`` event with
``POSITION_EXPIRED`` or ``POSITION_INVALID``), then the stream is served
live: a stream that ended would only be reopened by ``EventSource`` with the
same id.

The engine ends a subscription with positions by a final frame whose
payload holds ``errors`` (``POSITION_EXPIRED`` during a catch-up,
``EVENTS_LOST`` after an overflow under ``on_overflow="drop"``): a WebSocket
sends it as an ``error`` message, which ends the operation for the client;
an SSE distinct stream ends without ``complete``, so that ``EventSource``
reconnects with ``Last-Event-ID`` and resumes (or is told the position
expired); a single connection stream sends it as the operation's last
``next``, then ``complete``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from .._fraiseql_rs.subscriptions import PositionError

GraphQLErrors = List[Dict[str, Any]]

_PAYLOAD = b'","payload":'
_ERRORS = b'{"errors":'
_POSITION = b',"extensions":{"position":"'  # what the engine appends to a payload
_POSITION_END = b'"}}}'  # the position's, the payload's and the frame's ends


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


def resume_options(last_event_id: Optional[str]) -> Dict[str, Any]:
    """The registration options of an SSE stream: always positions (they are the events'
    ids), and after ``Last-Event-ID`` when the client sent one."""
    if not last_event_id:  # absent, or reset by an event with an empty id
        return {"positions": True}
    return {"positions": True, "after": last_event_id}


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


def frame_position(frame: bytes) -> Optional[Tuple[bytes, int]]:
    """(position, where its extensions start) of the event in an engine frame
    (``{"type":"next","id":...,"payload":{...,"extensions":{"position":"P"}}}``: the
    engine appends them last); None for a frame without one. A position is letters,
    digits, ``:`` and ``-``: a valid SSE ``id``."""
    if not frame.endswith(_POSITION_END):
        return None
    at = frame.rfind(_POSITION)
    if at < 0:
        return None
    return frame[at + len(_POSITION):-len(_POSITION_END)], at
