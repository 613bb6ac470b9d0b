"""One process of a multi-process bus test.

usage: python bus_worker.py KIND URL NAME EVENTS EXPECTED
Creates an executor on the bus, subscribes, prints "ready", waits for "go"
on stdin, publishes EVENTS events tagged NAME, then collects EXPECTED
messages (or gives up after 30 s) and prints them as one JSON line.
"""
import json
import sys
import time

from fraiseql import _fraiseql_rs

S = _fraiseql_rs.subscriptions


def main() -> None:
    kind, url, name, events, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    config = S.PyEventBusConfig.redis(url, "it") if kind == "redis" else S.PyEventBusConfig.postgresql(url)
    with S.PySubscriptionExecutor(config) as ex:
        ex.register_subscription("c", "s", "subscription { events { origin n } }", user_id="u", tenant_id="t")
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            sys.exit("no go")
        for i in range(events):
            ex.publish_event("tick", "events", {"origin": name, "n": i, "pad": "x" * 10})
        got = []
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            msg = ex.next_event("s", timeout=0.5)
            if msg is not None:
                d = json.loads(msg)["payload"]["data"]["events"]
                got.append([d["origin"], d["n"]])
        # Anything beyond the expected count would be a duplicate: wait a little for it.
        extra = ex.next_event("s", timeout=0.5)
        if extra is not None:
            got.append(["extra", json.loads(extra)["payload"]["data"]["events"]])
        m = ex.get_metrics()
        print(json.dumps({"got": got, "bus_published": m["bus_published"], "bus_received": m["bus_received"]}),
              flush=True)


if __name__ == "__main__":
    main()
