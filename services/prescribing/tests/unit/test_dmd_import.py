"""The dm+d release importer, on a small fixture in the NHSBSA XML format (tests/fixtures/dmd)."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from prescribing.adapters.dmd_import import DmdReleaseError, parse_release
from prescribing.domain.formulary import medication_resource

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dmd"


@pytest.fixture(scope="module")
def products():  # noqa: ANN201
    release = parse_release(FIXTURE)
    assert release.name == "3011025"
    return {p.dmd_id: p for p in release.products}


def test_vtms_vmps_and_amps_are_read_with_their_classes(products):
    assert {p.concept_class for p in products.values()} == {"VTM", "VMP", "AMP"}
    assert len(products) == 8
    assert products["900000003"].invalid and products["900000003"].name == "Retired & renamed"


def test_a_vmp_has_form_route_strength_and_unit_dose(products):
    tablets = products["900000101"]
    assert (tablets.vtm_id, tablets.form, tablets.route) == ("900000001", "Tablet", "Oral")
    assert (tablets.strength, tablets.strength_value, tablets.unit_dose_form) == (
        "500mg", Decimal(500), "tablet")
    assert tablets.cd_schedule is None and tablets.available


def test_a_liquid_strength_is_per_ml_and_the_controlled_drug_schedule_is_read(products):
    solution = products["900000102"]
    assert solution.strength == "10mg/5ml"
    assert (solution.strength_value, solution.strength_unit, solution.unit_dose_form) == (
        Decimal(2), "mg", "ml")
    assert (solution.cd_schedule, solution.cd_category) == (2, "Schedule 2 (CD)")


def test_availability_comes_from_vmp_non_availability_and_amp_restrictions(products):
    assert not products["900000103"].available
    assert products["900000103"].why_not_prescribable().endswith(
        "(Actual Products not Available)")
    assert products["900000201"].available and products["900000201"].supplier == (
        "Fixture Pharma Ltd")
    assert not products["900000202"].available


def test_an_amp_inherits_its_vmps_substance_and_strength(products):
    amp = products["900000201"]
    assert (amp.concept_class, amp.vmp_id, amp.vtm_id, amp.strength) == (
        "AMP", "900000101", "900000001", "500mg")
    resource = medication_resource(amp)
    assert resource["code"]["coding"][0] == {"system": "https://dmd.nhs.uk",
                                             "code": "900000201",
                                             "display": "Testamol 500mg tablets (Fixture Pharma Ltd)"}


def test_a_release_without_its_lookup_file_is_refused(tmp_path):
    for path in FIXTURE.glob("f_v*.xml"):
        shutil.copy(path, tmp_path)
    with pytest.raises(DmdReleaseError, match="f_lookup2"):
        parse_release(tmp_path)
