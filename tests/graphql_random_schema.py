"""Seeded random GraphQL schemas (SDL) for the differential against graphql-core: object, interface
(some implementing others) and union types, enums and a custom scalar, fields of random scalar,
enum, object, list and non-null types with arguments of random input types (input objects, lists,
defaults), and subscription root fields, some with a `where` argument of the engine's filter
language declared as input types (per-field operator inputs, AND/OR/NOT)."""
import random

SCALARS = ("Int", "Float", "String", "Boolean", "ID")
FIELD_NAMES = ("id", "a", "b", "c", "n", "name", "x", "items", "kind")
ARG_NAMES = ("arg", "by", "upto", "mode")
ENUM_VALUES = ("RED", "GREEN", "BLUE", "X", "Y")
# Operators of the engine's where language per scalar, declared as input types.
FILTER_OPS = {
    "Int": ("eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "isnull"),
    "Float": ("eq", "neq", "gt", "gte", "lt", "lte", "isnull"),
    "String": ("eq", "neq", "gt", "lt", "in", "nin", "startswith", "isnull"),
    "Boolean": ("eq", "neq", "isnull"),
    "ID": ("eq", "neq", "in", "isnull"),
}


def unwrap(t):
    """The named type of a type reference written as SDL ("[Int!]!" -> "Int")."""
    return t.strip("[]!")


class _SchemaGen:
    def __init__(self, r):
        self.r = r
        self.enums = {f"E{i}": r.sample(ENUM_VALUES, r.randint(1, 4)) for i in range(r.randint(0, 2))}
        self.customs = ["JSON"] if r.random() < 0.5 else []
        self.objects = [f"T{i}" for i in range(r.randint(1, 5))]
        self.ifaces = [f"I{i}" for i in range(r.randint(0, 3))]
        self.unions = [f"U{i}" for i in range(r.randint(0, 2))]
        self.inputs = {}            # name: [(field, type, default literal or None)], in definition order
        self.filters = {}           # filter input name: (scalar or enum, operators)
        self.blocks = []

    # Types -----------------------------------------------------------------------------------

    def wrap(self, named, list_rate=0.25):
        r = self.r
        t = named + ("!" if r.random() < 0.3 else "")
        if r.random() < list_rate:
            t = f"[{t}]"
            if r.random() < 0.1:
                t = f"[{t}]"
            if r.random() < 0.3:
                t += "!"
        return t

    def output_type(self):
        r = self.r
        if r.random() < 0.55:
            named = r.choice(SCALARS + tuple(self.customs) + tuple(self.enums))
        else:
            named = r.choice(self.objects + self.ifaces + self.unions)
        return self.wrap(named)

    def input_type(self, inputs):
        named = self.r.choice(SCALARS + tuple(self.enums) + tuple(inputs))
        return self.wrap(named, list_rate=0.2)

    # Literals (defaults) ---------------------------------------------------------------------

    def literal(self, t, depth=0, nullable=True):
        """A literal of input type t (SDL), valid for it."""
        r = self.r
        if t.endswith("!"):
            return self.literal(t[:-1], depth, nullable=False)
        if nullable and r.random() < 0.1:
            return "null"
        if t.startswith("["):
            return "[" + ", ".join(self.literal(t[1:-1], depth + 1) for _ in range(r.randint(0, 2))) + "]"
        if t in self.enums:
            return r.choice(self.enums[t])
        if t in self.inputs:
            parts = []
            for name, ft, default in self.inputs[t]:
                if ft.endswith("!") and default is None or r.random() < 0.4 and depth < 2:
                    parts.append(f"{name}: {self.literal(ft, depth + 1)}")
            return "{" + ", ".join(parts) + "}"
        return {"Int": lambda: str(r.choice((0, 1, 3, -2))), "Float": lambda: r.choice(("1.5", "2", "0.1")),
                "String": lambda: r.choice(('"a"', '"b"', '""')), "Boolean": lambda: r.choice(("true", "false")),
                "ID": lambda: r.choice(('"a"', "7"))}[t]()

    # Definitions -----------------------------------------------------------------------------

    def arguments(self, inputs):
        r = self.r
        if r.random() > 0.25:
            return ""
        args = []
        for name in r.sample(ARG_NAMES, r.randint(1, 2)):
            t = self.input_type(inputs)
            default = f" = {self.literal(t)}" if r.random() < 0.25 else ""
            args.append(f"{name}: {t}{default}")
        return f"({', '.join(args)})"

    def gen_inputs(self):
        r = self.r
        for i in range(r.randint(0, 3)):
            name = f"In{i}"
            fields = []
            for fname in r.sample(FIELD_NAMES, r.randint(1, 3)):
                # Earlier inputs only: no cycles of input types.
                t = self.input_type(list(self.inputs))
                default = self.literal(t) if r.random() < 0.2 else None
                fields.append((fname, t, default))
            self.inputs[name] = fields
            self.blocks.append(f"input {name} {{ " + " ".join(
                f"{f}: {t}" + (f" = {d}" if d is not None else "") for f, t, d in fields) + " }")

    def gen_fields(self, names, inputs):
        return [(n, self.arguments(inputs), self.output_type()) for n in names]

    def gen_abstract_and_objects(self):
        r = self.r
        inputs = list(self.inputs)
        iface_fields, iface_parents = {}, {}
        for i, name in enumerate(self.ifaces):
            parents, fields = [], {}
            for p in self.ifaces[:i]:
                new = {f: d for w in [p] + iface_parents[p] for f, d in iface_fields[w].items()}
                if r.random() < 0.25 and not any(f in fields and fields[f] != d for f, d in new.items()):
                    parents += [q for q in [p] + iface_parents[p] if q not in parents]
                    fields.update(new)
            own = [n for n in FIELD_NAMES if n not in fields]
            count = min(len(own), r.randint(1 if not fields else 0, 3))
            for fname, args, t in self.gen_fields(r.sample(own, count), inputs):
                fields[fname] = (args, t)
            iface_fields[name], iface_parents[name] = fields, parents
            self.blocks.append(self.type_block("interface", name, parents, fields))
        for name in self.objects:
            chosen, fields = [], {}
            for iface in r.sample(self.ifaces, min(len(self.ifaces), r.randint(0, 2))):
                wanted = [iface] + iface_parents[iface]
                new = {f: d for w in wanted for f, d in iface_fields[w].items()}
                if any(f in fields and fields[f] != d for f, d in new.items()):
                    continue            # a field of the same name and another type: not both
                chosen += [w for w in wanted if w not in chosen]
                fields.update(new)
            # An implementation may make a nullable field non-null (a subtype).
            fields = {f: (a, t + "!" if not t.endswith("!") and r.random() < 0.2 else t)
                      for f, (a, t) in fields.items()}
            own = [n for n in FIELD_NAMES if n not in fields]
            count = min(len(own), r.randint(1 if not fields else 0, 4))
            for fname, args, t in self.gen_fields(r.sample(own, count), inputs):
                fields[fname] = (args, t)
            self.object_fields[name] = fields
            self.blocks.append(self.type_block("type", name, chosen, fields))
        for name in self.unions:
            members = r.sample(self.objects, r.randint(1, min(3, len(self.objects))))
            self.blocks.append(f"union {name} = {' | '.join(members)}")
        self.iface_fields = iface_fields

    @staticmethod
    def type_block(kind, name, implements, fields):
        imp = f" implements {' & '.join(implements)}" if implements else ""
        return f"{kind} {name}{imp} {{ " + " ".join(f"{f}{a}: {t}" for f, (a, t) in fields.items()) + " }"

    def where_input(self, root_type):
        """A where input for the fields of root_type with a filterable type, or None."""
        fields = self.object_fields.get(root_type) or self.iface_fields.get(root_type) or {}
        parts = []
        for fname, (_, t) in fields.items():
            named = unwrap(t)
            if t.lstrip("[") != t or not (named in FILTER_OPS or named in self.enums):
                continue
            ops = FILTER_OPS.get(named, ("eq", "neq", "in", "nin", "isnull"))
            filt = f"{named}Filter"
            if filt not in self.filters:
                self.filters[filt] = (named, ops)
                self.blocks.append(f"input {filt} {{ " + " ".join(
                    f"{op}: {'Boolean' if op == 'isnull' else f'[{named}]' if op in ('in', 'nin') else named}"
                    for op in ops) + " }")
            parts.append(f"{fname}: {filt}")
        if not parts:
            return None
        name = f"{root_type}Where"
        if name not in self.inputs:
            self.inputs[name] = []
            self.blocks.append(f"input {name} {{ {' '.join(parts)} AND: [{name}!] OR: [{name}!] NOT: {name} }}")
        return name

    def sdl(self):
        r = self.r
        for name, values in self.enums.items():
            self.blocks.append(f"enum {name} {{ {' '.join(values)} }}")
        for name in self.customs:
            self.blocks.append(f"scalar {name}")
        self.gen_inputs()
        self.object_fields = {}
        self.gen_abstract_and_objects()
        roots = []
        for i in range(r.randint(2, 4)):
            # Mostly objects, interfaces and unions: event data is an object, so a root field of
            # another type only ever gets one (and a field error for it).
            composite = self.objects + self.ifaces + self.unions
            t = self.wrap(r.choice(composite)) if r.random() < 0.8 else self.output_type()
            args = ""
            if t.rstrip("!") in self.objects + self.ifaces and r.random() < 0.6:
                where = self.where_input(t.rstrip("!"))
                if where:
                    args = f"(where: {where})"
            roots.append(f"s{i}{args}: {t}")
        self.blocks.append("type Query { ok: Boolean }")
        self.blocks.append(f"type Subscription {{ {' '.join(roots)} }}")
        return "\n".join(self.blocks) + "\n"


def random_sdl(seed):
    """The SDL of random schema number seed."""
    return _SchemaGen(random.Random(seed)).sdl()
