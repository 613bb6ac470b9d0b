"""A pytest plugin that tools/mutate.py loads (-p mutate_timings) into the Python areas'
baseline run: it writes to the file MUTATE_TIMINGS names the run's rootdir (what node ids
are relative to) and each test's node id with its seconds (setup, call and teardown), in
the order the tests ran."""
import json
import os

_seconds: dict = {}


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    with open(os.environ["MUTATE_TIMINGS"], "w") as f:
        json.dump({"rootdir": str(session.config.rootpath), "seconds": _seconds}, f)
