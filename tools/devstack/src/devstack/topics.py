"""The platform's standard Kafka topics (auto-creation is off on the dev broker).

One topic per producing service and stream, keyed by patient id. Each has a dead-letter
topic `<topic>.dlq` where consumers park poison messages (with the reason) and go on.
"""

from __future__ import annotations

EVENT_PARTITIONS = 6
DLQ_PARTITIONS = 3

EVENT_TOPICS = (
    "patient.events.v1",
    "appointment.events.v1",
    "prescription.events.v1",
    "clinical.events.v1",
    "audit.events.v1",
)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


# name -> partition count; devstack.kafka.KafkaBroker.create_topics(TOPICS)
TOPICS: dict[str, int] = {
    **{topic: EVENT_PARTITIONS for topic in EVENT_TOPICS},
    **{dlq_topic(topic): DLQ_PARTITIONS for topic in EVENT_TOPICS},
}
