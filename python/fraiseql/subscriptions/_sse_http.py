"""The HTTP side of GraphQL over SSE: the request as hooks see it, the GraphQL
parameters of a GET or POST, media ranges and plain responses."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs

from ._core import Receive, Scope, Send

TOKEN_HEADER = "x-graphql-event-stream-token"
TOKEN_QUERY = "token"
JSON_TYPE = b"application/json; charset=utf-8"
MAX_BODY_BYTES = 1 << 20


class SSERequest:
    """An HTTP request, as ``on_connect`` receives it: ``method``, ``path``,
    ``headers`` (lower-case names; repeated ones joined with ", "),
    ``cookies``, ``query_params`` (the first value of each) and the ASGI
    ``scope``."""

    __slots__ = ("scope", "method", "path", "headers", "cookies", "query_params")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope.get("method", "GET").upper()
        self.path: str = scope.get("path", "")
        headers: Dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name in headers:
                value = headers[name] + ("; " if name == "cookie" else ", ") + value
            headers[name] = value
        self.headers = headers
        self.cookies = _cookies(headers.get("cookie", ""))
        query = scope.get("query_string", b"").decode("latin-1")
        self.query_params: Dict[str, str] = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}

    def __repr__(self) -> str:
        return f"<SSERequest {self.method} {self.path}>"


def _cookies(header: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def media_types(accept: Optional[str]) -> List[str]:
    """The media ranges of an Accept header (without parameters; q=0 left out)."""
    out = []
    for part in (accept or "*/*").split(","):
        kind, *params = part.split(";")
        if any(p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        kind = kind.strip().lower()
        if kind:
            out.append(kind)
    return out


def accepts(accept: Optional[str], acceptable: Iterable[str]) -> bool:
    return any(kind in acceptable for kind in media_types(accept))


class BadRequest(Exception):
    """A request the protocol answers with ``status`` and, when given, a GraphQL error."""

    def __init__(self, status: int, message: Optional[str] = None) -> None:
        super().__init__(message or str(status))
        self.status, self.message = status, message


async def read_body(receive: Receive) -> bytes:
    chunks: List[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest(400, "Missing body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(413, f"Body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_param(params: Dict[str, str], name: str) -> Any:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest(400, f"Invalid {name}: not JSON") from None


async def graphql_params(request: SSERequest, receive: Receive) -> Dict[str, Any]:
    """The GraphQL request of a GET (query parameters) or POST (JSON body), checked as
    the reference handler's ``parseReq`` does; BadRequest(400/413/415) otherwise."""
    if request.method == "GET":
        q = request.query_params
        data: Dict[str, Any] = {"query": q.get("query"), "operationName": q.get("operationName"),
                                "variables": _json_param(q, "variables"),
                                "extensions": _json_param(q, "extensions")}
    elif request.method == "POST" and "application/json" in request.headers.get("content-type", "").lower():
        body = await read_body(receive)
        if not body:
            raise BadRequest(400, "Missing body")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise BadRequest(400, "Unparsable JSON body") from None
        if not isinstance(parsed, dict):
            raise BadRequest(400, "JSON body must be an object")
        data = {key: parsed.get(key) for key in ("query", "operationName", "variables", "extensions")}
    else:
        raise BadRequest(415)
    if data["query"] is None:
        raise BadRequest(400, "Missing query")
    if not isinstance(data["query"], str):
        raise BadRequest(400, "Invalid query")
    for name in ("variables", "extensions"):
        if data[name] is not None and not isinstance(data[name], dict):
            raise BadRequest(400, f"Invalid {name}")
    if data["operationName"] is not None and not isinstance(data["operationName"], str):
        raise BadRequest(400, "Invalid operationName")
    return {key: value for key, value in data.items() if value is not None}


async def respond(send: Send, status: int, body: bytes = b"", content_type: Optional[bytes] = None,
                  headers: Iterable[Tuple[bytes, bytes]] = ()) -> None:
    out = list(headers)
    if content_type is not None:
        out.append((b"content-type", content_type))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def respond_errors(send: Send, status: int, errors: List[Dict[str, Any]],
                         headers: Iterable[Tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"errors": errors}, separators=(",", ":"), ensure_ascii=False).encode()
    await respond(send, status, body, JSON_TYPE, headers)


def stream_headers(scope: Scope) -> List[Tuple[bytes, bytes]]:
    """An event stream's headers: no caching, no buffering by proxies (nginx reads
    X-Accel-Buffering), and keep-alive where HTTP/1 has a Connection header."""
    headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
    if scope.get("http_version", "1.1") in ("1.0", "1.1"):
        headers.append((b"connection", b"keep-alive"))
    return headers
