"""A stay (discharge from inpatient care) as the pages show it: the `Encounter` the SIP service
gave this user, its steps read from the stay's extensions (docs/fhir-extensions.md), and its
duties with their legal clocks from the `Task`s the service derives from it. Only what the API
returned is here: a step withheld from this user is listed as withheld, and whether a duty is
overdue is the API's `task-overdue` marker, not a clock of the web client's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.canonical import CANONICAL_BASE
from services.web.fhir_client import FhirClient, Refused
from services.web.plan_view import Withheld, extension, extensions, part, withheld_of
from services.web.times import parse_instant

_EXT = f"{CANONICAL_BASE}/StructureDefinition"
EXT_STAY_STATUS = f"{_EXT}/stay-status"
EXT_CARE_NEEDED = f"{_EXT}/stay-care-needed"
EXT_ADMISSION_NOTICE = f"{_EXT}/stay-admission-notice"
EXT_ESTIMATED_DISCHARGE = f"{_EXT}/stay-estimated-discharge"
EXT_READY = f"{_EXT}/stay-ready-for-discharge"
EXT_CARE_CONTACT = f"{_EXT}/stay-fixed-care-contact"
EXT_SIP_PLAN = f"{_EXT}/stay-sip-plan"
EXT_INFORMATION_TRANSFER = f"{_EXT}/stay-information-transfer"
EXT_OUTPATIENT_UNAVAILABLE = f"{_EXT}/stay-outpatient-care-unavailable"
EXT_DEADLINE_MISSED = f"{_EXT}/stay-deadline-missed"
EXT_TASK_OVERDUE = f"{_EXT}/task-overdue"
EXT_TASK_PROVISIONAL = f"{_EXT}/task-due-provisional"
OPEN_TASKS = "requested,in-progress"


def hsa_of(reference: Any) -> str:
    if not isinstance(reference, dict):
        return ""
    return str((reference.get("identifier") or {}).get("value") or "")


def organization_in(reference: Any) -> str:
    """The organisation of a unit reference (`display` "<unit> (<organisation>)"), else its
    HSA-id."""
    display = str((reference or {}).get("display") or "")
    if display.endswith(")") and " (" in display:
        return display.rsplit(" (", 1)[1][:-1]
    return hsa_of(reference)


@dataclass(frozen=True)
class Recipient:
    unit: str
    organization: str
    kind: str
    received: str | None


@dataclass(frozen=True)
class ReadyPeriod:
    notified: str | None
    withdrawn: str | None
    reason: str | None


@dataclass(frozen=True)
class Duty:
    """One of the stay's duties (a Task): who must do it, by when, and whether it is overdue."""

    id: str
    stay_id: str
    code: str
    description: str
    status: str
    owner_unit: str
    owner_organization: str
    due: str | None
    overdue: bool
    provisional: bool

    def hours_left(self, now: datetime) -> int | None:
        """Whole hours until due (negative: past it), None without a due time."""
        due = parse_instant(self.due)
        if due is None:
            return None
        seconds = (due - now).total_seconds()
        return int(seconds // 3600) if seconds >= 0 else -int(-seconds // 3600)


def duty_of(task: dict[str, Any]) -> Duty:
    owner = task.get("owner") or {}
    reference = str((task.get("encounter") or {}).get("reference") or "")
    coding = ((task.get("code") or {}).get("coding") or [{}])[0]
    overdue = extension(task, EXT_TASK_OVERDUE) or {}
    provisional = extension(task, EXT_TASK_PROVISIONAL) or {}
    return Duty(
        id=str(task.get("id", "")),
        stay_id=reference.removeprefix("Encounter/"),
        code=str(coding.get("code") or ""),
        description=str(task.get("description") or ""),
        status=str(task.get("status") or ""),
        owner_unit=hsa_of(owner),
        owner_organization=organization_in(owner),
        due=((task.get("restriction") or {}).get("period") or {}).get("end"),
        overdue=bool(overdue.get("valueBoolean")),
        provisional=bool(provisional.get("valueBoolean")),
    )


@dataclass
class StayView:
    id: str
    version: str
    personnummer: str
    status: str  # the stay's own: admitted | ready | discharged
    ward: str
    organization: str  # the hospital's
    admitted: str | None
    discharged: str | None
    care_needed: list[str]
    notice_sent: str | None
    recipients: list[Recipient]
    estimated_discharge: str | None
    ready_periods: list[ReadyPeriod]
    care_contact: str | None
    care_contact_unit: str | None
    care_contact_organization: str | None
    care_contact_named: str | None
    sip_plan_id: str | None
    sip_called: str | None
    transfers: list[str]
    outpatient_unavailable: str | None  # when the region recorded it
    outpatient_unavailable_reason: str | None
    missed: list[dict[str, Any]]
    withheld: list[Withheld]
    duties: list[Duty] = field(default_factory=list)

    def recipient(self, unit: str | None) -> Recipient | None:
        return next((r for r in self.recipients if unit and r.unit == unit), None)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def discharged_already(self) -> bool:
        return self.status == "discharged"

    @property
    def open_duties(self) -> list[Duty]:
        """The duties not done yet, the one due first first (those without a due time last)."""
        waiting = [d for d in self.duties if d.status in ("requested", "in-progress")]
        return sorted(waiting, key=lambda d: (d.due is None, d.due or ""))

    @property
    def next_duty(self) -> Duty | None:
        duties = self.open_duties
        return duties[0] if duties else None

    @property
    def overdue(self) -> bool:
        return any(d.overdue for d in self.open_duties)


def stay_of(resource: dict[str, Any]) -> StayView:
    notice = extension(resource, EXT_ADMISSION_NOTICE)
    recipients = []
    for ext in (e for e in (notice or {}).get("extension", []) if e.get("url") == "recipient"):
        unit = part(ext, "unit")
        recipients.append(
            Recipient(hsa_of(unit), organization_in(unit), str(part(ext, "kind") or ""),
                      part(ext, "received"))
        )  # fmt: skip
    contact = extension(resource, EXT_CARE_CONTACT)
    sip = extension(resource, EXT_SIP_PLAN)
    plan_reference = str((part(sip, "plan") or {}).get("reference") or "")
    location = ((resource.get("location") or [{}])[0].get("location")) or {}
    period = resource.get("period") or {}
    status = extension(resource, EXT_STAY_STATUS) or {}
    contact_unit = part(contact, "unit")
    unavailable = extension(resource, EXT_OUTPATIENT_UNAVAILABLE)
    return StayView(
        id=str(resource.get("id", "")),
        version=str((resource.get("meta") or {}).get("versionId") or ""),
        personnummer=str(((resource.get("subject") or {}).get("identifier") or {}).get("value")),
        status=str(status.get("valueCode") or ""),
        ward=hsa_of(location),
        organization=hsa_of(resource.get("serviceProvider")),
        admitted=period.get("start"),
        discharged=period.get("end"),
        care_needed=[str(e.get("valueCode")) for e in extensions(resource, EXT_CARE_NEEDED)],
        notice_sent=part(notice, "sent"),
        recipients=recipients,
        estimated_discharge=(extension(resource, EXT_ESTIMATED_DISCHARGE) or {}).get(
            "valueDateTime"
        ),
        ready_periods=[
            ReadyPeriod(part(e, "notified"), part(e, "withdrawn"), part(e, "reason"))
            for e in extensions(resource, EXT_READY)
        ],
        care_contact=part(contact, "name"),
        care_contact_unit=hsa_of(contact_unit) if contact_unit else None,
        care_contact_organization=organization_in(contact_unit) if contact_unit else None,
        care_contact_named=part(contact, "named"),
        sip_plan_id=plan_reference.removeprefix("CarePlan/") or None,
        sip_called=part(sip, "called"),
        transfers=[
            str(e.get("valueDateTime")) for e in extensions(resource, EXT_INFORMATION_TRANSFER)
        ],
        outpatient_unavailable=part(unavailable, "recorded"),
        outpatient_unavailable_reason=part(unavailable, "reason"),
        missed=[
            {"duty": part(e, "duty"), "due": part(e, "due"), "owner": hsa_of(part(e, "owner"))}
            for e in extensions(resource, EXT_DEADLINE_MISSED)
        ],
        withheld=withheld_of(resource),
    )


def entries(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if (e.get("resource") or {}).get("resourceType") == resource_type
    ]


async def duties_of(fhir: FhirClient, form: dict[str, str]) -> list[Duty]:
    """The duties (Tasks) the API shows this user, in one search; none where the service
    serves no Task."""
    try:
        bundle = await fhir.search("sip", "Task", {"_count": "1000", **form})
    except Refused as refused:
        if refused.status in (404, 405):
            return []
        raise
    return [duty_of(task) for task in entries(bundle, "Task")]


async def search_stays(fhir: FhirClient, form: dict[str, str] | None = None) -> list[StayView]:
    """The stays the API shows this user, with their open duties: two searches in all."""
    bundle = await fhir.search("sip", "Encounter", {"_count": "1000", **(form or {})})
    stays = [stay_of(resource) for resource in entries(bundle, "Encounter")]
    if not stays:
        return []
    by_stay: dict[str, list[Duty]] = {}
    for duty in await duties_of(fhir, {"status": OPEN_TASKS}):
        by_stay.setdefault(duty.stay_id, []).append(duty)
    for stay in stays:
        stay.duties = by_stay.get(stay.id, [])
    return stays


async def load_stay(fhir: FhirClient, stay_id: str) -> StayView:
    """One stay with all its duties (a stay the user may not see: Refused 404)."""
    answer = await fhir.read("sip", f"Encounter/{stay_id}")
    stay = stay_of(answer.body)
    stay.duties = await duties_of(fhir, {"encounter": f"Encounter/{stay_id}"})
    return stay
