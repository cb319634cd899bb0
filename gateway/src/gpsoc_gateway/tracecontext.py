"""A W3C trace id for every request through the front door, even with tracing switched off.

With an OpenTelemetry exporter configured, the chassis' request middleware starts a span
(a child of the caller's traceparent, or a new trace). With tracing off (the local default,
OTEL_TRACES_EXPORTER=none) nothing is attached, so audit records and forwarded requests
would carry no trace id. This keeps the caller's trace context, or starts one, as a
non-recording span: no SDK, no export, just the ids, which the proxy forwards in
`traceparent` and audit records carry.
"""

from __future__ import annotations

import secrets

from gpsoc_kit.telemetry import extract_context, tracing_enabled
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.types import ASGIApp, Receive, Scope, Send


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or tracing_enabled():
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        context = extract_context(carrier)
        if not trace.get_current_span(context).get_span_context().is_valid:
            span = NonRecordingSpan(
                SpanContext(
                    trace_id=secrets.randbits(128) or 1,
                    span_id=secrets.randbits(64) or 1,
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.DEFAULT),
                )
            )
            context = trace.set_span_in_context(span, context)
        token = otel_context.attach(context)
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
