"""The subscription topics the SIP service offers, as record systems name them: each topic's
canonical URL is what a Subscription's `criteria` holds (FHIR Subscriptions Backport IG)."""

from __future__ import annotations

from contracts.canonical import CANONICAL_BASE

PLAN_CHANGED = "plan-changed"
ORGANIZATION_INVITED = "organization-invited"
DEVIATION_REPORTED = "deviation-reported"
FOLLOW_UP_OVERDUE = "follow-up-overdue"
CONSENT_WITHDRAWN = "consent-withdrawn"
TOPIC_CODES = (
    PLAN_CHANGED, ORGANIZATION_INVITED, DEVIATION_REPORTED, FOLLOW_UP_OVERDUE, CONSENT_WITHDRAWN,
)  # fmt: skip

# Which part of a plan a plan-changed notification is about (filter `part=`).
PLAN_PARTS = (
    "status", "participant", "need", "goal", "intervention", "responsibility", "meeting",
    "follow-up", "deviation", "cost-allocation", "approval",
)  # fmt: skip

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
BACKPORT_PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
BACKPORT_HEARTBEAT_PERIOD = f"{BACKPORT}/backport-heartbeat-period"
BACKPORT_TIMEOUT = f"{BACKPORT}/backport-timeout"
BACKPORT_SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"
BACKPORT_STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"
BACKPORT_NOTIFICATION_PROFILE = f"{BACKPORT}/backport-subscription-notification-r4"
CAPABILITY_TOPIC_EXTENSION = f"{BACKPORT}/capabilitystatement-subscriptiontopic-canonical"


def topic_canonical(code: str) -> str:
    return f"{CANONICAL_BASE}/SubscriptionTopic/{code}"
