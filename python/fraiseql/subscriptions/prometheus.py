"""Prometheus metrics for one or more executors (``pip install fraiseql-subscriptions[prometheus]``).

::

    from prometheus_client import REGISTRY
    from fraiseql.subscriptions.prometheus import SubscriptionsCollector

    collector = SubscriptionsCollector({"main": executor})
    REGISTRY.register(collector)

Every sample carries an ``executor`` label (the name given here). Counters
end in ``_total``; gauges are the live state: active subscriptions, query
groups, connections, queued messages and the bus lag in seconds. The numbers
are read from ``get_metrics()`` at scrape time; a closed executor keeps
reporting its last numbers until it is ``remove()``d.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["SubscriptionsCollector", "COUNTERS", "GAUGES"]

# get_metrics() key -> (metric name without the namespace and _total, help)
COUNTERS: Dict[str, Tuple[str, str]] = {
    "total": ("subscriptions_registered", "Subscriptions registered (active + completed + errored)."),
    "completed": ("subscriptions_completed", "Subscriptions completed."),
    "errored": ("subscriptions_refused", "Registrations refused (invalid document, limits)."),
    "events_published": ("events_published", "Events published."),
    "events_delivered": ("messages_queued", "Messages put on subscription queues."),
    "events_dropped": ("messages_dropped", "Messages dropped because a subscription's queue was full."),
    "events_filtered": ("events_filtered", "(subscription, event) pairs a filter rejected."),
    "messages_read": ("messages_read", "Messages taken from the queues."),
    "messages_discarded": ("messages_discarded", "Messages still pending when their subscription completed."),
    "encodings": ("encodings", "Message encodings (one per query group and event)."),
    "dispatch_errors": ("dispatch_errors", "Events whose dispatch failed inside the engine."),
    "validations_total": ("validations", "Event validations."),
    "validations_passed": ("validations_passed", "Event validations passed."),
    "validations_rejected": ("validations_rejected", "Event validations rejected."),
    "violations_tenant_isolation": ("violations_tenant_isolation", "Events kept from another tenant."),
    "violations_row_filter": ("violations_row_filter", "Events kept from a user by a row filter."),
    "violations_rbac": ("violations_rbac", "Events kept by a role rule (none exist: always 0)."),
    "violations_federation": ("violations_federation", "Events kept by a federation rule (none exist: always 0)."),
    "bus_published": ("bus_published", "Events put on the bus."),
    "bus_received": ("bus_received", "Events received from the bus."),
    "bus_reconnects": ("bus_reconnects", "Bus reconnections."),
    "resumes": ("resumes", "Subscriptions registered to resume after a position."),
    "events_replayed": ("events_replayed", "Messages queued from the bus's history (resumes and catch-ups)."),
    "catch_ups": ("catch_ups", "Full queues that switched to catching up from the bus's history."),
    "positions_expired": ("positions_expired", "Positions whose events had left the bus's history."),
    "positions_invalid": ("positions_invalid", "Positions refused as not of this bus or epoch."),
}

# get_metrics() key -> (metric name without the namespace, help, scale)
GAUGES: Dict[str, Tuple[str, str, float]] = {
    "active": ("subscriptions_active", "Live subscriptions.", 1.0),
    "groups": ("query_groups", "Distinct compiled queries among live subscriptions.", 1.0),
    "connections": ("connections", "Connections with live subscriptions.", 1.0),
    "queued": ("messages_pending", "Messages waiting on subscription queues.", 1.0),
    "bus_lag_ms": ("bus_lag_seconds", "Age of the last event received from the bus, when received.", 0.001),
    "rejection_rate": ("validations_rejected_ratio", "Rejected validations over all validations (0 to 1).", 0.01),
}


class SubscriptionsCollector(Collector):
    """A ``prometheus_client`` collector reading ``get_metrics()`` of named executors."""

    def __init__(self, executors: Optional[Mapping[str, Any]] = None, *,
                 namespace: str = "fraiseql_subscriptions") -> None:
        self.namespace = namespace
        self._lock = threading.Lock()
        self._executors: Dict[str, Any] = {}
        for name, executor in (executors or {}).items():
            self.add(name, executor)

    def add(self, name: str, executor: Any) -> None:
        """Report ``executor`` under ``executor=name`` (replacing one of that name)."""
        if not isinstance(name, str) or not name:
            raise ValueError("the executor's name must be a non-empty str")
        with self._lock:
            self._executors[name] = executor

    def remove(self, name: str) -> None:
        """Stop reporting the executor of that name."""
        with self._lock:
            self._executors.pop(name, None)

    def describe(self) -> List[Metric]:
        """The metric names, without reading any executor (for registration)."""
        counters, gauges = self._families()
        return [*counters.values(), *gauges.values()]

    def _families(self) -> Tuple[Dict[str, CounterMetricFamily], Dict[str, GaugeMetricFamily]]:
        ns = self.namespace
        counters = {key: CounterMetricFamily(f"{ns}_{name}", doc, labels=["executor"])
                    for key, (name, doc) in COUNTERS.items()}
        gauges = {key: GaugeMetricFamily(f"{ns}_{name}", doc, labels=["executor"])
                  for key, (name, doc, _) in GAUGES.items()}
        return counters, gauges

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            executors = list(self._executors.items())
        readings = []
        for name, executor in executors:
            try:
                readings.append((name, executor.get_metrics()))
            except RuntimeError:  # an executor that cannot report is left out of this scrape
                continue
        counters, gauges = self._families()
        for name, metrics in readings:
            for key, counter in counters.items():
                counter.add_metric([name], float(metrics[key]))
            for key, gauge in gauges.items():
                gauge.add_metric([name], float(metrics[key]) * GAUGES[key][2])
        yield from counters.values()
        yield from gauges.values()
