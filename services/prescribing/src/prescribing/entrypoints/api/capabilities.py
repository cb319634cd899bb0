"""What prescribing serves, declared once: /metadata and the gateway are built from it."""

from gpsoc_kit.capability import ResourceCapability, SearchParam

from ...domain.formulary import UK_CORE_MEDICATION_PROFILE
from ...domain.prescription import UK_CORE_MEDICATION_REQUEST_PROFILE

RESOURCES = [
    ResourceCapability(
        type="Medication",
        profile=UK_CORE_MEDICATION_PROFILE,
        interactions=("read", "search-type"),
        search_params=(
            SearchParam("_id", "token", "dm+d id"),
            SearchParam("code", "token", "https://dmd.nhs.uk|<dm+d id> (VTM, VMP or AMP)"),
            SearchParam("name", "string",
                        "Prefix of any word of the name, or the name typed with a typo "
                        "(trigram word similarity)"),
        ),
        versioning="no-version",
    ),
    ResourceCapability(
        type="MedicationRequest",
        profile=UK_CORE_MEDICATION_REQUEST_PROFILE,
        interactions=("read", "vread", "history-instance", "create", "search-type"),
        search_params=(
            SearchParam("_id", "token"),
            SearchParam("patient", "reference"),
            SearchParam("subject", "reference"),
            SearchParam("intent", "token", "plan (authorisations) or order (issues)"),
            SearchParam("status", "token", "comma-separated statuses"),
            SearchParam("based-on", "reference", "the issues of an authorisation"),
        ),
        operations=("issue", "stop", "cancel"),
        versioning="versioned",
    ),
]
