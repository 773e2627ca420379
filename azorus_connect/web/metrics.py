"""Prometheus metrics at ``/metrics``: inbound requests and commits, outbox outcomes and queue depth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["Metrics"]


class _QueueDepth(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "azorus_outbox_messages",
            "Queued outbox messages by connection and status",
            labels=["connection", "status"],
        )
        try:
            depth = self.hub.outbox.depth()
        except Exception:  # the database being away must not break the scrape
            depth = {}
        for name in self.hub.config.connections:
            for status in ("pending", "parked"):
                gauge.add_metric([name, status], depth.get(name, {}).get(status, 0))
        yield gauge


class _InboundGroups(Collector):
    """Inbound transactions and the requests they committed (requests per commit = their ratio)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[CounterMetricFamily]:
        sizes = dict(self.hub.inbound.group_sizes)
        yield CounterMetricFamily(
            "azorus_inbound_transactions",
            "Transactions that committed inbound requests (several queued requests share one)",
            value=sum(sizes.values()),
        )
        yield CounterMetricFamily(
            "azorus_inbound_committed_requests",
            "Inbound requests handled by those transactions",
            value=sum(size * count for size, count in sizes.items()),
        )


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self, hub: Hub) -> None:
        self.registry = CollectorRegistry()
        self.inbound = Counter(
            "azorus_inbound_requests",
            "Inbound requests by connection and status code",
            ["connection", "status"],
            registry=self.registry,
        )
        self.inbound_seconds = Histogram(
            "azorus_inbound_request_seconds",
            "Time to answer an inbound request",
            ["connection"],
            registry=self.registry,
        )
        self.registry.register(_QueueDepth(hub))
        self.registry.register(_InboundGroups(hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)
