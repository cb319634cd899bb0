"""The repository's hand-written SQL stays in step with the domain's searchable facts."""

from __future__ import annotations

import datetime as dt

from patient_index.adapters import repository as repo
from patient_index.adapters.tables import patients
from patient_index.domain.patient import PatientDetails


def test_registration_inserts_every_searchable_column():
    details = PatientDetails(
        nhs_number="9990000018",
        family="Smith",
        given="Alice",
        birth_date=dt.date(1980, 4, 12),
        gender="female",
        postal_code="TS181AA",
        gp_practitioner_id=None,
        active=True,
        deceased_at=None,
        deceased=False,
    )
    assert set(repo._PATIENT_COLUMNS) == set(repo._columns(details))
    assert set(repo._PATIENT_COLUMNS) <= set(patients.c.keys())


def test_criteria_number_their_parameters_in_order():
    params: list[object] = []
    sql = repo.render([repo.by_family("Smi"), repo.by_gender("female")], params, " AND ")
    assert sql == "(family_normalised >= $1 AND family_normalised < $2) AND gender = $3"
    assert params == ["smi", "smj", "female"]
    assert repo.render(repo.phonetic_order("Smyth"), params, ", ") == (
        "similarity(name_text, $4) DESC, id"
    )


def test_a_date_comparison_takes_only_known_operators():
    import pytest

    with pytest.raises(ValueError):
        repo.by_birth_date("; DROP TABLE patients; --", dt.date(2000, 1, 1))
