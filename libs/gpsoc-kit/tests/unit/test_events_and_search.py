"""The event envelope, its schemas, and search-parameter parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpsoc_kit.events import CloudEvent, InvalidEvent, SchemaRegistry
from gpsoc_kit.fhir import FhirError, searchset
from gpsoc_kit.search import parse_date_param, parse_search, parse_token


def test_cloudevent_round_trips_through_bytes():
    event = CloudEvent(
        type="patient.registered.v1",
        source="urn:test",
        subject="p1",
        practice="A81001",
        data={"x": 1},
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    again = CloudEvent.from_bytes(event.to_bytes())
    assert again == event
    assert again.to_dict()["specversion"] == "1.0"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"specversion": "1.0"}', None])
def test_unparseable_messages_are_invalid_events(raw):
    with pytest.raises(InvalidEvent):
        CloudEvent.from_bytes(raw)


def test_schema_registry_rejects_an_event_that_breaks_its_schema(tmp_path: Path):
    (tmp_path / "thing.happened.v1.schema.json").write_text(
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "object",
                        "required": ["n"],
                        "properties": {"n": {"type": "integer"}},
                    }
                },
            }
        )
    )
    registry = SchemaRegistry(tmp_path)
    good = CloudEvent(
        type="thing.happened.v1", source="s", subject="x", practice="A81001", data={"n": 1}
    )
    registry.validate(good)
    with pytest.raises(InvalidEvent, match="data/n"):
        registry.validate(
            CloudEvent(
                type="thing.happened.v1",
                source="s",
                subject="x",
                practice="A81001",
                data={"n": "one"},
            )
        )
    with pytest.raises(InvalidEvent, match="no schema"):
        registry.validate(
            CloudEvent(type="other.v1", source="s", subject="x", practice="A1", data={})
        )


def test_unknown_search_parameters_are_refused_naming_them():
    with pytest.raises(FhirError) as err:
        parse_search([("famly", "x")], allowed={"family"})
    assert err.value.status == 400
    assert err.value.issues[0].expression == ["famly"]


def test_count_ceiling_and_paging():
    search = parse_search([("family", "x"), ("_count", "5"), ("_offset", "10")], allowed={"family"})
    assert (search.count, search.offset, search.values("family")) == (5, 10, ["x"])
    with pytest.raises(FhirError):
        parse_search([("_count", "1000")], allowed=(), max_count=100)
    with pytest.raises(FhirError):
        parse_search([("_count", "-1")], allowed=())


def test_date_prefixes():
    assert parse_date_param("birthdate", "ge1970-01-01").sql_operator() == ">="
    assert parse_date_param("birthdate", "1970-01-01").prefix == "eq"
    with pytest.raises(FhirError):
        parse_date_param("birthdate", "ap1970-01-01")
    with pytest.raises(FhirError):
        parse_date_param("birthdate", "yesterday")


def test_token_parameters():
    assert parse_token("https://fhir.nhs.uk/Id/nhs-number|9990000018") == (
        "https://fhir.nhs.uk/Id/nhs-number",
        "9990000018",
    )
    assert parse_token("9990000018") == (None, "9990000018")


def test_total_is_parsed_and_only_accurate_or_count_zero_requires_a_count():
    assert parse_search([], allowed=[]).total is None
    assert not parse_search([("_total", "none")], allowed=[]).total_required
    assert not parse_search([("_total", "estimate")], allowed=[]).total_required
    assert parse_search([("_total", "accurate")], allowed=[]).total_required
    assert parse_search([("_count", "0")], allowed=[]).total_required
    with pytest.raises(FhirError) as refused:
        parse_search([("_total", "exact")], allowed=[])
    assert refused.value.status == 400
    assert refused.value.issues[0].expression == ["_total"]


def test_a_searchset_without_a_total_leaves_it_out_and_links_next_only_when_told():
    def bundle(**kwargs):  # noqa: ANN003, ANN202
        return searchset([{"resourceType": "Slot", "id": "a"}], total=None, base_url="http://x",
                         resource_type="Slot", params=[], offset=0, count=1, **kwargs)

    assert "total" not in bundle(more=False)
    assert [link["relation"] for link in bundle(more=True)["link"]] == ["self", "next"]
    assert [link["relation"] for link in bundle(more=False)["link"]] == ["self"]
    with pytest.raises(ValueError):
        bundle()
