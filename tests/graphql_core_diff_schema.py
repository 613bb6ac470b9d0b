"""Seeded random documents and events against a schema, run by graphql-core and by the engine
given the same SDL: validation (accept/reject), variable coercion, and results shaped by the
schema (type conditions on interfaces and unions, scalar serialization, non-null propagation)."""
import json
import random
import re

from graphql import build_schema, execute, parse, validate
from graphql.type import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    is_abstract_type,
    is_composite_type,
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
BASE_SDL = SDL
SCHEMA = build_schema(SDL)
ROOTS = ("feed", "a", "u", "n", "ns", "d")
_FIELD = re.compile(r"\b(\w+)(\x00\d+\x00)?: (\[?)(\w+)!?(\]?)!?")


def variant_sdl(v):
    """SDL variant v: the base schema (v = 0) with the nullability of the object types' own
    fields (not those an interface declares) and of the root fields drawn at random."""
    if v == 0:
        return BASE_SDL
    r = random.Random(v)
    blocks = re.split(r"(?=\n(?:type|interface|union|input|enum|scalar) )", BASE_SDL)
    return "".join(_redraw(b, r) if re.match(r"\ntype (A|B|D|Subscription) ", b) else b for b in blocks)


def _redraw(block, r):
    args = []   # field arguments, kept aside: their types stay

    def hide(m):
        args.append(m.group(0))
        return f"\x00{len(args) - 1}\x00"

    def draw(m):
        name, arg, lb, named, rb = m.groups()
        if name in ("id", "name", "A", "B", "D", "Subscription"):
            return m.group(0)
        inner = "!" if lb and r.random() < 0.4 else ""
        outer = "!" if r.random() < 0.35 else ""
        return f"{name}{arg or ''}: {lb}{named}{inner}{rb}{outer}"

    body = _FIELD.sub(draw, re.sub(r"\([^)]*\)", hide, block))
    return re.sub(r"\x00(\d+)\x00", lambda m: args[int(m.group(1))], body)


def use_variant(v):
    """Make SDL variant v the one gen_case and graphql_core_run use; returns its SDL."""
    global SDL, SCHEMA
    SDL = variant_sdl(v)
    SCHEMA = build_schema(SDL)
    return SDL
ALIASES = ("x1", "x2", "id", "n")      # small pool: some documents have conflicting aliases


def _named(t):
    while isinstance(t, (GraphQLNonNull, GraphQLList)):
        t = t.of_type
    return t


class _Gen:
    def __init__(self, r):
        self.r = r
        self.var_defs, self.variables = [], {}
        self.fragments = []
        self.budget = 30

    def directive(self):
        x = self.r.random()
        if x < 0.7:
            return ""
        if x < 0.85:
            return f" @{self.r.choice(('skip', 'include'))}(if: {self.r.choice(('true', 'false'))})"
        name = f"v{len(self.var_defs)}"
        if self.r.random() < 0.5:
            self.var_defs.append(f"${name}: Boolean!")
            self.variables[name] = self.r.choice((True, False, True, None, "yes"))
        else:
            self.var_defs.append(f"${name}: Boolean = {self.r.choice(('true', 'false'))}")
            g = self.r.random()
            if g < 0.4:
                self.variables[name] = self.r.random() < 0.5
            elif g < 0.5:
                self.variables[name] = None
        return f" @{self.r.choice(('skip', 'include'))}(if: ${name})"

    def typed_variable(self):
        """A variable for the root field d's arguments, with a value of the right type or not."""
        name = f"t{len(self.var_defs)}"
        arg, typ, values = self.r.choice((
            ("r", "Range", ({"lo": 1}, {"lo": 1, "hi": None, "colors": ["RED"]}, {"hi": 2}, {"lo": "1"},
                            {"lo": 1, "colors": "RED"}, {"lo": 1, "nope": 2}, 5, {"lo": 1, "colors": ["PINK"]})),
            ("c", "Color", ("RED", "PINK", 1, None)),
            ("i", "Int", (1, 2**31, 1.5, 2.0, "3", True)),
            ("s", "[String]", (["a", None], "a", [1], None)),
        ))
        bang = "!" if self.r.random() < 0.3 else ""
        self.var_defs.append(f"${name}: {typ}{bang}")
        if self.r.random() < 0.85:
            self.variables[name] = self.r.choice(values)
        return f"{arg}: ${name}"

    def selection(self, t, depth, floor=0):
        items = []
        for _ in range(self.r.randint(1, 4)):
            if self.budget <= 0:
                break
            self.budget -= 1
            x = self.r.random()
            if x < 0.6 and not isinstance(t, GraphQLObjectType) and not hasattr(t, "fields"):
                x = 0.7  # a union: only __typename and fragments
            if x < 0.6:
                items.append(self.field(t, depth, floor))
            elif x < 0.85:
                cond = self.r.choice(self.conditions(t))
                on = f"on {cond} " if cond else ""
                inner = SCHEMA.type_map[cond] if cond else t
                items.append(f"... {on}{self.directive().strip()} {{ {self.selection(inner, depth + 1, floor)} }}")
            elif x < 0.95:
                items.append(self.spread(t, depth, floor))
            else:
                items.append("__typename")
        return " ".join(i for i in items if i) or "__typename"

    def conditions(self, t):
        if self.r.random() < 0.03:
            return ["D", "Query"]      # often impossible: validation
        names = [""] + [p.name for p in SCHEMA.get_possible_types(t)] if is_abstract_type(t) else ["", t.name]
        for iface in ("Node", "U"):
            it = SCHEMA.type_map[iface]
            if any(SCHEMA.is_sub_type(it, p) for p in (SCHEMA.get_possible_types(t) if is_abstract_type(t) else [t])):
                names.append(iface)
        return names

    def field(self, t, depth, floor):
        if not hasattr(t, "fields"):
            return "__typename"
        fields = t.fields
        if self.r.random() < 0.02:
            return "nosuchfield"
        names = list(fields)
        if depth >= 4:
            names = [n for n in names if not is_composite_type(_named(fields[n].type))] or names
        name = self.r.choice(names)
        ftype = fields[name].type
        alias = f"{self.r.choice(ALIASES)}: " if self.r.random() < 0.06 else ""
        args = ""
        if name == "name" and self.r.random() < 0.1:
            args = f"(upper: {self.r.choice(('true', 'false', '1'))})"
        sub = ""
        named = _named(ftype)
        if is_composite_type(named):
            if self.r.random() < 0.02:
                sub = ""                # missing selection: validation
            else:
                sub = f" {{ {self.selection(named, depth + 1, floor)} }}"
        elif self.r.random() < 0.01:
            sub = " { x }"              # selection on a leaf: validation
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
        self.fragments[i][2] = self.selection(SCHEMA.type_map[cond], depth + 1, i + 1)
        return f"...{name}{self.directive()}"

    @staticmethod
    def compatible(cond, t):
        c = SCHEMA.type_map[cond]
        ps = set(p.name for p in (SCHEMA.get_possible_types(c) if is_abstract_type(c) else [c]))
        ts = set(p.name for p in (SCHEMA.get_possible_types(t) if is_abstract_type(t) else [t]))
        return bool(ps & ts)


def gen_case(seed):
    r = random.Random(seed)
    g = _Gen(r)
    root = r.choice(ROOTS)
    rtype = SCHEMA.subscription_type.fields[root].type
    named = _named(rtype)
    args = ""
    body = ""
    if is_composite_type(named):
        body = f" {{ {g.selection(named, 1)} }}"
    if root == "d" and r.random() < 0.5:
        body = f" {{ x({g.typed_variable()}) {body[2:]}" if body else body
    if r.random() < 0.02:
        g.var_defs.append("$unused: Int")
    defs = f"({', '.join(g.var_defs)})" if g.var_defs else ""
    parts = [f"subscription{defs} {{ {r.choice(('', 'r: '))}{root}{args}{body} }}"]
    frags = [f for f in g.fragments if f[2] is not None]
    r.shuffle(frags)
    parts += [f"fragment {n} on {c} {{ {b} }}" for n, c, b in frags]
    query = "\n".join(parts)
    events = [gen_value(r, rtype, 0) for _ in range(4)]
    events = [e if isinstance(e, dict) else {"__typename": "A", "v": e} for e in events]
    case = Case(seed, query, g.variables, events)
    case.root = root
    return case


def gen_value(r, t, depth):
    """A JSON value for type t: mostly right, sometimes not (graphql-core's field errors)."""
    if isinstance(t, GraphQLNonNull):
        return gen_value(r, t.of_type, depth) if r.random() < 0.92 else None
    if r.random() < 0.08:
        return None
    if isinstance(t, GraphQLList):
        if r.random() < 0.05:
            return gen_value(r, t.of_type, depth)    # not a list
        return [gen_value(r, t.of_type, depth + 1) for _ in range(r.randint(0, 3 if depth < 3 else 0))]
    if isinstance(t, GraphQLEnumType):
        return r.choice(("RED", "GREEN", "PINK", 1, "BLUE"))
    if isinstance(t, GraphQLScalarType):
        return _scalar(r, t.name)
    if depth >= 4:
        return None
    if is_abstract_type(t):
        wrong = ["D", "Nope", "Color", None] if r.random() < 0.1 else []
        typename = r.choice([p.name for p in SCHEMA.get_possible_types(t)] + wrong)
        obj_type = SCHEMA.type_map.get(typename) if typename else None
    else:
        typename, obj_type = (t.name if r.random() < 0.5 else None), t
    obj = {}
    if typename is not None:
        obj["__typename"] = typename
    if isinstance(obj_type, GraphQLObjectType):
        for name, f in obj_type.fields.items():
            if r.random() < 0.85:
                obj[name] = gen_value(r, f.type, depth + 1)
    keys = list(obj)
    r.shuffle(keys)
    return {k: obj[k] for k in keys}


def _scalar(r, name):
    good = {"Int": (0, 7, -2**31, 2**31 - 1), "Float": (1.5, 0.1, -2.0, 1e20, 3),
            "String": ("x", "é", "", "a'b"), "Boolean": (True, False), "ID": ("id1", 12),
            "JSON": ({"k": [1, "v"]}, [1, 2], "raw")}[name]
    if r.random() < 0.85:
        return r.choice(good)
    return r.choice((2**31, -2**31 - 1, 1.5, 2.0, "12", "x y", True, [1], {"a": 1}, "", 1e300, 0.1, "1e3"))


def graphql_core_run(case):
    """("invalid", messages) at validation, ("coercion", messages) for variables, or
    ("ok", [formatted result per event])."""
    doc = parse(case.query)
    errors = validate(SCHEMA, doc)
    if errors:
        return "invalid", [e.message for e in errors]
    out = []
    for ev in case.events:
        # What graphql-core's subscribe() does with each event of the source stream.
        result = execute(SCHEMA, doc, root_value={r: ev for r in ROOTS}, variable_values=case.variables)
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            return "coercion", [e.message for e in result.errors]
        out.append(result.formatted)
    return "ok", out


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


def compare(executor, case, sub_id):
    """(mismatch or None, events both executed, whether both rejected the document)."""
    want = graphql_core_run(case)
    got = engine_run(executor, case, sub_id)
    if want[0] == "coercion" and got[0] == "invalid":
        # Variable errors are worded as graphql-core words them.
        if all(m in got[1][0] for m in want[1]):
            return None, 0, True
    if want[0] != got[0]:
        return f"{case.describe()}\ngraphql-core: {want}\nengine:       {got}", 0, False
    if want[0] == "ok" and ordered(want[1]) != ordered(got[1]):
        return (f"{case.describe()}\ngraphql-core: {json.dumps(want[1])}\n"
                f"engine:       {json.dumps(got[1])}"), 0, False
    return None, len(want[1]) if want[0] == "ok" else 0, want[0] == "invalid"

