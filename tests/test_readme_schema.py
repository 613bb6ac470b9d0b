"""The README's "With your schema" example, run as written: Strawberry's str(schema) as the SDL."""
import re
import sys
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def example():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### With your schema"):]
    return section[section.index("```python\n") + 10:section.index("\n```\n")]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="Strawberry 0.327 (the README's example) needs Python 3.10+")
def test_readme_schema_example():
    import strawberry  # noqa: F401  pinned in requirements-test.txt: a missing install fails here
    code = example()
    # Each "# ..." line after a call is what that call gives: a raised error or a value.
    lines = code.splitlines()
    module = types.ModuleType("readme_example")   # Strawberry resolves annotations in it
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    block = []
    for line in lines:
        m = re.match(r"# (ValueError: .*|b'.*')$", line)
        if not m:
            block.append(line)
            continue
        *setup, last = [x for x in block if x.strip()]
        exec("\n".join(setup), namespace)
        block = []
        if m.group(1).startswith("ValueError: "):
            with pytest.raises(ValueError) as e:
                exec(last, namespace)
            assert str(e.value) == m.group(1)[len("ValueError: "):]
        else:
            assert eval(last, namespace) == eval(m.group(1))
    namespace["executor"].close()
    del sys.modules[module.__name__]
