"""The two peers the engine is measured against, written for this benchmark.

P1  ``GraphQLCorePeer``: the pipeline Strawberry and Ariadne run. One
    graphql-core ``subscribe()`` per subscriber, each fed from its own
    ``asyncio.Queue`` by a broadcaster-style fan-out; every result is
    serialized to a graphql-transport-ws ``next`` message with json.dumps.

P2  ``PlainExecutor``: a careful pure-Python implementation of the
    engine's own API (register_subscription / publish_event / next_event /
    drain_connection). A dict of subscriptions, a bounded deque per
    subscription, subscriptions grouped by (query, operation, variables) so
    that matching and ``json.dumps`` happen once per distinct query per
    event, the same root-field routing, tenant and user checks and ``where``
    operators as the engine, frames by concatenation. Not a strawman: every
    per-message path is a dict lookup, a deque operation and one bytes
    concatenation.
"""
from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections import deque
from typing import Any, Callable, Dict, List, Optional

from graphql import (
    BooleanValueNode,
    EnumValueNode,
    FieldNode,
    FloatValueNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    VariableNode,
    parse,
    subscribe,
)
from graphql.type import GraphQLScalarType

# ---------------------------------------------------------------------------
# P2: plain pure-Python implementation of the engine's API
# ---------------------------------------------------------------------------

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _value(node: Any, variables: Dict[str, Any]) -> Any:
    """A GraphQL literal (or variable) as a Python value."""
    if isinstance(node, VariableNode):
        return variables.get(node.name.value)
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return float(node.value)
    if isinstance(node, (StringValueNode, EnumValueNode)):
        return node.value
    if isinstance(node, BooleanValueNode):
        return node.value
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, ListValueNode):
        return [_value(v, variables) for v in node.values]
    if isinstance(node, ObjectValueNode):
        return {f.name.value: _value(f.value, variables) for f in node.fields}
    raise ValueError(f"unsupported value {node!r}")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cmp(op: str, want: Any) -> Callable[[Any], bool]:
    if op == "eq":
        return lambda v: v == want
    if op == "neq":
        return lambda v: v != want
    if op in ("gt", "gte", "lt", "lte"):
        import operator
        f = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op]

        def order(v: Any) -> bool:
            if _num(v) and _num(want) or isinstance(v, str) and isinstance(want, str):
                return f(v, want)
            return False
        return order
    if op == "in":
        return lambda v: v in want
    if op == "nin":
        return lambda v: v not in want
    if op == "contains":
        return lambda v: (want in v) if isinstance(v, (str, list)) else False
    if op == "startswith":
        return lambda v: isinstance(v, str) and v.startswith(want)
    if op == "isnull":
        return lambda v: (v is None) == bool(want)
    raise ValueError(f"unknown operator {op}")


_MISSING = object()


def compile_where(where: Dict[str, Any]) -> Callable[[Dict[str, Any]], bool]:
    """A predicate over an event's data for a ``where`` object."""
    preds: List[Callable[[Dict[str, Any]], bool]] = []
    for key, cond in where.items():
        if key in ("AND", "OR"):
            subs = [compile_where(c) for c in cond]
            if key == "AND":
                preds.append(lambda d, subs=subs: all(p(d) for p in subs))
            else:
                preds.append(lambda d, subs=subs: any(p(d) for p in subs))
        elif key == "NOT":
            inner = compile_where(cond)
            preds.append(lambda d, inner=inner: not inner(d))
        else:
            for op, want in cond.items():
                test = _cmp(op, want)
                if op == "isnull":
                    preds.append(lambda d, k=key, t=test: t(d.get(k)))
                else:
                    preds.append(lambda d, k=key, t=test: (v := d.get(k, _MISSING)) is not _MISSING and t(v))
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda d: a(d) and b(d)
    return lambda d: all(p(d) for p in preds)


def _projector(selections: Any) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
    """A function keeping the selected fields of a dict (None: keep all)."""
    if selections is None:
        return None
    fields = []
    for sel in selections.selections:
        if not isinstance(sel, FieldNode):
            continue
        out = sel.alias.value if sel.alias else sel.name.value
        fields.append((out, sel.name.value, _projector(sel.selection_set)))
    if all(sub is None for _, _, sub in fields):
        pairs = [(o, n) for o, n, _ in fields]
        return lambda d: {o: d.get(n) for o, n in pairs}

    def project(d: Dict[str, Any]) -> Dict[str, Any]:
        res = {}
        for o, n, sub in fields:
            v = d.get(n)
            if sub is not None:
                if isinstance(v, dict):
                    v = sub(v)
                elif isinstance(v, list):
                    v = [sub(x) if isinstance(x, dict) else x for x in v]
            res[o] = v
        return res
    return project


class _Plan:
    __slots__ = ("root", "out", "match", "project")

    def __init__(self, query: str, operation_name: Optional[str], variables: Dict[str, Any]) -> None:
        doc = parse(query)
        ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
        op = next(o for o in ops if operation_name is None or (o.name and o.name.value == operation_name))
        field = op.selection_set.selections[0]
        self.root = field.name.value
        self.out = field.alias.value if field.alias else self.root
        where = None
        for arg in field.arguments:
            if arg.name.value == "where":
                where = _value(arg.value, variables)
        self.match = compile_where(where) if where else None
        self.project = _projector(field.selection_set)


class _Sub:
    __slots__ = ("id", "conn", "user", "tenant", "prefix", "queue")

    def __init__(self, sid: str, conn: "_Conn", user: str, tenant: str, queue_size: int) -> None:
        self.id, self.conn, self.user, self.tenant = sid, conn, user, tenant
        self.prefix = _DUMPS({"id": sid, "type": "next"})[:-1].encode() + b',"payload":'
        self.queue: deque = deque(maxlen=queue_size)


class _Conn:
    __slots__ = ("subs",)

    def __init__(self) -> None:
        self.subs: List[_Sub] = []


class _Group:
    __slots__ = ("plan", "members")

    def __init__(self, plan: _Plan) -> None:
        self.plan, self.members = plan, []


class PlainExecutor:
    """P2: the engine's API in plain Python (same semantics, no Go)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._qs = queue_size
        self._subs: Dict[str, _Sub] = {}
        self._conns: Dict[str, _Conn] = {}
        self._groups: Dict[Any, _Group] = {}
        self._by_field: Dict[str, List[_Group]] = {}
        self._seq = 0

    def register_subscription(self, connection_id: str, subscription_id: str, query: str,
                              operation_name: Optional[str] = None,
                              variables: Optional[Dict[str, Any]] = None,
                              user_id: Any = None, tenant_id: Any = None) -> str:
        if subscription_id in self._subs:
            raise ValueError(f"Subscription {subscription_id} already exists")
        key = (query, operation_name, json.dumps(variables or {}, sort_keys=True))
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = _Group(_Plan(query, operation_name, variables or {}))
            self._by_field.setdefault(g.plan.root, []).append(g)
        c = self._conns.get(connection_id)
        if c is None:
            c = self._conns[connection_id] = _Conn()
        s = _Sub(subscription_id, c, str(user_id), str(tenant_id), self._qs)
        c.subs.append(s)
        g.members.append(s)
        self._subs[subscription_id] = s
        return subscription_id

    def publish_event(self, event_type: str, channel: str, data: Dict[str, Any]) -> None:
        self._seq += 1
        seq = self._seq
        tenant = data.get("tenant_id", _MISSING)
        user = data.get("user_id", _MISSING)
        tenant = tenant if tenant is _MISSING else str(tenant)
        user = user if user is _MISSING else str(user)
        groups = self._by_field.get(channel, ())
        if event_type != channel:
            groups = list(groups) + self._by_field.get(event_type, [])
        for g in groups:
            plan = g.plan
            if plan.match is not None and not plan.match(data):
                continue
            payload = None
            for s in g.members:
                if tenant is not _MISSING and tenant != s.tenant:
                    continue
                if user is not _MISSING and user != s.user:
                    continue
                if payload is None:
                    body = plan.project(data) if plan.project else data
                    payload = (seq, _DUMPS({"data": {plan.out: body}}).encode())
                s.queue.append(payload)

    def next_event(self, subscription_id: str) -> Optional[bytes]:
        s = self._subs.get(subscription_id)
        if s is None:
            raise ValueError(f"Subscription not found: {subscription_id}")
        q = s.queue
        if q:
            return s.prefix + q.popleft()[1] + b"}"
        return None

    def drain_connection(self, connection_id: str, max_messages: int = 0) -> List[bytes]:
        c = self._conns.get(connection_id)
        if c is None:
            return []
        subs = c.subs
        if len(subs) == 1:
            s = subs[0]
            p, q = s.prefix, s.queue
            n = len(q) if max_messages <= 0 else min(max_messages, len(q))
            pop = q.popleft
            return [p + pop()[1] + b"}" for _ in range(n)]
        # Merge the queues by event order.
        items = [(seq, i, body) for i, s in enumerate(subs) for seq, body in s.queue]
        items.sort()
        if max_messages > 0:
            items = items[:max_messages]
        out = [subs[i].prefix + body + b"}" for _, i, body in items]
        for _, i, _b in items:
            subs[i].queue.popleft()
        return out

    def complete_subscription(self, subscription_id: str) -> None:
        s = self._subs.pop(subscription_id, None)
        if s is not None:
            s.conn.subs.remove(s)
            for g in self._groups.values():
                if s in g.members:
                    g.members.remove(s)


# ---------------------------------------------------------------------------
# P1: the graphql-core pipeline
# ---------------------------------------------------------------------------

_JSONScalar = GraphQLScalarType("JSON", serialize=lambda v: v)


def _schema(sources: List[asyncio.Queue], fields: List[str], root: str, filtered: bool) -> GraphQLSchema:
    """A schema with one subscription root field fed from per-subscriber queues."""
    obj = GraphQLObjectType("Row", {f: GraphQLField(_JSONScalar) for f in fields})

    async def source(_root: Any, _info: Any, where: Any = None) -> Any:
        q: asyncio.Queue = asyncio.Queue()
        sources.append(q)
        match = compile_where(where) if where else None
        while True:
            ev = await q.get()
            if ev is None:
                return
            if match is None or match(ev):
                yield ev

    args = {"where": GraphQLArgument(_JSONScalar)} if filtered else {}
    sub = GraphQLObjectType("Subscription", {
        root: GraphQLField(obj, args=args, subscribe=source, resolve=lambda ev, _info, **_: ev),
    })
    return GraphQLSchema(query=GraphQLObjectType("Query", {"ok": GraphQLField(GraphQLString)}),
                         subscription=sub)


def run_graphql_core(n: int, events: List[Dict[str, Any]], query: str, root: str,
                     variables_for: Optional[Callable[[int], Dict[str, Any]]] = None) -> Dict[str, Any]:
    """P1: n graphql-core subscriptions, a broadcaster fan-out of events.

    Returns {"deliveries", "seconds"}; the clock covers publishing every
    event and serializing every resulting ``next`` message.
    """
    fields = sorted({k for ev in events[:1] for k in ev})
    return asyncio.run(_p1_main(n, events, query, root, variables_for, fields))


async def _p1_main(n, events, query, root, variables_for, fields):
    sources: List[asyncio.Queue] = []
    schema = _schema(sources, fields, root, variables_for is not None)
    doc = parse(query)
    out: List[bytes] = []
    dumps = json.dumps

    async def consume(sub_id: str, it: Any) -> None:
        async for result in it:
            out.append(dumps({"id": sub_id, "type": "next", "payload": result.formatted},
                             separators=(",", ":")).encode())

    iters = []
    for i in range(n):
        vars_ = variables_for(i) if variables_for else None
        iters.append(await subscribe(schema, doc, variable_values=vars_))
    tasks = [asyncio.create_task(consume(f"sub{i}", it)) for i, it in enumerate(iters)]
    while len(sources) < n:
        await asyncio.sleep(0)
    t0 = time.perf_counter()
    for ev in events:
        for q in sources:  # the broadcaster
            q.put_nowait(ev)
        # Let every subscriber run until the fan-out of this event is done.
        while any(q.qsize() for q in sources):
            await asyncio.sleep(0)
    # Results reach `out` a few loop iterations after their event left the
    # queue (graphql-core's map iterator awaits through tasks): wait until
    # the count stops moving.
    stable = 0
    while stable < 5:
        before = len(out)
        await asyncio.sleep(0)
        stable = stable + 1 if len(out) == before else 0
    expected = len(out)
    dt = time.perf_counter() - t0
    for q in sources:
        q.put_nowait(None)
    await asyncio.gather(*tasks)
    assert out and json.loads(out[0])["type"] == "next"
    return {"deliveries": expected, "seconds": dt, "sample": out[0]}


# Re-exported for run.py's type checks.
__all__ = ["PlainExecutor", "run_graphql_core", "compile_where", "heapq",
           "GraphQLInt", "GraphQLFloat", "GraphQLID", "GraphQLList", "GraphQLNonNull"]
