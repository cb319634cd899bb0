"""Every safety rule, on knowledge built in memory: no database, milliseconds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from prescribing.domain.errors import KnowledgeBaseUnavailable, SafetyCheckRefused
from prescribing.domain.formulary import VMP, Product
from prescribing.domain.safety import (
    AllergenConcept,
    ClinicalKnowledge,
    CurrentMedication,
    DoseLimit,
    Interaction,
    KnowledgeRelease,
    Prescribing,
    RecordedAllergy,
    Severity,
    StructuredDose,
    decide,
    ensure_usable,
    run_checks,
)

H, M = Severity.HIGH, Severity.MODERATE
RELEASE = KnowledgeRelease("test", "1", dt.date(2026, 1, 1), dt.date(2030, 1, 1))
ALL_PRESENT = {c: True for c in ("substance classes", "allergen concepts", "interactions",
                                 "dose limits")}
KNOWLEDGE = ClinicalKnowledge(
    RELEASE, ALL_PRESENT,
    classes={"penicillins": ("Penicillins", {"amox": H, "fluclox": H, "cefalexin": M}),
             "macrolides": ("Macrolides", {"clari": H}),
             "statins": ("Statins", {"simva": H}),
             "nsaids": ("NSAIDs", {"ibu": M}),
             "quinolones": ("Quinolones", {"cipro": H})},
    allergens={"91936005": AllergenConcept("91936005", "Allergy to penicillin",
                                           class_code="penicillins"),
               "294505008": AllergenConcept("294505008", "Allergy to amoxicillin",
                                            substance_id="amox")},
    interactions=(Interaction("class:statins", "class:macrolides", H, "myopathy"),
                  Interaction("class:nsaids", "class:quinolones", M, "convulsions")),
    dose_limits={"para": DoseLimit("para", Decimal(1000), Decimal(4000))},
)


def product(substance: str, *, name: str | None = None, schedule: int | None = None) -> Product:
    return Product(dmd_id="1" + str(abs(hash(substance)))[:8], concept_class=VMP,
                   name=name or f"{substance} 500mg tablets", vtm_id=substance,
                   strength_value=Decimal(500), strength_unit="mg", unit_dose_form="tablet",
                   cd_schedule=schedule)


def rx(substance: str = "para", *, schedule: int | None = None, quantity: int = 28,
       words: str | None = None, days: int | None = 28,
       dose: StructuredDose | None = None) -> Prescribing:
    return Prescribing(product(substance, schedule=schedule), Decimal(quantity), "tablet", words,
                       days, dose)


def findings(prescribing: Prescribing, *, allergies=(), current=()):  # noqa: ANN001, ANN201
    return run_checks(prescribing, allergies=allergies, current=current, knowledge=KNOWLEDGE)


def allergy(code: str, display: str = "allergy") -> RecordedAllergy:
    return RecordedAllergy("a1", code, display)


def test_a_penicillin_allergy_blocks_amoxicillin_through_its_group():
    found = findings(rx("amox"), allergies=[allergy("91936005", "Allergy to penicillin")])
    assert [(f.kind, f.severity) for f in found] == [("allergy", H)]
    assert "Penicillins" in found[0].message


def test_an_amoxicillin_allergy_blocks_amoxicillin_and_cross_sensitive_penicillins():
    amoxicillin_allergy = [allergy("294505008")]
    assert findings(rx("amox"), allergies=amoxicillin_allergy)[0].severity is H
    assert findings(rx("fluclox"), allergies=amoxicillin_allergy)[0].severity is H
    # A weaker cross-sensitivity (cephalosporins with penicillins) warns instead of refusing.
    assert findings(rx("cefalexin"), allergies=amoxicillin_allergy)[0].severity is M


def test_an_unrelated_allergy_finds_nothing():
    assert findings(rx("clari"), allergies=[allergy("91936005")]) == []


def test_an_allergy_the_knowledge_base_cannot_interpret_is_reported_not_ignored():
    found = findings(rx("amox"), allergies=[allergy("999999", "Allergy to something")])
    assert [(f.kind, f.severity) for f in found] == [("allergy", M)]
    assert "check it" in found[0].message


def test_interacting_groups_give_a_finding_of_the_tables_severity():
    on_clarithromycin = [CurrentMedication("r1", "clari", "Clarithromycin 500mg tablets")]
    found = findings(rx("simva"), current=on_clarithromycin)
    assert [(f.kind, f.severity) for f in found] == [("interaction", H)]
    on_ciprofloxacin = [CurrentMedication("r2", "cipro", "Ciprofloxacin 500mg tablets")]
    assert [f.severity for f in findings(rx("ibu"), current=on_ciprofloxacin)] == [M]


def test_the_same_substance_already_current_is_duplicate_therapy():
    current = [CurrentMedication("r1", "para", "Paracetamol 500mg tablets")]
    found = findings(rx("para"), current=current)
    assert [(f.kind, f.severity) for f in found] == [("duplicate-therapy", H)]


def test_schedule_2_without_quantity_in_words_cannot_be_overridden():
    found = findings(rx("morph", schedule=2, words=None))
    assert [(f.key, f.overridable) for f in found] == [("cd-quantity-words", False)]
    with pytest.raises(SafetyCheckRefused, match="cannot be overridden"):
        decide(found, RELEASE, override_reason="Palliative care, discussed with the patient")


def test_schedule_3_words_must_say_the_same_number_as_the_figures():
    assert [f.key for f in findings(rx("tema", schedule=3, quantity=28,
                                       words="twenty-six"))] == ["cd-quantity-words"]
    assert findings(rx("tema", schedule=3, quantity=28, words="twenty-eight (28) tablets")) == []


def test_controlled_drug_supply_over_30_days_is_high_but_overridable():
    found = findings(rx("morph", schedule=2, words="fifty six", quantity=56, days=31))
    assert [(f.key, f.severity, f.overridable) for f in found] == [("cd-supply-days", H, True)]


def test_schedule_4_and_5_have_no_words_and_figures_rule():
    assert findings(rx("diaz", schedule=4, words=None, days=60)) == []


def test_dose_above_the_daily_maximum_is_high():
    two_tablets_four_times = StructuredDose(Decimal(2), "tablet", Decimal(4))  # 4 g a day: fine
    assert findings(rx("para", dose=two_tablets_four_times)) == []
    six_times = StructuredDose(Decimal(2), "tablets", Decimal(6))  # 6 g a day
    assert [f.key for f in findings(rx("para", dose=six_times))] == ["dose-daily"]


def test_single_dose_above_the_maximum_is_high():
    found = findings(rx("para", dose=StructuredDose(Decimal(1500), "mg", Decimal(1))))
    assert [f.key for f in found] == ["dose-single"]


def test_a_dose_that_cannot_be_checked_says_so():
    no_limit = findings(rx("amox", dose=StructuredDose(Decimal(1), "capsule", Decimal(3))))
    assert [(f.key, f.severity) for f in no_limit] == [("dose-unchecked", Severity.LOW)]
    odd_unit = findings(rx("para", dose=StructuredDose(Decimal(1), "spoonful", Decimal(3))))
    assert [(f.key, f.severity) for f in odd_unit] == [("dose-unchecked", Severity.LOW)]


def test_a_high_finding_refuses_and_lists_every_finding():
    found = findings(rx("simva"), allergies=[allergy("999999")],
                     current=[CurrentMedication("r1", "clari", "Clarithromycin")])
    with pytest.raises(SafetyCheckRefused) as refused:
        decide(found, RELEASE, override_reason=None)
    assert [f.kind for f in refused.value.findings] == ["interaction", "allergy"]


def test_an_override_with_a_reason_accepts_high_findings_and_keeps_the_rest_as_warnings():
    found = findings(rx("simva"), allergies=[allergy("999999")],
                     current=[CurrentMedication("r1", "clari", "Clarithromycin")])
    outcome = decide(found, RELEASE, override_reason="Clarithromycin stops in two days")
    assert [f.kind for f in outcome.overridden] == ["interaction"]
    assert [f.kind for f in outcome.warnings] == ["allergy"]
    assert outcome.override_reason == "Clarithromycin stops in two days"


def test_an_override_needs_a_real_reason():
    found = findings(rx("simva"), current=[CurrentMedication("r1", "clari", "Clarithromycin")])
    with pytest.raises(SafetyCheckRefused, match="at least"):
        decide(found, RELEASE, override_reason=" ok ")


def test_findings_overridden_on_the_plan_do_not_block_its_issues():
    found = findings(rx("simva"), current=[CurrentMedication("r1", "clari", "Clarithromycin")])
    outcome = decide(found, RELEASE, override_reason=None,
                     previously_overridden=frozenset({found[0].key}))
    assert outcome.overridden == () and outcome.findings == tuple(found)


def test_moderate_and_low_findings_pass_as_warnings():
    found = findings(rx("ibu"), current=[CurrentMedication("r2", "cipro", "Ciprofloxacin")])
    assert decide(found, RELEASE, override_reason=None).warnings == tuple(found)


def test_a_missing_knowledge_base_fails_loudly():
    with pytest.raises(KnowledgeBaseUnavailable, match="No clinical knowledge base"):
        ensure_usable(ClinicalKnowledge(None, {}), dt.date(2026, 6, 1))


def test_an_empty_knowledge_base_component_fails_loudly_naming_it():
    empty = ClinicalKnowledge(RELEASE, dict(ALL_PRESENT, interactions=False))
    with pytest.raises(KnowledgeBaseUnavailable, match="has no interactions"):
        ensure_usable(empty, dt.date(2026, 6, 1))


def test_an_out_of_date_knowledge_base_fails_loudly():
    with pytest.raises(KnowledgeBaseUnavailable, match="out of date"):
        ensure_usable(KNOWLEDGE, dt.date(2030, 1, 2))
    assert ensure_usable(KNOWLEDGE, dt.date(2030, 1, 1)) == RELEASE
