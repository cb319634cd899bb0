"""The CloudEvents 1.0 envelope every openGPSoC event travels in, and its JSON Schemas.

Structured mode: the whole envelope is the Kafka message value; the key is the
subject (the patient id) so one patient's events stay in order on one partition.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson

SPEC_VERSION = "1.0"


@dataclass(frozen=True)
class CloudEvent:
    type: str
    source: str
    subject: str
    practice: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    datacontenttype: str = "application/json"
    traceparent: str | None = None
    tracestate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
            "practice": self.practice,
            "data": self.data,
        }
        if self.traceparent:
            envelope["traceparent"] = self.traceparent
        if self.tracestate:
            envelope["tracestate"] = self.tracestate
        return envelope

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, envelope: dict[str, Any]) -> CloudEvent:
        missing = [
            k for k in ("id", "source", "type", "subject", "practice", "data") if k not in envelope
        ]
        if missing or envelope.get("specversion") != SPEC_VERSION:
            raise InvalidEvent(f"not a CloudEvents {SPEC_VERSION} envelope (missing {missing})")
        return cls(
            type=envelope["type"],
            source=envelope["source"],
            subject=envelope["subject"],
            practice=envelope["practice"],
            data=envelope["data"],
            id=envelope["id"],
            time=envelope.get("time", ""),
            datacontenttype=envelope.get("datacontenttype", "application/json"),
            traceparent=envelope.get("traceparent"),
            tracestate=envelope.get("tracestate"),
        )

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> CloudEvent:
        if raw is None:
            raise InvalidEvent("empty message")
        try:
            envelope = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
        if not isinstance(envelope, dict):
            raise InvalidEvent("envelope is not a JSON object")
        return cls.from_dict(envelope)


class InvalidEvent(ValueError):
    """A message that can never be processed as it stands (goes to the dead-letter topic)."""


class SchemaRegistry:
    """JSON Schemas for event types, one file per type: `<dir>/<type>.schema.json`.

    An event's schema belongs to the service that produces it; consumers load the
    producer's schema directory to check what they accept.
    """

    def __init__(self, *directories: Path) -> None:
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for directory in directories:
            for path in sorted(directory.glob("*.schema.json")):
                schema = json.loads(path.read_text())
                event_type = path.name.removesuffix(".schema.json")
                validator_cls = jsonschema.validators.validator_for(schema)
                validator_cls.check_schema(schema)
                self._validators[event_type] = validator_cls(schema)

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._validators)

    def validate(self, event: CloudEvent | dict[str, Any]) -> None:
        envelope = event.to_dict() if isinstance(event, CloudEvent) else event
        validator = self._validators.get(envelope.get("type", ""))
        if validator is None:
            raise InvalidEvent(f"no schema for event type {envelope.get('type')!r}")
        errors = sorted(validator.iter_errors(envelope), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            raise InvalidEvent(
                f"{envelope['type']} does not match its schema at {where}: {first.message}"
            )


@cache
def envelope_schema() -> dict[str, Any]:
    """The common envelope, for producers' schemas to `$ref` or copy."""
    return json.loads((Path(__file__).parent / "schemas" / "cloudevent.schema.json").read_text())
