"""A transaction: every entry runs, in order, through the single request's own route while the
application's writes are held in a unit of work (unit_of_work.py); if every entry succeeds,
everything is appended in one store transaction, else nothing is, and the answer is the
refused entry's own refusal naming it.

Each entry is checked against the state the earlier entries left (held, not written), and a
`urn:uuid` it names is replaced by what the earlier entry made. Reads by id run after every
write, as FHIR orders them, and answer the resource as the transaction leaves it; their access
records are appended with the writes (a read whose answer never leaves was no disclosure).

Another writer that changed a resource or claimed an identifier meanwhile fails the append on
the store's keys, and the transaction runs again, from the start, on what that writer wrote:
so ten concurrent retries of a conditional create make one resource and the other nine find
it (200)."""

from __future__ import annotations

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from services.common.bundles.dispatch import EntryAnswer, dispatch
from services.common.bundles.entries import BundleEntry
from services.common.bundles.references import check_references, made_as, resolved
from services.common.bundles.responses import (
    response_bundle,
    response_entry,
    transaction_refusal,
)
from services.common.bundles.unit_of_work import holding_writes
from services.common.fhir_api import FhirError, FhirResponse

ATTEMPTS = 5  # runs of a transaction that lost the race to append to concurrent writers


def reads(entry: BundleEntry) -> bool:
    return entry.method in ("GET", "HEAD")


def _reads_by_id(entry: BundleEntry) -> bool:
    """`Type/id` and nothing more: a read the held writes answer (search, history, vread and
    `_at` read what is committed, not what the transaction holds)."""
    segments = entry.path.split("/")
    plain = all(segment[:1] not in ("_", "$") for segment in segments)
    return len(segments) == 2 and plain and "?" not in entry.url


def transaction_entries(entries: list[BundleEntry | FhirError]) -> list[BundleEntry]:
    """A transaction's entries, or the refusal of the first that is malformed or reads other
    than by id."""
    checked = []
    for entry in entries:
        if isinstance(entry, FhirError):
            raise entry
        searching = entry.path.endswith("/_search")
        if (reads(entry) and not _reads_by_id(entry)) or searching:
            where = f"{entry.expression}.request.{'url' if searching else 'method'}"
            raise FhirError(
                400,
                "not-supported",
                f"{where}: a transaction reads a resource by id only (Type/id); send a "
                "search, a history or an operation that reads in a batch",
                expression=where,
            )
        checked.append(entry)
    return checked


async def run_transaction(
    request: Request, application: Application, entries: list[BundleEntry]
) -> FhirResponse:
    check_references(entries)
    # As FHIR orders them: the writes in the order sent, then the reads, which see them.
    in_order = sorted(entries, key=reads)
    for _ in range(ATTEMPTS):
        with holding_writes(application) as unit:
            answers: dict[int, EntryAnswer] = {}
            made: dict[str, str] = {}
            for entry in in_order:
                answer = await dispatch(request, resolved(entry, made))
                if not answer.succeeded:
                    await run_in_threadpool(unit.refusals)
                    return transaction_refusal(entry, answer)
                found = made_as(answer.status, answer.headers.get("location"), answer.resource)
                if entry.full_url is not None and found is not None:
                    made[entry.full_url] = found
                answers[entry.index] = answer
        try:
            await run_in_threadpool(unit.commit)
        except IntegrityError:
            continue  # another writer appended first: run again on what it wrote
        entries_answered = [response_entry(answers[entry.index]) for entry in entries]
        return response_bundle("transaction", entries_answered)
    raise FhirError(
        409,
        "conflict",
        f"the resources were changed by others {ATTEMPTS} times while the transaction ran; "
        "nothing was written: send it again",
    )
