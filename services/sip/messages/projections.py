"""The messages' read model (issue 15): which messages may concern a caller, by the
organisations and units that sent or received them and by the person's blind index, and what
each is about, so the Communication search loads only those messages, not every message in
the store. It narrows, it never decides: every message it names is loaded and passed through
`MessageDisclosure`. Nothing personal is stored (the blind index, never the number), and an
erased person's rows go on rebuild (`AggregateIndex.forget`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table
from sqlalchemy.engine import Connection

from services.sip.messages.message import Message
from services.sip.projections import PartyIndex

metadata = MetaData()
message_index = Table(
    "message_index",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("person", String(64), index=True),
    Column("about_type", String(40), nullable=False),
    Column("about_id", String(64), nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Index("ix_message_index_about", "about_type", "about_id"),
)
# The sender's organisation and unit, every recipient's organisation and unit.
message_parties = PartyIndex.parties_table("message_parties", metadata, "message_id")


class MessageIndex(PartyIndex):
    """Finds the messages a caller may be concerned by."""

    name = "message_index"
    metadata = metadata
    aggregate_class = Message
    index = message_index
    parties = message_parties

    def row(self, message: Message, event: Any) -> dict[str, Any]:
        return {
            "person": self.person_stored(message.subject),
            "about_type": message.about["type"],
            "about_id": message.about["id"],
            "last_updated": event.timestamp,
        }

    def apply_related(self, connection: Connection, message: Message) -> None:
        parties = {message.custodian, message.sender_unit}
        for recipient in message.recipients.values():
            parties |= {recipient.organization, recipient.unit}
        self.replace_parties(connection, str(message.id), parties)
