"""Consent commands and queries over the consent event store."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from contracts.consent_decision import ConsentCheckRequest, ConsentDecision
from contracts.identifiers import parse_person_identifier
from services.common.application import VersionedApplication
from services.common.business_identifiers import IdentifierClaims
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

    def give(self, claims: IdentifierClaims | None = None, **given: Any) -> Consent:
        """Records a consent; with `claims`, raises IdentifierTaken (writing nothing) where
        the recorder gave one of its identifiers to a consent before."""
        consent = Consent(**given)
        if claims is None:
            self.save(consent)
        else:
            claims.save(self, consent)
        return consent

    def check(
        self,
        request: ConsentCheckRequest,
        candidate_ids: list[UUID],
        at: datetime,
        *,
        guardians_required: int,
    ) -> ConsentDecision:
        consents = [
            self.repository.get(consent_id, copy=Consent.read_copy) for consent_id in candidate_ids
        ]
        person = parse_person_identifier(request.patient_system, request.patient_value)
        return decide(consents, request, at, person=person, guardians_required=guardians_required)
