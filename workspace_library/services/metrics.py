"""Services' calls for Prometheus, at the library's ``metrics`` (beside the hub's own ``/hub/metrics``).

Per service (``owner/name``): calls by status code, a latency histogram and the calls in flight; per replica,
the calls it answered.  prometheus_client keeps and renders them; the numbers hold under load because
each call only adds to a counter (no list of latencies grows with traffic).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
CALLS = Counter("workspace_library_service_calls", "Calls through a service's address, by status code.",
                ["service", "code"], registry=REGISTRY)
LATENCY = Histogram("workspace_library_service_call_seconds", "Seconds a call through a service's address took.",
                    ["service"], registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
IN_FLIGHT = Gauge("workspace_library_service_in_flight", "Calls through a service's address not answered yet.",
                  ["service"], registry=REGISTRY)
REPLICA_CALLS = Counter("workspace_library_replica_calls", "Calls a service's replica answered.",
                        ["service", "replica"], registry=REGISTRY)
REPLICAS = Gauge("workspace_library_service_replicas", "A service's replicas: wanted, and healthy.",
                 ["service", "state"], registry=REGISTRY)


def text() -> bytes:
    """The exposition format, as Prometheus scrapes it."""
    return generate_latest(REGISTRY)
