"""The permission matrix at the front door: a request the caller's roles do not grant is
refused here (403), never proxied, and the refusal is audited.

Why the gateway publishes its audit records to Kafka itself: every service writes its
audit events through its outbox, in the same transaction as the access. The gateway has
no database, so it has no outbox; a refusal changes nothing, so there is no transaction
to join either. It publishes the same AuditEvent-shaped CloudEvent (built by
`gpsoc_kit.audit.audit_event`, on `audit.events.v1`, keyed by the patient where the
request names one) with an idempotent producer (`acks=all`) and waits for the broker's
acknowledgement before it answers, so a 403 the client sees has been recorded. If Kafka
cannot be reached the refusal still stands - a broken audit path must never turn a "no"
into a "yes" - and the lost record is counted
(`gateway_audit_publish_failures_total`) and logged, without patient data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import cache
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from gpsoc_kit import metrics
from gpsoc_kit.access import MATRIX, Match, PermissionMatrix
from gpsoc_kit.audit import AUDIT_EVENT_TYPE, AUDIT_TOPIC, audit_event
from gpsoc_kit.auth import Principal
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.fhir import FhirError
from gpsoc_kit.relay import new_producer
from gpsoc_kit.telemetry import current_traceparent, kafka_headers
from prometheus_client import Counter

log = logging.getLogger("gpsoc.gateway.access")

SOURCE = "urn:opengpsoc:gateway"
# How long a refusal waits for the broker's acknowledgement of its audit record, and how
# long after a failure the gateway stops trying (so a Kafka outage does not slow every 403).


@cache
def publish_failures() -> Counter:
    return Counter(
        "gateway_audit_publish_failures_total",
        "Audit records of refused requests that could not be published to Kafka",
        registry=metrics.REGISTRY,
    )


@cache
def refusals() -> Counter:
    return Counter(
        "gateway_access_denied_total",
        "Requests refused by the permission matrix, by resource type",
        ("resource_type",),
        registry=metrics.REGISTRY,
    )


def not_served() -> FhirError:
    # The path itself is not echoed: it can carry identifiers.
    return FhirError(404, "No such resource or route", code="not-found")


def resolve(
    matrix: PermissionMatrix, method: str, path: str, body: bytes
) -> Match:
    """The request's rule (the body is parsed only where the rule depends on it), or 404."""
    resource: Mapping[str, Any] | None = None
    if matrix.needs_body(method, path):
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        resource = parsed if isinstance(parsed, dict) else None
    match = matrix.lookup(method, path, resource)
    if match is None:
        raise not_served()
    return match


def denial_event(
    principal: Principal, match: Match, query: Mapping[str, str], raw_query: str
) -> CloudEvent:
    """The AuditEvent of a refused request, in the envelope every service's relay sends."""
    rule = match.rule
    patient_id = match.patient_id(query)
    resource_ids = [match.resource_id] if match.resource_id and rule.resource_type != "Patient" else []
    data = audit_event(
        principal=principal,
        interaction=rule.audit_interaction,
        resource_type=rule.resource_type,
        resource_ids=resource_ids,
        patient_ids=[patient_id] if patient_id else [],
        outcome="4",
        outcome_desc=f"denied: needs {rule.requires.missing(principal)}",
        query=raw_query or None,
        source=SOURCE,
    )
    traceparent, tracestate = current_traceparent()
    return CloudEvent(
        type=AUDIT_EVENT_TYPE,
        source=SOURCE,
        # As gpsoc_kit.audit.record keys it: by the patient, so their trail stays in order.
        subject=patient_id or principal.practice,
        practice=principal.practice,
        data=data,
        traceparent=traceparent,
        tracestate=tracestate,
    )


class DenialAudit:
    """Publishes the audit records of refused requests (see the module docstring for why)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        timeout: float = 5.0,
        retry_after: float = 5.0,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._timeout = timeout
        self._retry_after = retry_after
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    async def publish(self, event: CloudEvent) -> bool:
        """True once the broker acknowledged the record; False (counted, logged) if not."""
        if time.monotonic() < self._paused_until:
            self._lost("kafka unavailable recently; not retried yet")
            return False
        try:
            await asyncio.wait_for(self._send(event), self._timeout)
        except Exception as exc:  # noqa: BLE001 - any failure loses the record the same way
            self._paused_until = time.monotonic() + self._retry_after
            await self._drop_producer()
            self._lost(type(exc).__name__)
            return False
        return True

    async def _send(self, event: CloudEvent) -> None:
        producer = await self._ensure_producer()
        delivered = await producer.send(
            AUDIT_TOPIC,
            value=event.to_bytes(),
            key=event.subject.encode(),
            headers=kafka_headers(event.traceparent, event.tracestate, event.type),
        )
        await delivered

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = new_producer(self._bootstrap)
                try:
                    await producer.start()
                except BaseException:
                    await _stop_quietly(producer)
                    raise
                self._producer = producer
            return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer)

    def _lost(self, reason: str) -> None:
        publish_failures().inc()
        # The reason only: never the path, query or token, which can name a patient.
        log.warning("the audit record of a refused request was not published",
                    extra={"reason": reason})

    async def close(self) -> None:
        await self._drop_producer()


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception:  # noqa: BLE001 - a broken producer is discarded either way
        pass


async def enforce(
    denials: DenialAudit,
    principal: Principal,
    match: Match,
    query: Mapping[str, str],
    raw_query: str,
) -> None:
    """Refuse (403 OperationOutcome) unless the caller's roles grant the rule; audit a refusal."""
    rule = match.rule
    if rule.requires.allows(principal):
        return
    refusals().labels(rule.resource_type).inc()
    await denials.publish(denial_event(principal, match, query, raw_query))
    raise FhirError(
        403,
        f"Your role does not permit this: it needs {rule.requires.missing(principal)}",
        code="forbidden",
        details_code="ACCESS_DENIED",
    )


__all__ = ["MATRIX", "SOURCE", "DenialAudit", "denial_event", "enforce", "resolve"]
