"""Where event positions meet GraphQL over SSE.

The engine does not give events positions yet. When it does (an opaque string
per event, and "resume after position P" at registration), two functions here
change and nothing else in the SSE transport:

* ``frame_position(frame)`` returns the position the engine wrote into a
  frame; the stream then writes it as the event's ``id:`` field, so that a
  browser's ``EventSource`` sends it back as ``Last-Event-ID`` when it
  reconnects. Today it returns None and no ``id:`` is written.
* ``resume_point(executor, last_event_id)`` turns a reconnecting stream's
  ``Last-Event-ID`` into the position to pass to the registration (events
  after it are replayed before live ones: no gap, no duplicate), or into
  the documented RESUME_EXPIRED error when the position is no longer
  retained. Today every ``Last-Event-ID`` gets that error: the stream is
  still served, live, after a first ``next`` event carrying it.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

RESUME_EXPIRED = "RESUME_EXPIRED"


class ResumePoint(NamedTuple):
    """``after``: the position to register after (None: live only); ``errors``: what the
    client is told first (None: nothing, the resume is exact)."""

    after: Optional[str]
    errors: Optional[List[Dict[str, Any]]]


def frame_position(frame: bytes) -> Optional[bytes]:
    """The position of the event in ``frame``; None while the engine writes none."""
    return None


def resume_point(executor: Any, last_event_id: str) -> ResumePoint:
    """Where a stream that last saw ``last_event_id`` resumes."""
    return ResumePoint(None, [{
        "message": f"Cannot resume after event {last_event_id!r}: this server keeps no event positions; "
                   "events since then may be missing",
        "extensions": {"code": RESUME_EXPIRED, "lastEventId": last_event_id},
    }])
