#!/usr/bin/env bash
# Create the platform's topics on the compose broker (auto-creation is off), each with its
# dead-letter topic `<topic>.dlq`. The same list as devstack.platform.platform_topics();
# deploy/tests/test_compose.py keeps the two equal.
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
EVENT_PARTITIONS=6
DLQ_PARTITIONS=3
TOPICS=(
  patient.events.v1
  appointment.events.v1
  prescription.events.v1
  clinical.events.v1
  audit.events.v1
  pds.notifications.v1
)

create() {
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$1" --partitions "$2" --replication-factor 1
}

for topic in "${TOPICS[@]}"; do
  create "$topic" "$EVENT_PARTITIONS"
  create "${topic}.dlq" "$DLQ_PARTITIONS"
done
echo "create-topics: ${#TOPICS[@]} topics and their dead-letter topics are there"
