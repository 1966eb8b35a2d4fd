"""Events stored before their type gained fields are read through the real upcasters.

`Plan.Started` and `Consent.Given` are at class_version 2; the first release stored them
without the fields version 2 added. Here such events are written into the services' event
stores as that release stored them (its published v1 schema, no class_version), and read
back through the services: the upcast fields are there, the plan and the consent are FHIR a
record system reads, they work as any other (the consent permits, the plan is activated on
it), and the stored version 1 bytes are never rewritten. `Message.Sent` version 1 (before
admission notices were messages) reads as a message a unit wrote.
"""

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID, uuid4

import jsonschema
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.consent import Consent as FhirConsent

from contracts.canonical import EXT_INITIATIVE
from services.common.application import VersionedApplication
from services.common.fhir_time import now
from services.common.persistence import storage_for
from services.consent.application import ConsentRegistry
from services.consent.domain import Consent
from services.sip.application import SipPlans
from services.sip.domain import Plan
from services.sip.messages.message import Message
from tests.fhir_data import (
    FHIR_JSON,
    MUNICIPALITY,
    REGION,
    care_plan,
    new_personnummer,
    person,
    prepare_for_activation,
)

SCHEMAS = Path(__file__).parents[1] / "contracts" / "event_schemas"
COORDINATOR = {"subject": "coordinator-1", "role": "coordinator", "organization": REGION,
               "unit": None}  # fmt: skip


class PlanStartedV1(Aggregate.Created):
    """`Plan.Started` as the first release defined it: no organisation kind, no initiative."""

    subject: dict[str, str]
    starting_organization: str
    title: str | None
    description: str | None
    started_at: datetime
    started_by: dict[str, Any]


class ConsentGivenV1(Aggregate.Created):
    """`Consent.Given` as the first release defined it: no kind, givers, form, recipients,
    sources or exclusions."""

    patient: dict[str, str]
    scope: str
    categories: list[str]
    performer: list[dict[str, Any]]
    organizations: list[str]
    period_start: datetime | None
    period_end: datetime | None
    given_at: datetime
    recorded_by: dict[str, Any]


@pytest.fixture
def stores(system):
    """The services' event stores, opened beside the running services as a replica would."""
    backend = system.backend

    def event_store(service: str) -> dict[str, str]:
        storage = storage_for(service, backend.database_urls[service], backend.data_dir)
        return storage.event_store_env

    opened = [SipPlans(env=event_store("sip")), ConsentRegistry(env=event_store("consent"))]
    yield opened
    for application in opened:
        application.close()


def store_as_version_1(
    application: VersionedApplication, event: Aggregate.Created, stored_as: type
) -> StoredEvent:
    """Stores the event under the topic of today's class, as the first release did: the
    library's mapper writes no class_version for a class at version 1."""
    stored = application.mapper.to_stored_event(event)
    stored = dataclasses.replace(stored, topic=get_topic(stored_as))
    application.recorder.insert_events([stored])  # through the hash chain, as any write
    return stored


def valid_version_1(stored: StoredEvent, service: str, name: str) -> dict[str, Any]:
    payload = json.loads(stored.state)
    schema = json.loads((SCHEMAS / service / f"{name}.v1.json").read_text())
    jsonschema.validate(payload, schema)
    assert "class_version" not in payload
    return payload


def sealed_as_version_1(application: VersionedApplication, event: Any, *added: str) -> StoredEvent:
    """The plan's event as its version 1 was stored: without the fields version 2 `added`
    (the event is made with them None), valid against version 1's schema."""
    for name in added:
        object.__delattr__(event, name)
    with mock.patch.object(type(event), "class_version", 1):
        stored = application.mapper.to_stored_event(event)
    payload = valid_version_1(stored, "sip", f"Plan.{type(event).__name__}")
    assert not payload.keys() & set(added)
    return stored


def first_stored(application: VersionedApplication, aggregate_id: UUID) -> StoredEvent:
    return application.recorder.select_events(aggregate_id, lte=1)[0]


def test_version_1_events_are_upcast_read_as_fhir_and_never_rewritten(system, stores):
    plans, registry = stores
    personnummer, at = new_personnummer(), now()
    consent_id, plan_id = uuid4(), uuid4()
    given_v1 = ConsentGivenV1(
        originator_id=consent_id,
        originator_version=1,
        timestamp=at,
        originator_topic=get_topic(Consent),
        patient=person(personnummer),
        scope="patient-privacy",
        categories=["sip", "sip-plan"],
        performer=[{"identifier": person(personnummer)}],
        organizations=[REGION, MUNICIPALITY],
        period_start=at,
        period_end=None,
        given_at=at,
        recorded_by=COORDINATOR,
    )
    started_v1 = PlanStartedV1(
        originator_id=plan_id,
        originator_version=1,
        timestamp=at,
        originator_topic=get_topic(Plan),
        subject=person(personnummer),
        starting_organization=REGION,
        title="SIP",
        description=None,
        started_at=at,
        started_by=COORDINATOR,
    )
    stored_consent = store_as_version_1(registry, given_v1, Consent.Given)
    stored_plan = store_as_version_1(plans, started_v1, Plan.Started)
    assert "initiative" not in valid_version_1(stored_plan, "sip", "Plan.Started")
    assert "givers" not in valid_version_1(stored_consent, "consent", "Consent.Given")

    # Read through the application: the upcasters fill in what version 1 did not record.
    plan = plans.repository.get(plan_id)
    assert (plan.initiative, plan.organizations[REGION].kind) == ("region-unit", "region")
    consent = registry.repository.get(consent_id)
    assert (consent.kind, consent.form) == ("permit", "written")
    assert consent.givers == [{"role": "person"}]
    assert (consent.recipients, consent.sources, consent.exclusions) == ([], [], [])

    # Read through the services: FHIR a record system reads, found by search.
    read = system.sip.get(f"/fhir/CarePlan/{plan_id}")
    assert read.status_code == 200, read.text
    CarePlan.model_validate(read.json())
    assert {"url": EXT_INITIATIVE, "valueCode": "region-unit"} in read.json()["extension"]
    team = system.sip.get(f"/fhir/CareTeam/{plan_id}-team").json()
    assert [member["role"][0]["text"] for member in team["participant"]] == ["region"]
    found = system.sip.get("/fhir/CarePlan", params={"subject:identifier": f"|{personnummer}"})
    assert [entry["resource"]["id"] for entry in found.json()["entry"]] == [str(plan_id)]
    given = system.consent.get(f"/fhir/Consent/{consent_id}")
    assert given.status_code == 200, given.text
    FhirConsent.model_validate(given.json())
    assert given.json()["status"] == "active"

    # They work as any other: the upcast consent permits, and the plan, whose starting
    # organisation version 1 did not say is a principal, takes the overall responsibility.
    prepare_for_activation(system.sip, str(plan_id))
    activated = system.sip.post(f"/fhir/CarePlan/{plan_id}/$activate")
    assert activated.status_code == 200, activated.text
    assert activated.json()["supportingInfo"][0]["identifier"]["value"] == f"urn:uuid:{consent_id}"

    # Upcast on every reading, never rewritten: the stored version 1 events keep their bytes.
    for application, aggregate_id, stored in (
        (plans, plan_id, stored_plan),
        (registry, consent_id, stored_consent),
    ):
        assert first_stored(application, aggregate_id) == stored


class MessageSentV1(Aggregate.Created):
    """`Message.Sent` as stored before admission notices were messages: no category."""

    subject: dict[str, str]
    about: dict[str, str]
    text: str
    recipients: list[dict[str, Any]]
    replies_to: str | None
    correction: bool
    legal_basis: dict[str, Any]
    sent_at: datetime
    by: dict[str, Any]
    identifiers: list[dict[str, str]]


def test_a_message_stored_before_notices_were_messages_is_a_message(system, stores):
    plans, _ = stores
    message_id, at = uuid4(), now()
    sent_v1 = MessageSentV1(
        originator_id=message_id,
        originator_version=1,
        timestamp=at,
        originator_topic=get_topic(Message),
        subject=person(new_personnummer()),
        about={"type": "Encounter", "id": str(uuid4())},
        text="Skickat före version 2",
        recipients=[{"organization": MUNICIPALITY, "unit": None}],
        replies_to=None,
        correction=False,
        legal_basis={"basis": "secrecy-judgement", "judgement": "LSU"},
        sent_at=at,
        by=COORDINATOR,
        identifiers=[],
    )
    stored = store_as_version_1(plans, sent_v1, Message.Sent)
    assert "category" not in valid_version_1(stored, "sip", "Message.Sent")
    message = plans.repository.get(message_id)
    assert (message.category, message.notice, message.is_admission_notice) == (
        "message",
        None,
        False,
    )
    # Nor was the sender's kind recorded then (v3): its text is under the region's class.
    assert message.sender_kind is None
    assert message.retention_class_of({"sender_kind": message.sender_kind}) is None
    read = system.sip.get(f"/fhir/Communication/{message_id}")
    assert read.status_code == 200, read.text
    assert read.json()["category"][0]["coding"][0]["code"] == "message"
    assert first_stored(plans, message_id) == stored


def test_an_intervention_stored_with_its_text_in_the_dict_reads_with_it(system, stores):
    """`Plan.InterventionAssigned` version 1 held the description in the intervention's dict,
    sealed whole under the plan's class; version 2 keeps it in `text`, its author's. A
    version 1 event, stored as that release stored it, reads with its description."""
    plans, _ = stores
    personnummer = new_personnummer()
    made = system.sip.post("/fhir/CarePlan", json=care_plan(personnummer), headers=FHIR_JSON)
    assert made.status_code == 201, made.text
    plan_id = UUID(made.json()["id"])
    version = plans.repository.get(plan_id).version
    assigned_v1 = Plan.InterventionAssigned(
        originator_id=plan_id,
        originator_version=version + 1,
        timestamp=now(),
        intervention={
            "id": "intervention-1",
            "text": "Hemtjänst före version 2",
            "kind": "support",
            "responsible_principal": "region",
            "status": "planned",
            "performer_organization": REGION,
        },
        at=now(),
        by=COORDINATOR,
        text=None,
    )
    stored = sealed_as_version_1(plans, assigned_v1, "text")
    plans.recorder.insert_events([stored])

    plan = plans.repository.get(plan_id)
    intervention = plan.interventions["intervention-1"]
    assert (intervention.text, intervention.status) == ("Hemtjänst före version 2", "planned")
    read = system.sip.get(f"/fhir/CarePlan/{plan_id}")
    assert read.status_code == 200, read.text
    (activity,) = read.json()["activity"]
    assert activity["detail"]["description"] == "Hemtjänst före version 2"
    # Upcast on every reading, never rewritten.
    assert plans.recorder.select_events(plan_id, gt=version)[0] == stored


def test_an_answer_stored_with_its_comment_in_the_dict_is_upcast_with_it(stores):
    """`Plan.MeetingAnswered` version 1 held the comment in the answer's dict; version 2
    keeps it in `comment`, its author's. A version 1 event is upcast with `comment` None and
    its comment left in the dict, where the apply method takes it from."""
    plans, _ = stores
    answered_v1 = Plan.MeetingAnswered(
        originator_id=uuid4(),
        originator_version=5,
        timestamp=now(),
        meeting_id="meeting-1",
        answer={
            "id": "meeting-1-response-1",
            "participant": MUNICIPALITY,
            "answer": "accepted",
            "proposed_start": None,
            "proposed_end": None,
            "comment": "Svar före version 2",
        },
        at=now(),
        by={**COORDINATOR, "organization": MUNICIPALITY},
        comment=None,
    )
    stored = sealed_as_version_1(plans, answered_v1, "comment")
    upcast = plans.mapper.to_domain_event(stored)
    assert upcast.comment is None and upcast.answer["comment"] == "Svar före version 2"


def test_an_invitation_stored_with_its_texts_in_the_dict_is_upcast_with_them(stores):
    """`Plan.MeetingInvited` version 1 held the agenda and place in the meeting's dict;
    version 2 keeps them in `agenda` and `location`, its author's. A version 1 event is upcast
    with both None and its texts left in the dict, where the apply method takes them from."""
    plans, _ = stores
    meeting = {"id": "meeting-1", "start": "2027-02-01T10:00:00+01:00",
               "end": "2027-02-01T11:00:00+01:00", "participants": [MUNICIPALITY],
               "status": "booked", "organizer": REGION, "agenda": "Dagordning före version 2",
               "location": "Vårdcentralen"}  # fmt: skip
    invited_v1 = Plan.MeetingInvited(
        originator_id=uuid4(),
        originator_version=5,
        timestamp=now(),
        meeting=meeting,
        at=now(),
        by=COORDINATOR,
        agenda=None,
        location=None,
    )
    stored = sealed_as_version_1(plans, invited_v1, "agenda", "location")
    upcast = plans.mapper.to_domain_event(stored)
    assert (upcast.agenda, upcast.location) == (None, None)
    assert upcast.meeting == meeting


def test_a_scheduled_meeting_stored_with_its_place_in_the_dict_is_upcast_with_it(stores):
    """`Plan.MeetingScheduled` version 1 held the place in the meeting's dict; version 2 keeps
    it in `location`, its author's. A version 1 event is upcast with it None and the place
    left in the dict, where the apply method takes it from."""
    plans, _ = stores
    meeting = {"id": "meeting-1", "start": "2027-03-01T10:00:00+01:00",
               "end": "2027-03-01T11:00:00+01:00", "invitees": ["Dottern"],
               "status": "booked", "location": "Vårdcentralen", "video": None}  # fmt: skip
    scheduled_v1 = Plan.MeetingScheduled(
        originator_id=uuid4(),
        originator_version=5,
        timestamp=now(),
        meeting=meeting,
        at=now(),
        by=COORDINATOR,
        location=None,
    )
    stored = sealed_as_version_1(plans, scheduled_v1, "location")
    upcast = plans.mapper.to_domain_event(stored)
    assert upcast.location is None and upcast.meeting == meeting
