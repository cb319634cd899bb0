"""What the patient index serves, declared once: /metadata and the gateway are built from it."""

from gpsoc_kit.capability import ResourceCapability, SearchParam

from ...domain.patient import UK_CORE_PATIENT_PROFILE
from ...domain.sharing import UK_CORE_ORGANIZATION_AFFILIATION_PROFILE
from ...service_layer.handlers import UK_CORE_ORGANIZATION_PROFILE, UK_CORE_PRACTITIONER_PROFILE

RESOURCES = [
    ResourceCapability(
        type="Patient",
        profile=UK_CORE_PATIENT_PROFILE,
        interactions=("read", "vread", "update", "history-instance", "create", "search-type"),
        search_params=(
            SearchParam("_id", "token"),
            SearchParam(
                "identifier", "token", "NHS number: https://fhir.nhs.uk/Id/nhs-number|<10 digits>"
            ),
            SearchParam("family", "string"),
            SearchParam("given", "string"),
            SearchParam("name", "string"),
            SearchParam("birthdate", "date", "eq, ge, le, gt, lt prefixes"),
            SearchParam("gender", "token"),
            SearchParam("address-postalcode", "string"),
            SearchParam("general-practitioner", "reference"),
            SearchParam(
                "phonetic",
                "string",
                "Tolerates a typo: Soundex of the family name or trigram similarity of the whole name",
            ),
        ),
        # Opens one record outside any sharing agreement, with a reason, for a short time.
        operations=("break-glass",),
    ),
    ResourceCapability(
        type="OrganizationAffiliation",
        profile=UK_CORE_ORGANIZATION_AFFILIATION_PROFILE,
        interactions=("read", "update", "create", "search-type"),
        search_params=(
            SearchParam("active", "token"),
            SearchParam(
                "participating-organization",
                "reference",
                "The practice the agreement shares with: its ODS code",
            ),
        ),
    ),
    ResourceCapability(
        type="Organization",
        profile=UK_CORE_ORGANIZATION_PROFILE,
        interactions=("read", "search-type"),
        search_params=(
            SearchParam("identifier", "token", "ODS code"),
            SearchParam("name", "string"),
        ),
        versioning="versioned",
    ),
    ResourceCapability(
        type="Practitioner",
        profile=UK_CORE_PRACTITIONER_PROFILE,
        interactions=("read", "search-type"),
        search_params=(
            SearchParam("_id", "token"),
            SearchParam("family", "string"),
            SearchParam("name", "string"),
            SearchParam("identifier", "token"),
        ),
        versioning="versioned",
    ),
]
