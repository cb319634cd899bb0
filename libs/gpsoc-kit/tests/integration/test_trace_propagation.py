"""One trace from a request, through the outbox and Kafka, into the consumer that handles it."""

from __future__ import annotations

import asyncio

import pytest
from gpsoc_kit import telemetry
from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.relay import OutboxRelay, RelayConfig
from gpsoc_kit.testing.kafka import read_topic
from gpsoc_kit.testing.scratch import SERVICE, inbox, outbox
from gpsoc_kit.uow import UnitOfWork
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    telemetry._tracing_enabled = True  # noqa: SLF001 - what configure_tracing does with an exporter
    yield exporter
    telemetry._tracing_enabled = False  # noqa: SLF001


async def test_the_consumer_span_continues_the_trace_of_the_request_that_emitted_the_event(
    spans, engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    with telemetry.tracer("test").start_as_current_span("POST /Patient") as request_span:
        async with uow_factory("A81001") as uow:
            event = uow.emit(topic, "kit.traced.v1", subject="p1", data={})
            await uow.commit()
    trace_id = request_span.get_span_context().trace_id
    assert event.traceparent is not None and format(trace_id, "032x") in event.traceparent

    relay = OutboxRelay(
        RelayConfig(SERVICE, kit_database.app_url, test_stack.kafka_bootstrap), engine, outbox
    )
    task = asyncio.create_task(relay.run())
    [message] = await read_topic(test_stack.kafka_bootstrap, topic, expect=1)
    relay.stop()
    await asyncio.wait_for(task, 20)
    assert dict(message.headers)["traceparent"].decode() == event.traceparent

    handled: list[CloudEvent] = []

    async def handler(evt: CloudEvent, uow: UnitOfWork) -> None:
        handled.append(evt)

    runner = ConsumerRunner(
        ConsumerConfig(SERVICE, f"g-{topic}", (topic,), test_stack.kafka_bootstrap),
        unit_of_work=uow_factory,
        inbox=inbox,
        handlers={"kit.traced.v1": handler},
    )
    await runner._start()  # noqa: SLF001 - drive one message through process() directly
    try:
        assert await runner.process(message) == "applied"
    finally:
        await runner._close()  # noqa: SLF001
    consume_spans = [s for s in spans.get_finished_spans() if s.name == "consume kit.traced.v1"]
    assert consume_spans and consume_spans[-1].context.trace_id == trace_id
    assert handled[0].id == event.id
