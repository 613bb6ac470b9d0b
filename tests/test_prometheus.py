"""fraiseql.subscriptions.prometheus: the exposition, parsed with prometheus_client's parser."""
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fraiseql._fraiseql_rs.subscriptions import PySubscriptionExecutor
from fraiseql.subscriptions.prometheus import COUNTERS, GAUGES, SubscriptionsCollector

pytestmark = pytest.mark.timeout(60)

Q = "subscription { users { id } }"
NS = "fraiseql_subscriptions"


def scrape(registry):
    """{(sample name, executor label): value} of the text exposition."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out[(sample.name, sample.labels["executor"])] = sample.value
    return out, text


def test_two_executors_each_with_its_label():
    registry = CollectorRegistry()
    with PySubscriptionExecutor() as a, PySubscriptionExecutor(queue_size=2) as b:
        registry.register(SubscriptionsCollector({"a": a, "b": b}))
        a.register_subscription("c1", "s1", Q, user_id="u", tenant_id="t")
        a.register_subscription("c2", "s2", Q, user_id="u", tenant_id="t")
        b.register_subscription("c1", "s1", Q, user_id="u", tenant_id="t")
        with pytest.raises(ValueError):
            b.register_subscription("c1", "bad", "subscription {", user_id="u", tenant_id="t")
        for i in range(3):
            a.publish_event("e", "users", {"id": i})
            b.publish_event("e", "users", {"id": i})
        a.next_event("s1")
        samples, text = scrape(registry)
    assert f"# TYPE {NS}_events_published_total counter" in text
    assert f"# TYPE {NS}_subscriptions_active gauge" in text
    # every counter and gauge, for both executors
    assert len(samples) == 2 * (len(COUNTERS) + len(GAUGES))
    expect = {
        "subscriptions_registered_total": (2, 2), "subscriptions_refused_total": (0, 1),
        "events_published_total": (3, 3), "messages_queued_total": (6, 3),
        "messages_dropped_total": (0, 1), "messages_read_total": (1, 0),
        "subscriptions_active": (2, 1), "connections": (2, 1), "messages_pending": (5, 2),
        "query_groups": (1, 1), "bus_lag_seconds": (0, 0),
    }
    for name, (in_a, in_b) in expect.items():
        assert (samples[(f"{NS}_{name}", "a")], samples[(f"{NS}_{name}", "b")]) == (in_a, in_b), name


def test_a_closed_executor_keeps_its_last_numbers_until_removed():
    registry = CollectorRegistry()
    collector = SubscriptionsCollector()
    registry.register(collector)
    live, closed = PySubscriptionExecutor(), PySubscriptionExecutor()
    collector.add("live", live)
    collector.add("closed", closed)
    closed.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
    closed.close()
    samples, _ = scrape(registry)
    assert {label for _, label in samples} == {"live", "closed"}
    assert samples[(f"{NS}_subscriptions_registered_total", "closed")] == 1
    collector.remove("closed")
    assert {label for _, label in scrape(registry)[0]} == {"live"}
    collector.remove("live")
    live.close()
    assert scrape(registry)[0] == {}


def test_the_example_app_exposes_metrics():
    from starlette.testclient import TestClient
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.fastapi_app import app

    with TestClient(app) as client:
        app.state.executor.register_subscription("c", "s", Q, user_id="u", tenant_id="t")
        assert client.post("/events", json={"channel": "users", "event_type": "e",
                                            "data": {"id": 1}}).json() == {"published": True}
        response = client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
    active = families[f"{NS}_subscriptions_active"].samples
    assert [(s.labels, s.value) for s in active] == [({"executor": "main"}, 1.0)]
    published = [s for s in families[f"{NS}_events_published"].samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in published] == [({"executor": "main"}, 1.0)]


def test_every_get_metrics_key_is_exported_under_the_readme_name():
    registry = CollectorRegistry()
    with PySubscriptionExecutor() as ex:
        registry.register(SubscriptionsCollector({"x": ex}))
        keys = set(ex.get_metrics())
        samples, _ = scrape(registry)
    assert set(COUNTERS) | set(GAUGES) == keys and not set(COUNTERS) & set(GAUGES)
    exported = {name for name, _ in samples}
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("| `get_metrics()` key | exported as | type |"):]
    rows = [line.split("|")[1:4] for line in table.split("\n\n")[0].splitlines()[2:]]
    documented = {key.strip().strip("`"): name.strip().strip("`") for key, name, _ in rows}
    assert set(documented) == keys
    assert set(documented.values()) == exported
    for key, (name, _) in COUNTERS.items():
        assert documented[key] == f"{NS}_{name}_total"
    for key, (name, _, _) in GAUGES.items():
        assert documented[key] == f"{NS}_{name}"
