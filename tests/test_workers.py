"""worker_slot: distinct among live processes, the same again after a restart."""
import os
import subprocess
import sys

import pytest

from fraiseql.subscriptions.workers import worker_slot

HOLD = ("import sys; from fraiseql.subscriptions.workers import worker_slot; "
        "print(worker_slot(sys.argv[1]), flush=True); sys.stdin.read()")


def holder(directory):
    """A process that claims a slot and holds it until its stdin closes; returns (process, slot)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def release(proc):
    proc.stdin.close()
    proc.wait(10)


def test_live_processes_get_distinct_slots_and_a_replacement_gets_the_freed_one(tmp_path):
    a, sa = holder(tmp_path)
    b, sb = holder(tmp_path)
    c, sc = holder(tmp_path)
    assert (sa, sb, sc) == (0, 1, 2)
    release(b)
    d, sd = holder(tmp_path)
    assert sd == 1
    for p in (a, c, d):
        release(p)
    e, se = holder(tmp_path)  # all gone: a restarted server starts again from 0
    assert se == 0
    release(e)


def test_killed_holder_frees_its_slot(tmp_path):
    a, sa = holder(tmp_path)
    a.kill()
    a.wait(10)
    b, sb = holder(tmp_path)
    assert sa == sb == 0
    release(b)


def test_same_process_same_slot_and_a_forked_child_claims_its_own(tmp_path):
    slot = worker_slot(str(tmp_path))
    assert worker_slot(str(tmp_path)) == slot
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, str(worker_slot(str(tmp_path))).encode())
        finally:
            os._exit(0)
    os.close(w)
    child = int(os.read(r, 10))
    os.waitpid(pid, 0)
    os.close(r)
    assert child != slot


def test_all_slots_taken(tmp_path):
    a, _ = holder(tmp_path)
    out = subprocess.run([sys.executable, "-c", "import sys; from fraiseql.subscriptions.workers import worker_slot; "
                          "worker_slot(sys.argv[1], slots=1)", str(tmp_path)], capture_output=True, text=True)
    release(a)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"RuntimeError: all 1 worker slots under {tmp_path} are held by live processes")


@pytest.mark.parametrize("slots", [0, -1, True, 1.5])
def test_bad_slot_count(tmp_path, slots):
    with pytest.raises(ValueError, match="slots"):
        worker_slot(str(tmp_path), slots=slots)
