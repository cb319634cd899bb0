"""Reading RF2 snapshot files: the header and every row are checked."""

from __future__ import annotations

import pytest
from clinical_notes.domain.rf2 import Rf2FormatError, read_concepts, read_descriptions

CONCEPT_HEADER = "id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId\r\n"


def test_a_file_without_the_rf2_header_is_refused():
    with pytest.raises(Rf2FormatError, match="header"):
        list(read_concepts(["22298006\t20020131\t1\t900000000000207008\t900000000000074008\n"]))
    with pytest.raises(Rf2FormatError, match="line 2"):
        list(read_concepts(["id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId\n", "x\ty\n"]))


def test_rows_are_read_with_their_active_flag_and_crlf_line_ends():
    [concept] = read_concepts(
        [CONCEPT_HEADER, "22298006\t20020131\t0\t900000000000207008\t900000000000074008\r\n"]
    )
    assert concept.id == "22298006" and concept.active is False
    header = (
        "id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\t"
        "caseSignificanceId\n"
    )
    [description] = read_descriptions(
        [
            header,
            "37436014\t20170731\t1\t900000000000207008\t22298006\ten\t"
            "900000000000013009\tMyocardial infarction\t900000000000448009\n",
        ]
    )
    assert description.term == "Myocardial infarction" and description.concept_id == "22298006"
