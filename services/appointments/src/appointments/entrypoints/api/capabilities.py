"""What the appointments service serves, declared once: /metadata and the gateway are built from it."""

from gpsoc_kit.capability import ResourceCapability, SearchParam

from ...domain.appointment import (
    UK_CORE_APPOINTMENT_PROFILE,
    UK_CORE_SCHEDULE_PROFILE,
    UK_CORE_SLOT_PROFILE,
)

SLOT_INCLUDES = ["Slot:schedule", "Schedule:actor:Practitioner"]

RESOURCES = [
    ResourceCapability(
        type="Schedule",
        profile=UK_CORE_SCHEDULE_PROFILE,
        interactions=("read", "create", "search-type"),
        search_params=(SearchParam("actor", "reference", "Practitioner/<id>"),),
        operations=("add-session",),
        versioning="versioned",
    ),
    ResourceCapability(
        type="Slot",
        profile=UK_CORE_SLOT_PROFILE,
        interactions=("read", "search-type"),
        search_params=(
            SearchParam("start", "date",
                        "Required twice: ge<date> and le<date>, at most 14 days apart"),
            SearchParam("status", "token", "free (only bookable slots are ever returned)"),
            SearchParam("schedule", "reference"),
            SearchParam("schedule.actor", "reference", "Practitioner/<id>"),
            SearchParam("service-type", "token", "slot type: routine, urgent, review, ..."),
            SearchParam("delivery-channel", "token", "In-person, Telephone, Video, Home-visit"),
            SearchParam("_total", "token",
                        "accurate: Bundle.total counts every match; otherwise only the last "
                        "page carries it (follow the next link)"),
        ),
        operations=("hold", "block", "unblock"),
        versioning="versioned",
        extra={"searchInclude": SLOT_INCLUDES},
    ),
    ResourceCapability(
        type="Appointment",
        profile=UK_CORE_APPOINTMENT_PROFILE,
        interactions=("read", "vread", "update", "history-instance", "create", "search-type"),
        search_params=(
            SearchParam("patient", "reference"),
            SearchParam("practitioner", "reference", "A clinician's list"),
            SearchParam("date", "date", "eq (a whole day), ge, gt, le, lt"),
            SearchParam("status", "token"),
        ),
    ),
]

# ResourceCapability has no field for _include; added to the Slot entry of /metadata.
