"""The erasure event: a data key was deleted under a retention rule (`sip retention run`,
docs/decisions/0007). It holds no personal data: the key's id, its retention class, the
rule and when. One per key, under an id derived from the key's, so recording it twice
stores it once."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

ERASURE_NAMESPACE = UUID("6f1c1d1e-8f0a-4c1b-9c61-2e1d0a7e5a11")


def erasure_id(key_id: str) -> UUID:
    return uuid.uuid5(ERASURE_NAMESPACE, key_id)


class Erasure(Aggregate):
    @event("Recorded")
    def __init__(self, *, key_id: str, retention_class: str, rule: str, erased_at: str) -> None:
        self.key_id = key_id
        self.retention_class = retention_class
        self.rule = rule
        self.erased_at = erased_at

    @classmethod
    def create_id(cls, *_: Any, key_id: str, **__: Any) -> UUID:
        return erasure_id(key_id)

    # No person and no custodian: the access log records nothing about it.
    person_identifier = None
    custodian = None
