"""Seeded random subscription documents and events, run by graphql-core and by the engine.

The schema-less subset: every object of an event carries its own __typename, fields keep the
type their value has, type conditions name object types, so the result does not depend on a
schema. graphql-core runs each event as subscribe() does (execute() with the event as the root
value) on SDL that declares those types; the engine runs without any schema.
"""
import json
import random
from dataclasses import dataclass, field

from graphql import build_schema, execute, parse, validate

OBJECTS = ("A", "B", "C")
LEAVES = ("s", "n", "b")            # String, Int, Boolean
COMPOSITES = ("o", "l")             # Node, [Node]
FIELDS = "s: String n: Int b: Boolean o: Node l: [Node]"
SDL = "\n".join(
    ["type Query { ok: Boolean }",
     f"interface Node {{ {FIELDS} }}",
     *(f"type {t} implements Node {{ {FIELDS} }}" for t in OBJECTS),
     "type Subscription { feed: Node }"])
SCHEMA = build_schema(SDL)
EVENT_TYPE = "evt"                  # names no type: conditions hold by __typename only


@dataclass
class Case:
    seed: int
    query: str
    variables: dict
    events: list = field(default_factory=list)

    def describe(self):
        return (f"seed {self.seed}\nquery:\n{self.query}\nvariables: {json.dumps(self.variables)}\n"
                f"events: {json.dumps(self.events)}")


class _Gen:
    def __init__(self, rng):
        self.r = rng
        self.var_defs = []          # "$v0: Boolean = true"
        self.variables = {}
        self.used_vars = set()
        self.fragments = []         # (name, type, body) in definition order
        self.used_frags = set()
        self.fields_left = 40

    def condition(self):
        r = self.r.random()
        if r < 0.5:
            return ""
        if r < 0.75:
            return f" @{self.r.choice(('skip', 'include'))}(if: {self.r.choice(('true', 'false'))})"
        name = f"v{len(self.var_defs)}"
        kind = self.r.random()
        if kind < 0.5:
            self.var_defs.append(f"${name}: Boolean!")
            self.variables[name] = self.r.random() < 0.6
        else:
            default = self.r.choice(("true", "false"))
            self.var_defs.append(f"${name}: Boolean = {default}")
            given = self.r.random()
            if given < 0.4:
                self.variables[name] = self.r.random() < 0.6
            elif given < 0.5:
                self.variables[name] = None   # a field error at execution
        self.used_vars.add(name)
        return f" @{self.r.choice(('skip', 'include'))}(if: ${name})"

    def selection(self, ctx, depth, frag_floor=0):
        """A selection set for an object of type ctx ("Node" or an object type)."""
        items = []
        for _ in range(self.r.randint(1, 4)):
            if self.fields_left <= 0:
                break
            self.fields_left -= 1
            kind = self.r.random()
            if kind < 0.45 or depth >= 4:
                name = self.r.choice(LEAVES + ("__typename",))
                alias = f"{name}_x: " if self.r.random() < 0.2 and name != "__typename" else ""
                items.append(f"{alias}{name}{self.condition()}")
            elif kind < 0.7:
                name = self.r.choice(COMPOSITES)
                alias = f"{name}_x: " if self.r.random() < 0.2 else ""
                items.append(f"{alias}{name}{self.condition()} {{ {self.selection('Node', depth + 1)} }}")
            elif kind < 0.87:
                cond = self.fragment_type(ctx)
                on = f"on {cond} " if cond else ""
                items.append(f"... {on}{self.condition().strip()} {{ {self.selection(cond or ctx, depth + 1)} }}")
            else:
                spread = self.spread(ctx, depth, frag_floor)
                if spread:
                    items.append(spread)
        return " ".join(items) or "__typename"

    def fragment_type(self, ctx):
        if ctx != "Node":
            return self.r.choice((ctx, ""))
        return self.r.choice(OBJECTS + ("",))

    def spread(self, ctx, depth, floor):
        # Fragments spread only later ones: no cycles.
        if len(self.fragments) >= 4 and self.r.random() < 0.6:
            choices = [f for f in self.fragments[floor:] if ctx in ("Node", f[1])]
            if choices:
                name = self.r.choice(choices)[0]
                self.used_frags.add(name)
                return f"...{name}{self.condition()}"
        if len(self.fragments) >= 6:
            return None
        name = f"F{len(self.fragments)}"
        typ = ctx if ctx != "Node" else self.r.choice(OBJECTS)
        self.fragments.append((name, typ, None))
        i = len(self.fragments) - 1
        body = self.selection(typ, depth + 1, frag_floor=i + 1)
        self.fragments[i] = (name, typ, body)
        self.used_frags.add(name)
        return f"...{name}{self.condition()}"


def gen_case(seed, invalid_rate=0.03):
    r = random.Random(seed)
    g = _Gen(r)
    root_alias = r.choice(("", "", "r: "))
    body = g.selection("Node", 1)
    if r.random() < invalid_rate:
        g.var_defs.append("$unused: Int")
    if r.random() < invalid_rate:
        g.fragments.append(("Unused", "A", "s"))
    defs = f"({', '.join(g.var_defs)})" if g.var_defs else ""
    parts = [f"subscription{defs} {{ {root_alias}feed {{ {body} }} }}"]
    # Definitions in random order: spreads may come before their fragment.
    frags = list(g.fragments)
    r.shuffle(frags)
    parts += [f"fragment {n} on {t} {{ {b} }}" for n, t, b in frags]
    query = "\n".join(parts)
    events = [gen_object(r, 0) for _ in range(2)]
    return Case(seed, query, g.variables, events)


def gen_object(r, depth):
    obj = {"__typename": r.choice(OBJECTS)}
    if r.random() < 0.8:
        obj["s"] = r.choice(("x", "é", "", None, "a\"b"))
    if r.random() < 0.8:
        obj["n"] = r.choice((0, 1, -7, 2**31 - 1, None))
    if r.random() < 0.8:
        obj["b"] = r.choice((True, False, None))
    if depth < 4 and r.random() < 0.6:
        obj["o"] = gen_object(r, depth + 1) if r.random() < 0.8 else None
    if depth < 4 and r.random() < 0.5:
        obj["l"] = [gen_object(r, depth + 1) if r.random() < 0.85 else None for _ in range(r.randint(0, 3))]
    keys = list(obj)
    r.shuffle(keys)
    return {k: obj[k] for k in keys}


def graphql_core_run(case):
    """("invalid", errors) or ("ok", [formatted result per event])."""
    doc = parse(case.query)
    errors = validate(SCHEMA, doc)
    if errors:
        return "invalid", [e.message for e in errors]
    out = []
    for ev in case.events:
        # What graphql-core's subscribe() does with each event of the source stream.
        result = execute(SCHEMA, doc, root_value={"feed": ev}, variable_values=case.variables)
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            return "invalid", [e.message for e in result.errors]   # variable coercion
        out.append(result.formatted)
    return "ok", out


def ordered(value):
    """value as JSON with objects as lists of pairs: equality then checks key order too."""
    return json.loads(json.dumps(value), object_pairs_hook=list)


def engine_run(executor, case, sub_id):
    try:
        executor.register_subscription("diff", sub_id, case.query, variables=case.variables,
                                       user_id="u", tenant_id="t")
    except ValueError as e:
        return "invalid", [str(e)]
    try:
        out = []
        for ev in case.events:
            executor.publish_event(event_type=EVENT_TYPE, channel="feed", data=ev)
            msg = executor.next_event(sub_id)
            out.append(None if msg is None else json.loads(msg)["payload"])
        return "ok", out
    finally:
        executor.complete_subscription(sub_id)


def compare(executor, case, sub_id):
    """(mismatch, events): a description of how the results differ, or None, and how many
    events both executed (0 when both rejected the document)."""
    want = graphql_core_run(case)
    got = engine_run(executor, case, sub_id)
    if want[0] != got[0]:
        return f"{case.describe()}\ngraphql-core: {want}\nengine:       {got}", 0
    if want[0] == "ok" and ordered(want[1]) != ordered(got[1]):
        return (f"{case.describe()}\ngraphql-core: {json.dumps(want[1])}\n"
                f"engine:       {json.dumps(got[1])}"), 0
    return None, len(want[1]) if want[0] == "ok" else 0
