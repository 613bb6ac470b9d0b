"""Issue 5, item 8: fork(). The Go runtime does not survive fork(), so the
extension is loaded on first use, and executors made before a fork fail
loudly in the child instead of hanging. Each scenario runs in a fresh
interpreter; a forked child reports through its exit status, and its parent
kills it if it hangs."""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.timeout(120),
]

# Helpers prepended to every scenario script.
PRELUDE = textwrap.dedent('''
    import os, signal, sys, time

    def run_child(body, timeout=20.0):
        """Fork; the child runs body() and exits 0 if it returns, 3 on an
        unexpected exception. Returns the child's exit code, or "hang"."""
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                body()
                code = 0
            except SystemExit as e:
                code = e.code
            except BaseException as e:
                sys.stderr.write("child failed: %r\\n" % (e,))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            sys.exit(code)  # a normal exit: finalizers and atexit run too
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \\
                    else (status >> 8)
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "hang"

    FRAME = b'{"type":"next","id":"s","payload":{"data":{"users":{"id":1}}}}'

    def use_engine():
        """Make an executor and check one exact delivery."""
        from fraiseql import _fraiseql_rs
        ex = _fraiseql_rs.subscriptions.PySubscriptionExecutor()
        ex.register_subscription("c", "s", "subscription { users { id } }", user_id=1, tenant_id=1)
        ex.publish_event("users", "users", {"id": 1})
        assert ex.next_event("s") == FRAME, "wrong frame"
        ex.close()
''')


def run_script(body):
    code = PRELUDE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out.stdout


def test_import_does_not_start_go():
    out = run_script('''
        import fraiseql
        from fraiseql import _fraiseql_rs
        import fraiseql._fraiseql_rs.subscriptions as S
        import fraiseql.subscriptions
        assert "fraiseql._native._engine" not in sys.modules, "import loaded the engine"
        # Pure-Python parts of the API need no engine either.
        S.PySubscriptionPayload("subscription { a }")
        S.PyGraphQLMessage.from_dict({"type": "ping"}).to_dict()
        assert "fraiseql._native._engine" not in sys.modules
        use_engine()
        assert "fraiseql._native._engine" in sys.modules
        print("ok")
    ''')
    assert out.strip() == "ok"


def test_child_forked_before_the_engine_loads_can_use_it():
    run_script('''
        import fraiseql
        from fraiseql import _fraiseql_rs   # what a pre-forking server imports
        assert "fraiseql._native._engine" not in sys.modules
        codes = [run_child(use_engine) for _ in range(2)]
        assert codes == [0, 0], codes
        use_engine()                          # and the parent, afterwards
        assert run_child(lambda: None) == 0   # a child of a loaded parent that never uses it
    ''')


def test_executor_from_before_fork_fails_fast_in_child():
    run_script('''
        from fraiseql import _fraiseql_rs
        S = _fraiseql_rs.subscriptions
        ex = S.PySubscriptionExecutor()
        cfg = S.PyEventBusConfig.memory()
        ex.register_subscription("c", "s", "subscription { users { id } }", user_id=1, tenant_id=1)

        def child():
            calls = {
                "publish_event": lambda: ex.publish_event("users", "users", {"id": 1}),
                "next_event": lambda: ex.next_event("s"),
                "next_event-wait": lambda: ex.next_event("s", timeout=5),
                "drain_connection": lambda: ex.drain_connection("c"),
                "register_subscription": lambda: ex.register_subscription(
                    "c", "s2", "subscription { a }", user_id=1, tenant_id=1),
                "complete_subscription": lambda: ex.complete_subscription("s"),
                "get_metrics": ex.get_metrics,
                "subscription_stats": lambda: ex.subscription_stats("s"),
                "set_limits": lambda: ex.set_limits(max_depth=3),
                "close": ex.close,
                "new executor": S.PySubscriptionExecutor,
                "new executor on old config": lambda: S.PySubscriptionExecutor(cfg),
                "new config": S.PyEventBusConfig.memory,
            }
            for name, call in calls.items():
                t = time.monotonic()
                try:
                    call()
                except RuntimeError as err:
                    assert "fork()" in str(err) and "Create executors after the fork" in str(err), (name, err)
                else:
                    raise AssertionError(name + " did not raise")
                assert time.monotonic() - t < 1.0, name + " was slow"
            # Pure-Python parts still work in the child.
            S.PyGraphQLMessage.from_dict({"type": "ping"})

        code = run_child(child)
        assert code == 0, code
        # The parent's executor is unaffected by the fork.
        ex.publish_event("users", "users", {"id": 1})
        assert ex.next_event("s") == FRAME
        use_engine()
    ''')


def test_child_exits_cleanly_while_holding_executors():
    """Dropping pre-fork executors in the child (garbage collection, exit)
    must not call into Go."""
    run_script('''
        import gc
        from fraiseql import _fraiseql_rs
        S = _fraiseql_rs.subscriptions
        keep = [S.PySubscriptionExecutor() for _ in range(3)]

        def child():
            del keep[:2]
            gc.collect()
            # keep[2] is dropped at interpreter exit

        assert run_child(child) == 0
        for ex in keep:
            ex.get_metrics()
    ''')
