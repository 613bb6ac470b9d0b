"""Seeded random documents and events against a schema, run by graphql-core and by the engine
given the same SDL: validation (accept/reject), variable and argument coercion, where filters, and
results shaped by the schema (type conditions on interfaces and unions, scalar serialization,
non-null propagation).

graphql-core runs a case as a server built on it would: subscribe() on the SDL, with a subscribe
resolver that yields the events passing the root field's `where` argument (as graphql-core coerced
it, evaluated by where_holds: the engine's documented operators) and each event as the root
field's value. The schemas are random (graphql_random_schema.py), or the fixed SDL below.
"""
import asyncio
import json
import random

from graphql import ExecutionResult, build_schema, parse, subscribe, validate
from graphql.pyutils import Undefined
from graphql.type import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    is_abstract_type,
    is_composite_type,
    specified_scalar_types,
)
from graphql_core_diff import Case, ordered

SDL = '''
enum Color { RED GREEN BLUE }
scalar JSON
interface Node { id: ID! name: String }
type A implements Node {
  id: ID! name(upper: Boolean): String n: Int nn: Int! f: Float s: String! b: Boolean c: Color cc: Color!
  j: JSON a: A an: A! l: [Int] ln: [Int!]! node: Node nodes: [Node] u: U us: [U!]
}
type B implements Node {
  id: ID! name(upper: Boolean): String n: Int f: Float b: Boolean! c: Color a: A node: Node! bs: [B]
}
type D { x(r: Range, c: Color, i: Int, s: [String]): Int d: D s: String ids: [ID] }
union U = A | B | D
input Range { lo: Int! hi: Int = 10 colors: [Color!] }
type Query { ok: Boolean }
type Subscription { feed: Node a: A! u: U n: Int ns: [Int!] d: D }
'''
SCHEMA = build_schema(SDL)
ROOTS = tuple(SCHEMA.subscription_type.fields)
ALIASES = ("x1", "x2", "id", "n", "a")     # small pool: some documents have conflicting aliases
OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "startswith", "isnull")
# Values for leaves: a valid pool, and values of the wrong type or out of range.
INT_LITERALS = ("0", "1", "2", "3", "-1")
BAD_LITERALS = ("2147483648", "1.5", '"3"', "true", "PINK", "{a: 1}")
LITERALS = {"Int": INT_LITERALS, "Float": ("1.5", "2", "0.1", "-2.0"), "String": ('"a"', '"b"', '""', '"é"'),
            "Boolean": ("true", "false"), "ID": ('"a"', '"1"', "7")}


def _named(t):
    while isinstance(t, (GraphQLNonNull, GraphQLList)):
        t = t.of_type
    return t


def _nullable(t):
    return t.of_type if isinstance(t, GraphQLNonNull) else t


class _Gen:
    def __init__(self, schema, r):
        self.schema, self.r = schema, r
        self.var_defs, self.variables = [], {}
        self.fragments = []
        self.budget = 30
        self.args_of = {}           # (field, its arguments' types): the arguments first given

    # Directives and arguments ----------------------------------------------------------------

    def directive(self):
        x = self.r.random()
        if x < 0.7:
            return ""
        if x < 0.85:
            return f" @{self.r.choice(('skip', 'include'))}(if: {self.r.choice(('true', 'false'))})"
        name = f"v{len(self.var_defs)}"
        if self.r.random() < 0.5:
            self.var_defs.append(f"${name}: Boolean!")
            self.variables[name] = self.r.choice((True, False) * 4 + (None, "yes"))
        else:
            self.var_defs.append(f"${name}: Boolean = {self.r.choice(('true', 'false'))}")
            g = self.r.random()
            if g < 0.4:
                self.variables[name] = self.r.random() < 0.5
            elif g < 0.5:
                self.variables[name] = None
        return f" @{self.r.choice(('skip', 'include'))}(if: ${name})"

    def arguments(self, field, where=False):
        """Arguments for field: the required ones (almost always), some of the others."""
        parts = []
        for name, arg in field.args.items():
            required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
            if self.r.random() < (0.97 if required else 0.4 if not where else 0.8):
                value = self.where_value(arg.type, 0) if where and name == "where" else self.value(arg.type, 0)
                parts.append(f"{name}: {value}")
        if field.args and self.r.random() < 0.01:
            parts.append("nope: 1")         # unknown argument: validation
        return f"({', '.join(parts)})" if parts else ""

    def value(self, t, depth):
        """A literal or a variable for input type t."""
        if self.r.random() < 0.25 and depth < 3:
            return self.variable(t)
        return self.literal(t, depth)

    def variable(self, t, exact=False):
        """A variable for input type t: declared as t, mostly; exact: always, and never null."""
        name = f"t{len(self.var_defs)}"
        x = 0 if exact else self.r.random()
        if x < 0.7:
            declared = t
        elif x < 0.9:
            declared = _nullable(t) if isinstance(t, GraphQLNonNull) else GraphQLNonNull(t)
        else:
            declared = specified_scalar_types[self.r.choice(("Int", "String", "Boolean", "ID", "Float"))]
        # A nullable variable with a default may fill a non-null place: then a null or a missing
        # value is an argument error at execution, not a variable error.
        loose = isinstance(t, GraphQLNonNull) and declared is t.of_type
        default = ""
        if not isinstance(declared, GraphQLNonNull) and self.r.random() < (0.7 if loose else 0.2):
            default = f" = {self.literal(declared, 2)}"
        self.var_defs.append(f"${name}: {declared}{default}")
        y = self.r.random()
        if y < (0.6 if loose else 0.85):
            self.variables[name] = self.json(declared, 0)
        elif y < (0.9 if loose else 0.92) and not exact:
            self.variables[name] = None
        return f"${name}"

    def literal(self, t, depth):
        r = self.r
        if isinstance(t, GraphQLNonNull):
            return "null" if r.random() < 0.01 else self.literal(t.of_type, depth)
        if r.random() < 0.05:
            return "null"
        if r.random() < 0.02:
            return r.choice(BAD_LITERALS)
        if isinstance(t, GraphQLList):
            if r.random() < 0.2:
                return self.value(t.of_type, depth + 1)     # one value for a list: coerced to [value]
            return "[" + ", ".join(self.value(t.of_type, depth + 1) for _ in range(r.randint(0, 2))) + "]"
        if isinstance(t, GraphQLEnumType):
            return r.choice(list(t.values) + ["PINK"] if r.random() < 0.05 else list(t.values))
        if isinstance(t, GraphQLInputObjectType):
            parts = []
            for name, f in t.fields.items():
                required = isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
                if r.random() < (0.97 if required else 0.4 if depth < 3 else 0):
                    parts.append(f"{name}: {self.value(f.type, depth + 1)}")
            if r.random() < 0.01:
                parts.append("nope: 1")
            return "{" + ", ".join(parts) + "}"
        return r.choice(LITERALS.get(t.name, ('"raw"', "1", "{k: [1]}", "[1, 2]")))

    def where_value(self, t, depth):
        """A where literal: fields of operators with values from small pools, nested AND/OR/NOT.
        Operators other than eq and neq never get null (the engine refuses it, its filter
        language gives it no meaning), so their variables are non-null."""
        r = self.r
        t = _nullable(t)
        if isinstance(t, GraphQLList):
            return "[" + ", ".join(self.where_value(t.of_type, depth + 1) for _ in range(r.randint(0, 2))) + "]"
        if depth > 2 and isinstance(t, GraphQLInputObjectType) and "AND" in t.fields:
            return "{}"
        parts = []
        for name, f in t.fields.items():
            if r.random() > (0.5 if name not in ("AND", "OR", "NOT") else 0.15):
                continue
            ft = _nullable(f.type)
            if isinstance(ft, GraphQLInputObjectType) or name in ("AND", "OR", "NOT"):
                parts.append(f"{name}: {self.where_value(ft, depth + 1)}")
            elif name in ("eq", "neq") or r.random() < 0.7:
                if r.random() < 0.2:
                    parts.append(f"{name}: {self.variable(GraphQLNonNull(ft), exact=True)}")
                elif name in ("eq", "neq") and r.random() < 0.1:
                    parts.append(f"{name}: null")
                else:
                    parts.append(f"{name}: {self.leaf_literal(ft)}")
        return "{" + ", ".join(parts) + "}"

    def leaf_literal(self, t):
        if isinstance(t, GraphQLList):
            return "[" + ", ".join(self.leaf_literal(t.of_type) for _ in range(self.r.randint(0, 3))) + "]"
        t = _nullable(t)
        if isinstance(t, GraphQLEnumType):
            return self.r.choice(list(t.values))
        return self.r.choice(LITERALS.get(t.name, ('"a"',)))

    def json(self, t, depth):
        """A JSON value for a variable of input type t: mostly valid."""
        r = self.r
        if isinstance(t, GraphQLNonNull):
            return None if r.random() < 0.015 else self.json(t.of_type, depth)
        if r.random() < 0.05:
            return None
        if r.random() < 0.015:
            return r.choice((2**31, 1.5, "3", True, [1], {"a": 1}, "PINK"))
        if isinstance(t, GraphQLList):
            if r.random() < 0.2:
                return self.json(t.of_type, depth + 1)
            return [self.json(t.of_type, depth + 1) for _ in range(r.randint(0, 2))]
        if isinstance(t, GraphQLEnumType):
            return r.choice(list(t.values))
        if isinstance(t, GraphQLInputObjectType):
            out = {}
            for name, f in t.fields.items():
                required = isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
                if r.random() < (0.97 if required else 0.4 if depth < 3 else 0):
                    out[name] = self.json(f.type, depth + 1)
            return out
        return r.choice({"Int": (0, 1, 2, 3), "Float": (1.5, 2, 0.1), "String": ("a", "b", ""),
                         "Boolean": (True, False), "ID": ("a", 7)}.get(t.name, ({"k": 1}, "raw", 2)))

    # Selections ------------------------------------------------------------------------------

    def selection(self, t, depth, floor=0):
        items = []
        for _ in range(self.r.randint(1, 4)):
            if self.budget <= 0:
                break
            self.budget -= 1
            x = self.r.random()
            if x < 0.6 and not hasattr(t, "fields"):
                x = 0.7  # a union: only __typename and fragments
            if x < 0.6:
                items.append(self.field(t, depth, floor))
            elif x < 0.85:
                cond = self.r.choice(self.conditions(t))
                on = f"on {cond} " if cond else ""
                inner = self.schema.type_map[cond] if cond else t
                items.append(f"... {on}{self.directive().strip()} {{ {self.selection(inner, depth + 1, floor)} }}")
            elif x < 0.95:
                items.append(self.spread(t, depth, floor))
            else:
                items.append("__typename")
        return " ".join(i for i in items if i) or "__typename"

    def possible(self, t):
        return self.schema.get_possible_types(t) if is_abstract_type(t) else [t]

    def conditions(self, t):
        """Type conditions for fragments in a selection on t: t, its possible types, the
        abstract types that share one with it, and rarely any other (often impossible)."""
        if self.r.random() < 0.01:
            return [self.r.choice([n for n, d in self.schema.type_map.items()
                                   if is_composite_type(d) and not n.startswith("__")])]
        mine = {p.name for p in self.possible(t)}
        names = ["", t.name] + sorted(mine)
        for name, d in self.schema.type_map.items():
            if is_abstract_type(d) and not name.startswith("__") and mine & {p.name for p in self.possible(d)}:
                names.append(name)
        return names

    def field(self, t, depth, floor):
        if self.r.random() < 0.005:
            return "nosuchfield"
        fields = t.fields
        names = list(fields)
        if depth >= 4:
            names = [n for n in names if not is_composite_type(_named(fields[n].type))] or names
        name = self.r.choice(names)
        f = fields[name]
        alias = f"{self.r.choice(ALIASES)}: " if self.r.random() < 0.06 else ""
        sub = ""
        named = _named(f.type)
        if is_composite_type(named):
            if self.r.random() >= 0.01:             # else a missing selection: validation
                sub = f" {{ {self.selection(named, depth + 1, floor)} }}"
        elif self.r.random() < 0.005:
            sub = " { x }"                          # a selection on a leaf: validation
        # The same field selected twice with other arguments does not merge (validation): most
        # selections of a field repeat its first arguments.
        key = (name, tuple((n, str(a.type)) for n, a in f.args.items()))
        if key in self.args_of and self.r.random() < 0.9:
            args = self.args_of[key]
        else:
            args = self.arguments(f)
            self.args_of.setdefault(key, args)
        return f"{alias}{name}{args}{self.directive()}{sub}"

    def spread(self, t, depth, floor):
        candidates = [f for f in self.fragments[floor:] if f[2] is not None and self.compatible(f[1], t)]
        if candidates and self.r.random() < 0.5:
            return f"...{self.r.choice(candidates)[0]}{self.directive()}"
        if len(self.fragments) >= 5:
            return ""
        name = f"F{len(self.fragments)}"
        cond = self.r.choice([c for c in self.conditions(t) if c] or [t.name])
        self.fragments.append([name, cond, None])
        i = len(self.fragments) - 1
        self.fragments[i][2] = self.selection(self.schema.type_map[cond], depth + 1, i + 1)
        return f"...{name}{self.directive()}"

    def compatible(self, cond, t):
        ps = {p.name for p in self.possible(self.schema.type_map[cond])}
        return bool(ps & {p.name for p in self.possible(t)})


def gen_case(seed, schema=SCHEMA):
    r = random.Random(seed)
    g = _Gen(schema, r)
    root = r.choice(list(schema.subscription_type.fields))
    rdef = schema.subscription_type.fields[root]
    named = _named(rdef.type)
    body = f" {{ {g.selection(named, 1)} }}" if is_composite_type(named) else ""
    args = g.arguments(rdef, where=True)
    if r.random() < 0.02:
        g.var_defs.append("$unused: Int")
    defs = f"({', '.join(g.var_defs)})" if g.var_defs else ""
    parts = [f"subscription{defs} {{ {r.choice(('', 'r: '))}{root}{args}{body} }}"]
    frags = [f for f in g.fragments if f[2] is not None]
    r.shuffle(frags)
    parts += [f"fragment {n} on {c} {{ {b} }}" for n, c, b in frags]
    filtered = set()
    if "where" in rdef.args:
        filtered = {n for n in _nullable(rdef.args["where"].type).fields if n not in ("AND", "OR", "NOT")}
    events = [gen_value(r, schema, rdef.type, 0, filtered) for _ in range(4)]
    # Event data is an object: other values are wrapped (the root field then gets that object).
    events = [e if isinstance(e, dict) else {"v": e} for e in events]
    case = Case(seed, "\n".join(parts), g.variables, events)
    case.root = root
    return case


def gen_value(r, schema, t, depth, filtered=()):
    """A JSON value for type t: mostly right, sometimes not (graphql-core's field errors). The
    fields in filtered (those a where argument may test) get values of their own type or null."""
    if isinstance(t, GraphQLNonNull):
        return gen_value(r, schema, t.of_type, depth) if r.random() < 0.95 else None
    if r.random() < 0.08:
        return None
    if isinstance(t, GraphQLList):
        if r.random() < 0.05:
            return gen_value(r, schema, t.of_type, depth)    # not a list
        return [gen_value(r, schema, t.of_type, depth + 1) for _ in range(r.randint(0, 3 if depth < 3 else 0))]
    if isinstance(t, GraphQLEnumType):
        return r.choice(list(t.values)) if r.random() < 0.9 else r.choice(("PINK", 1))
    if isinstance(t, GraphQLScalarType):
        return _scalar(r, t.name)
    if depth >= 4:
        return None
    if is_abstract_type(t):
        # Names of no possible type: unknown, an object elsewhere, an interface, an enum.
        others = [n for n, d in schema.type_map.items() if not n.startswith("__")
                  and (is_abstract_type(d) or isinstance(d, GraphQLEnumType))]
        wrong = ["Nope", "Query", None] + r.sample(others, min(2, len(others))) if r.random() < 0.07 else []
        # An interface nobody implements can only be resolved wrongly.
        typename = r.choice([p.name for p in schema.get_possible_types(t)] + wrong or ["Nope", None])
        obj_type = schema.type_map.get(typename) if typename else None
    else:
        typename, obj_type = (t.name if r.random() < 0.5 else None), t
    obj = {}
    if typename is not None:
        obj["__typename"] = typename
    if isinstance(obj_type, GraphQLObjectType):
        for name, f in obj_type.fields.items():
            if r.random() < 0.85:
                if name in filtered:
                    obj[name] = _filtered_value(r, _nullable(f.type))
                else:
                    obj[name] = gen_value(r, schema, f.type, depth + 1)
    keys = list(obj)
    r.shuffle(keys)
    return {k: obj[k] for k in keys}


def _filtered_value(r, t):
    if r.random() < 0.15:
        return None
    if isinstance(t, GraphQLEnumType):
        return r.choice(list(t.values))
    return r.choice({"Int": (0, 1, 2, 3, -1), "Float": (1.5, 2, 0.1, -2.0), "String": ("a", "b", "", "é", "ab"),
                     "Boolean": (True, False), "ID": ("a", "1")}[t.name])


def _scalar(r, name):
    good = {"Int": (0, 7, -2**31, 2**31 - 1), "Float": (1.5, 0.1, -2.0, 1e20, 3),
            "String": ("x", "é", "", "a'b"), "Boolean": (True, False), "ID": ("id1", 12),
            }.get(name, ({"k": [1, "v"]}, {"b": 1, "a": {"d": 2, "c": None}}, [1, 2], "raw"))
    if r.random() < 0.9:
        return r.choice(good)
    return r.choice((2**31, -2**31 - 1, 1.5, 2.0, "12", "x y", True, [1], {"a": 1}, "", 1e300, 0.1, "1e3"))


# The where filter, as the engine documents its operators: a missing or null value matches only
# eq null, isnull true and in [..., null]; neq needs a value of the same JSON type; order
# operators compare two numbers or two strings.

def _same_kind(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float))
    return type(a) is type(b)


def _equal(value, want):
    if want is None or value is None:
        return value is None and want is None
    return _same_kind(value, want) and value == want


def _operator_holds(op, want, value):
    if op == "eq":
        return _equal(value, want)
    if op == "isnull":
        return (value is None) == want
    if op == "in":
        return any(_equal(value, w) for w in want)
    if value is None:
        return False
    if op == "neq":
        return want is None or _same_kind(value, want) and value != want
    if op == "nin":
        return not any(_equal(value, w) for w in want)
    if op == "startswith":
        return isinstance(value, str) and value.startswith(want)
    if not _same_kind(value, want) or not isinstance(value, (int, float, str)) or isinstance(value, bool):
        return False
    return {"gt": value > want, "gte": value >= want, "lt": value < want, "lte": value <= want}[op]


def where_holds(where, obj):
    """Whether the event data obj passes where (graphql-core's coerced argument)."""
    for key, cond in where.items():
        if key == "AND" and not all(where_holds(w, obj) for w in cond):
            return False
        if key == "OR" and not any(where_holds(w, obj) for w in cond):
            return False
        if key == "NOT" and where_holds(cond, obj):
            return False
        if key not in ("AND", "OR", "NOT"):
            if not all(_operator_holds(op, want, obj.get(key)) for op, want in cond.items()):
                return False
    return True


def graphql_core_run(case, schema=SCHEMA):
    """("invalid", messages) at validation, ("coercion", messages) for variables or the root
    field's arguments, or ("ok", [formatted result, or None when where filtered the event out,
    per event])."""
    doc = parse(case.query)
    errors = validate(schema, doc)
    if errors:
        return "invalid", [e.message for e in errors]
    passed = []

    async def events(field_name, where):
        for ev in case.events:
            passed.append(where is None or where_holds(where, ev))
            if passed[-1]:
                yield {field_name: ev}

    def source(_root, info, **args):
        return events(info.field_name, args.get("where"))

    async def run():
        stream = await subscribe(schema, doc, variable_values=case.variables, subscribe_field_resolver=source)
        if isinstance(stream, ExecutionResult):
            return stream
        return [r.formatted async for r in stream]

    results = asyncio.run(run())
    if isinstance(results, ExecutionResult):
        return "coercion", [e.message for e in results.errors]
    it = iter(results)
    return "ok", [next(it) if p else None for p in passed]


def engine_run(executor, case, sub_id):
    try:
        executor.register_subscription("diff", sub_id, case.query, variables=case.variables,
                                       user_id="u", tenant_id="t")
    except ValueError as e:
        return "invalid", [str(e)]
    try:
        out = []
        for ev in case.events:
            executor.publish_event(event_type="evt", channel=case.root, data=ev)
            msg = executor.next_event(sub_id)
            out.append(None if msg is None else json.loads(msg)["payload"])
        return "ok", out
    finally:
        executor.complete_subscription(sub_id)


def compare(executor, case, sub_id, schema=SCHEMA, sdl=SDL):
    """(a description of how the results differ or None, graphql-core's outcome)."""
    want = graphql_core_run(case, schema)
    got = engine_run(executor, case, sub_id)
    if want[0] == "coercion" and got[0] == "invalid":
        # Request errors (variables, the root field's arguments) are worded as graphql-core
        # words them; the engine refuses the document at registration.
        if all(m in got[1][0] for m in want[1]):
            return None, want
    describe = f"schema:\n{sdl}\n{case.describe()}" if sdl != SDL else case.describe()
    if want[0] != got[0]:
        return f"{describe}\ngraphql-core: {want}\nengine:       {got}", want
    if want[0] == "ok" and ordered(want[1]) != ordered(got[1]):
        return (f"{describe}\ngraphql-core: {json.dumps(want[1])}\n"
                f"engine:       {json.dumps(got[1])}"), want
    return None, want
