"""The names one service reads of another's events and codes are the ones the other uses."""

from eventsourcing.utils import get_topic

from contracts.canonical import CONSENT_CATEGORIES, CONSENT_CATEGORY_SIP_PLAN
from contracts.consent_events import (
    CONSENT_AGGREGATE,
    CONSENT_ENDING_EVENTS,
    CONSENT_EVENTS,
    CONSENT_GIVEN,
    CONSENT_WITHDRAWN,
    GIVEN_PATIENT,
    consent_event_name,
)
from services.consent.domain import Consent
from tests.test_consent_domain import ADULT, given


def consent_event_classes() -> dict[str, type]:
    """The events a consent records. The library gives every aggregate class an `Event` base
    and a `Created` event; a consent is created by `Given` instead."""
    return {
        name: member
        for name, member in vars(Consent).items()
        if isinstance(member, type)
        and issubclass(member, Consent.Event)
        and member not in (Consent.Event, Consent.Created)
    }


def test_the_consent_events_contract_names_the_consent_aggregates_events():
    assert Consent.__name__ == CONSENT_AGGREGATE
    assert set(consent_event_classes()) == set(CONSENT_EVENTS)
    assert set(CONSENT_ENDING_EVENTS) <= set(CONSENT_EVENTS)


def test_a_feed_items_type_names_its_consent_event():
    for name, event_class in consent_event_classes().items():
        assert consent_event_name(get_topic(event_class)) == name
    assert consent_event_name(get_topic(Consent.Withdrawn)) == CONSENT_WITHDRAWN
    assert consent_event_name("services.common.access_log:AccessRecord.Recorded") is None


def test_the_given_payload_has_the_fields_followers_read():
    (event,) = given().collect_events()
    assert consent_event_name(get_topic(type(event))) == CONSENT_GIVEN
    assert getattr(event, GIVEN_PATIENT) == ADULT.as_fhir()


def test_the_sip_category_is_a_consent_category():
    assert CONSENT_CATEGORY_SIP_PLAN in CONSENT_CATEGORIES
