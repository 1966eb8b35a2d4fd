"""Which fields of each stored event are personal, sealed with the person's data key when the
service encrypts personal data (docs/decisions/0007). Fixed, as CREATION_FIELDS are: a field
sealed once stays sealed in the stored bytes, and a field left out was stored in clear.

Keyed by event topic. `person` names the field that holds the person's identifier, on the
event that creates the record; later events of the record find the person through it.
`retention_class` is the kind of record the retention rules name (one data key each).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonalFields:
    fields: tuple[str, ...]
    retention_class: str
    person: str | None = None
    # Where `person` is empty on a creation event: text fields whose personnummer, if they
    # name one, is the person the record is sealed under (a search that matched nobody).
    person_named_in: tuple[str, ...] = ()
    # Whether the record has events after its creation, which find their person through it
    # (an access record has none: the mapper need not remember its person).
    later_events: bool = True
    # Text fields sealed under the class of the entry's author instead (the kind of the
    # organisation that wrote it: `region` or `municipality`), as the record tells it
    # (`retention_class_of` on the aggregate being saved); `retention_class` where it cannot.
    by_author: tuple[str, ...] = ()

    def class_of(self, name: str, author_class: str | None) -> str:
        if author_class is not None and name in self.by_author:
            return author_class
        return self.retention_class


_PLAN = "services.sip.domain:Plan."
# The plan's identity (its person) and its structured parts (interventions, meetings,
# participants, follow-ups: their ids and statuses are what later events refer to) are under
# the region's class, kept longest; its free texts under the class of the organisation that
# wrote them, so the municipality's are erased on the municipality's date (docs/decisions/0007).
PLAN_CLASS = "region"
# The classes an author's organisation kind seals under; any other kind (and the person's own
# entries) under PLAN_CLASS.
AUTHOR_CLASSES = ("region", "municipality")


def _texts(*fields: str) -> PersonalFields:
    """A plan entry whose personal fields are its author's free text."""
    return PersonalFields(fields, PLAN_CLASS, by_author=fields)


# The stay (docs/decisions/0008) is the hospital's patient record: the region's class.
_STAY = "services.sip.discharge.stay:Stay."
STAY_CLASS = "region"
# A message (docs/decisions/0012): its person under the region's class, its text under the
# class of the sender's organisation (`Message.retention_class_of`: the kind recorded when it
# was sent); messages sent before the kind was recorded were sealed whole under the region's.
_MESSAGE = "services.sip.messages.message:Message."
MESSAGE_CLASS = "region"
_CONSENT = "services.consent.domain:Consent."
CONSENT_CLASS = "consent"
_ACCESS = "services.common.access_log:AccessRecord."
ACCESS_CLASS = "access"

PERSONAL_FIELDS: dict[str, PersonalFields] = {
    _PLAN + "Started": PersonalFields(
        ("subject", "title", "description"),
        PLAN_CLASS,
        "subject",
        by_author=("title", "description"),
    ),
    _PLAN + "NeedRecorded": _texts("text", "wishes"),
    _PLAN + "GoalSet": _texts("text"),
    _PLAN + "GoalRevised": _texts("text", "reason"),
    _PLAN + "GoalAssessed": _texts("note"),
    # The intervention's structure (ids, kinds, organisations, dates: what later events name)
    # under the plan's class; its description (`text`, v2) its author's. A v1 event holds the
    # text inside the dict, sealed whole under the plan's class.
    _PLAN + "InterventionAssigned": PersonalFields(
        ("intervention", "text"), PLAN_CLASS, by_author=("text",)
    ),
    _PLAN + "InterventionStatusChanged": _texts("reason"),
    _PLAN + "ChangesRejected": _texts("reason"),
    _PLAN + "Closed": _texts("reason", "note"),
    _PLAN + "DeviationReported": _texts("text"),
    _PLAN + "DeviationAnswered": _texts("answer"),
    # v2: the place in a field of its own, its author's; a v1 event holds it inside the
    # meeting, sealed whole under the plan's class.
    _PLAN + "MeetingScheduled": PersonalFields(
        ("meeting", "location"), PLAN_CLASS, by_author=("location",)
    ),
    _PLAN + "MeetingHeld": _texts("notes"),
    # The invitation's place, link and agenda, and an answer's comment, are about the person.
    # v2: the agenda and place in fields of their own, their author's; a v1 event holds them
    # inside the meeting, sealed whole under the plan's class.
    _PLAN + "MeetingInvited": PersonalFields(
        ("meeting", "agenda", "location"), PLAN_CLASS, by_author=("agenda", "location")
    ),
    # An answer's comment (v2) is its author's; the answer itself the plan's. A v1 event holds
    # the comment inside the answer, sealed whole under the plan's class.
    _PLAN + "MeetingAnswered": PersonalFields(
        ("answer", "comment"), PLAN_CLASS, by_author=("comment",)
    ),
    _PLAN + "MeetingRescheduled": PersonalFields(
        ("location", "video"), PLAN_CLASS, by_author=("location",)
    ),
    _PLAN + "MeetingCancelled": _texts("reason"),
    # What a follow-up reviewed and the changes it made are texts about the person, each in a
    # field of its own: its author's. Follow-ups stored before `reviewed` was declared hold it
    # in clear and read as they are (a field is opened only where it is stored sealed).
    _PLAN + "FollowUpRecorded": _texts("reviewed", "changes"),
    _PLAN + "ParticipantAdded": PersonalFields(("participant",), PLAN_CLASS),
    # `legal_basis` is sealed whole: a secrecy judgement is free text about the person (and
    # the consents relied on are theirs). Units, times and principals stay in clear, as the
    # plan's do: the clock and the payment report are about organisations, not the person.
    _STAY + "Admitted": PersonalFields(("subject",), STAY_CLASS, "subject"),
    _STAY + "AdmissionNoticeSent": PersonalFields(("legal_basis",), STAY_CLASS),
    _STAY + "CareContactNamed": PersonalFields(("name", "legal_basis"), STAY_CLASS),
    _STAY + "ReadyNotified": PersonalFields(("legal_basis",), STAY_CLASS),
    _STAY + "ReadyWithdrawn": PersonalFields(("reason", "legal_basis"), STAY_CLASS),
    _STAY + "InformationTransferred": PersonalFields(("legal_basis",), STAY_CLASS),
    _STAY + "SipCalled": PersonalFields(("legal_basis",), STAY_CLASS),
    _STAY + "OutpatientCareUnavailable": PersonalFields(("reason",), STAY_CLASS),
    # The text is free text about the person; the legal basis as the stay's. The receipt
    # (`Read`) names only the recipient unit and who read it.
    _MESSAGE + "Sent": PersonalFields(
        ("subject", "text", "legal_basis"), MESSAGE_CLASS, "subject", by_author=("text",)
    ),
    _CONSENT + "Given": PersonalFields(
        ("patient", "performer", "givers"), CONSENT_CLASS, "patient"
    ),
    _CONSENT + "Withdrawn": PersonalFields(("reason",), CONSENT_CLASS),
    _CONSENT + "EnteredInError": PersonalFields(("reason",), CONSENT_CLASS),
    _CONSENT + "BlockOverridden": PersonalFields(("reason",), CONSENT_CLASS),
    # Who was accessed, how they were looked for and what was done: sealed under the person's
    # `access` key. A search by a number that matched nobody names no patient: sealed under
    # the key of the person the number names (made then); a record naming no one and no
    # number is stored in clear (docs/decisions/0007).
    _ACCESS + "Recorded": PersonalFields(
        ("patient", "query", "detail"),
        ACCESS_CLASS,
        "patient",
        person_named_in=("query", "detail"),
        later_events=False,
    ),
}
