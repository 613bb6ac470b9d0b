"""The entry points run on threads with small C stacks (threading.stack_size(32 KiB) is the
smallest Python allows): the encoder's stack use does not grow with the nesting of the data,
and nesting deeper than it handles goes to the standard library's encoder, as json does.
Each case runs in a child process, so that a stack overflow fails the test instead of ending
the run."""
import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, sys, threading
    from fraiseql import _fraiseql_rs
    S = _fraiseql_rs.subscriptions
    E = S._fast(S._native.engine())
    STDLIB = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    depth, what, stack = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ex = S.PySubscriptionExecutor()
    ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")

    def nested(d):
        v = [d]
        for _ in range(d - 1):
            v = [v]
        return {"id": d, "deep": v}

    out = {}

    def run():
        value = nested(depth)
        out["json"] = json.dumps(value, separators=(",", ":"))
        if what == "encode":
            got = E._fq_encode(value)
            out["encode"] = "stdlib" if got is NotImplemented else got.decode()
            out["stdlib"] = STDLIB(value)
        else:
            try:
                ex.publish_event("users", "users", value)
                out["frame"] = ex.next_event("s").decode()
            except Exception as err:
                out["error"] = f"{type(err).__name__}: {err}"

    threading.stack_size(stack * 1024)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    print(json.dumps(out))
""")


def child(depth, what, stack):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(depth), what, str(stack)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


# json.dumps itself overflows a 32 KiB stack at about 190 levels on CPython 3.13, 195 on 3.9
# and 3.10, 250 on 3.11: deeper data, up to and beyond what the encoder handles (200), is tried
# on 64 KiB.
CASES = [(150, 32), (190, 64), (199, 64), (210, 64)]


@pytest.mark.parametrize("depth, stack", CASES)
def test_encoder_on_a_small_stack(depth, stack):
    out = child(depth, "encode", stack)
    assert out["json"] == out["stdlib"]
    if depth < 200:
        assert out["encode"] == out["stdlib"]
    else:  # beyond FQ_ENC_DEPTH: the standard library's
        assert out["encode"] == "stdlib"


@pytest.mark.parametrize("depth, stack", CASES)
def test_publish_on_a_small_stack(depth, stack):
    out = child(depth, "publish", stack)
    assert "error" not in out, out["error"]
    assert json.loads(out["frame"]) == {"type": "next", "id": "s", "payload": {"data": {"users": {"id": depth}}}}
