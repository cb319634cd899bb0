"""Tracing, metrics and logs, configured by the standard OTEL_* variables.

Logs are JSON lines carrying trace id, request id and practice code. They never
carry patient data: log calls pass identifiers of requests, not of people, and
the formatter drops anything not on its allow-list of fields.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
practice_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("practice", default=None)
# The calling user's id (never logged: it only scopes break-glass grants in the database).
user_var: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="")

_PROPAGATOR = TraceContextTextMapPropagator()
_tracing_enabled = False

# Extra log record fields that may be logged. Anything else passed via `extra=` is
# dropped, so a careless `extra={"patient": ...}` cannot leak into the logs.
SAFE_LOG_FIELDS = frozenset(
    {
        "event_type",
        "event_id",
        "topic",
        "partition",
        "offset",
        "status",
        "method",
        "route",
        "duration_ms",
        "count",
        "attempt",
        "reason",
        "consumer_group",
        "service",
        "outcome",
        "resource_type",
        "upstream",
        "backlog",
    }
)


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if (practice := practice_var.get()) is not None:
            entry["practice"] = practice
        for key in SAFE_LOG_FIELDS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            # Exception type only: messages of database errors can quote row values.
            entry["exc_type"] = record.exc_info[0].__name__
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs would print query strings, which carry NHS numbers and names.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("aiokafka").setLevel("WARNING")
    # httpx logs every request URL at INFO, and FHIR search URLs carry NHS numbers.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel("WARNING")


def configure_tracing(service_name: str) -> None:
    """Set up the OTel SDK unless OTEL_TRACES_EXPORTER=none (the local default)."""
    global _tracing_enabled
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    if exporter_name == "none" or os.environ.get("OTEL_SDK_DISABLED") == "true":
        _tracing_enabled = False
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if exporter_name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracing_enabled = True


def tracing_enabled() -> bool:
    return _tracing_enabled


def tracer(name: str = "gpsoc") -> trace.Tracer:
    return trace.get_tracer(name)


def current_traceparent() -> tuple[str | None, str | None]:
    """The W3C traceparent of the current span, to carry into events."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def extract_context(headers: Mapping[str, str]) -> otel_context.Context:
    return _PROPAGATOR.extract(headers)


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    propagate.inject(headers)
    return headers


def kafka_headers(
    traceparent: str | None, tracestate: str | None, event_type: str
) -> list[tuple[str, bytes]]:
    headers = [("ce_type", event_type.encode())]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    if tracestate:
        headers.append(("tracestate", tracestate.encode()))
    return headers


def context_from_kafka_headers(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    carrier = {
        k: v.decode("latin-1") for k, v in (headers or ()) if k in ("traceparent", "tracestate")
    }
    return _PROPAGATOR.extract(carrier)


def instrument_sqlalchemy(engine: Any) -> None:
    """SQL spans, only when tracing is on: the hooks cost time on hot paths."""
    if not _tracing_enabled:
        return
    from sqlalchemy import event

    sql_tracer = tracer("gpsoc.sql")
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        # The statement text only: parameters hold patient data.
        span = sql_tracer.start_span(
            "db.query",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": statement[:500]},
        )
        conn.info.setdefault("gpsoc_spans", []).append(span)

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        spans = conn.info.get("gpsoc_spans")
        if spans:
            spans.pop().end()

    @event.listens_for(sync_engine, "handle_error")
    def _error(exception_context):  # noqa: ANN001
        conn = exception_context.connection
        spans = conn.info.get("gpsoc_spans") if conn is not None else None
        if spans:
            span = spans.pop()
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()
