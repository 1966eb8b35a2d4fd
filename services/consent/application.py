"""Consent commands and queries over the consent event store."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.identifiers import parse_person_identifier
from services.common.application import VersionedApplication
from services.consent.domain import Consent, decide


class ConsentRegistry(VersionedApplication):
    name = "Consents"
    # The disclosure check reads the same few consents again and again: keep them in memory.
    # Fast-forwarding reads any newer events first, so replicas never decide on stale state.
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "20000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }
    resource_type = "Consent"
    aggregate_class = Consent

    def give(self, **given: Any) -> Consent:
        consent = Consent(**given)
        self.save(consent)
        return consent

    def withdraw(
        self,
        consent_id: UUID,
        *,
        reason: str,
        withdrawn_by: dict[str, Any],
        at: datetime,
        expected_version: int | None = None,
    ) -> Consent:
        consent, _ = self.change(
            consent_id,
            lambda consent: consent.withdraw(reason=reason, withdrawn_by=withdrawn_by, at=at),
            expected_version=expected_version,
        )
        return consent

    def mark_entered_in_error(
        self,
        consent_id: UUID,
        *,
        reason: str,
        by: dict[str, Any],
        at: datetime,
        expected_version: int | None = None,
    ) -> Consent:
        consent, _ = self.change(
            consent_id,
            lambda consent: consent.mark_entered_in_error(reason=reason, by=by, at=at),
            expected_version=expected_version,
        )
        return consent

    def override_block(
        self,
        block_id: UUID,
        *,
        organization: str,
        reason: str,
        until: datetime,
        by: dict[str, Any],
        at: datetime,
    ) -> Consent:
        block, _ = self.change(
            block_id,
            lambda block: block.override_block(
                organization=organization, reason=reason, until=until, by=by, at=at
            ),
        )
        return block

    def check(
        self,
        request: ConsentCheckRequest,
        candidate_ids: list[UUID],
        at: datetime,
        *,
        guardians_required: int,
    ) -> ConsentDecision:
        consents = [self.repository.get(consent_id) for consent_id in candidate_ids]
        person = parse_person_identifier(request.patient_system, request.patient_value)
        return decide(consents, request, at, person=person, guardians_required=guardians_required)
