"""Prometheus metrics named <service>_<thing>_<unit>, one registry per process."""

from __future__ import annotations

from functools import cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _prefix(service: str) -> str:
    return service.replace("-", "_")


@cache
def http_request_duration(service: str) -> Histogram:
    return Histogram(
        f"{_prefix(service)}_http_request_duration_seconds",
        "HTTP request latency by route",
        ("method", "route", "status"),
        buckets=LATENCY_BUCKETS,
        registry=REGISTRY,
    )


@cache
def outbox_backlog(service: str) -> Gauge:
    return Gauge(
        f"{_prefix(service)}_outbox_backlog_events", "Unpublished outbox events", registry=REGISTRY
    )


@cache
def outbox_oldest_age(service: str) -> Gauge:
    return Gauge(
        f"{_prefix(service)}_outbox_oldest_age_seconds",
        "Age of the oldest unpublished outbox event",
        registry=REGISTRY,
    )


@cache
def outbox_published(service: str) -> Counter:
    return Counter(
        f"{_prefix(service)}_outbox_published_events_total",
        "Events published by the relay",
        registry=REGISTRY,
    )


@cache
def consumer_processed(service: str) -> Counter:
    return Counter(
        f"{_prefix(service)}_consumer_events_total",
        "Events handled by the consumer, by outcome",
        ("topic", "outcome"),
        registry=REGISTRY,
    )


@cache
def consumer_lag(service: str) -> Gauge:
    return Gauge(
        f"{_prefix(service)}_consumer_lag_events",
        "Consumer lag by topic partition",
        ("topic", "partition"),
        registry=REGISTRY,
    )


@cache
def dead_letters(service: str) -> Counter:
    return Counter(
        f"{_prefix(service)}_dead_letter_events_total",
        "Events parked on a dead-letter topic",
        ("topic",),
        registry=REGISTRY,
    )


@cache
def practice_requests(service: str) -> Counter:
    return Counter(
        f"{_prefix(service)}_practice_requests_total",
        "Requests by practice (ODS code), resource type and status class",
        ("practice", "resource_type", "status_class"),
        registry=REGISTRY,
    )


@cache
def db_pool_in_use(service: str) -> Gauge:
    return Gauge(
        f"{_prefix(service)}_db_pool_connections",
        "Database pool connections checked out",
        registry=REGISTRY,
    )


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
