"""read, vread, _history and search for an event-sourced resource type.

Every route authenticates the caller, checks the resource's disclosure rule (a resource the
caller may not see is 404, so its existence does not leak), renders every version through
the type's redaction (what of it the caller may see, decided once per request) and logs the
access before the answer leaves. Routes get aggregates only from `ResourceAccess`, which
applies both, so none can render what the caller may not see.
"""

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from contracts.actor import Actor
from services.common.access_log import ACTION_OF_INTERACTION, REFUSED, SUCCESS
from services.common.application import VersionedApplication, VersionStepper
from services.common.audit.feed import event_topics
from services.common.auth.dependency import authorize
from services.common.disclosure import PERSON, Discloser, Disclosure
from services.common.domain import NotFound
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    access_log_unwritable,
    fhir_base,
    history_bundle,
    resource_response,
    whole_number,
)
from services.common.fhir_time import InvalidDateTime, now, parse_fhir_datetime, published
from services.common.http_conventions import ignoring_unknown_parameters
from services.common.paging import Page, keyset_page, opened_query, page_links
from services.common.position_paging import PositionPager
from services.common.result_parameters import RESULT_PARAMETERS, ResultParameters, SortKey
from services.common.search import query_of
from services.common.search_declarations import SearchDeclarations


def resource_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise FhirError(404, "not-found", f"no resource with id '{value}'") from None


_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def storable_text(text: str | None) -> str | None:
    """Text from a request as an access record may hold it: control characters and lone
    surrogates escaped (\\u0000). The requests are checked before this; it is the second line
    of defence, as one NUL in PostgreSQL's text columns breaks the log for every reader."""
    if text is None:
        return None
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


# The aggregate as a reader of the disclosure may see it (by default the aggregate itself).
Redactor = Callable[[Any, Disclosure], Any]


def _whole(aggregate: Any, disclosure: Disclosure) -> Any:
    return aggregate


@dataclass(frozen=True)
class Disclosed:
    """One aggregate as one caller may see it: the current version and every other version
    read through the same disclosure and redaction, so no route renders an unredacted one."""

    access: "ResourceAccess"
    disclosure: Disclosure
    current: Any

    def version(self, number: int) -> Any:
        then = self.access.aggregate(self.current.id, version=number)
        return self.access.redact(then, self.disclosure)

    def stepper(self) -> Callable[[int], Any]:
        """Versions asked oldest first, each stepped forward from the one before (one replay
        for a run of them, services/common/application.py `VersionStepper`), as the caller
        may see them."""
        step = VersionStepper(self.access.application, self.current.id, load=self.access.aggregate)
        return lambda number: self.access.redact(step(number), self.disclosure)

    def at(self, instant: datetime) -> Any:
        then = self.access.application.version_at(self.current.id, instant)
        return self.access.redact(then, self.disclosure)

    def versions(self) -> Iterator[Any]:
        for then in self.access.application.versions(self.current.id):
            yield self.access.redact(then, self.disclosure)

    def stepped(self) -> list[tuple[Any, Callable[[], Any]]]:
        """Each stored event, with the version it made as the caller may see it, reconstructed
        only when called: the versions' numbers and times without replaying any of them."""
        events = list(self.access.application.events.get(self.current.id))
        step = VersionStepper(self.access.application, self.current.id, events)

        def then(number: int) -> Any:
            return self.access.redact(step(number), self.disclosure)

        return [(event, lambda number=event.originator_version: then(number)) for event in events]


class ResourceAccess:
    """Disclosure-checked, redacted, logged access to one application's resources: the one
    way out. Whatever a route returns of an aggregate comes from `disclosed`, `open`,
    `visible` or `as_seen_by`, each of which applies the disclosure rule and the redaction."""

    def __init__(
        self,
        application: VersionedApplication,
        disclose: Discloser,
        redact: Redactor = _whole,
        withheld_parts: Callable[[Any], set[str]] = lambda redacted: set(),
        custodians_shown: Callable[[Any], Iterable[str | None]] = lambda seen: (seen.custodian,),
        other: tuple[str, type[Any]] | None = None,
    ) -> None:
        self.application = application
        self.disclose = disclose
        self.redact = redact
        # The ids of the parts a redacted aggregate left out.
        self.withheld_parts = withheld_parts
        # Whose entries a redacted aggregate shows: each is logged as a custodian of the
        # access, so every organisation's auditors find who read its entries, on what consent.
        self.custodians_shown = custodians_shown
        # `other`: (resource type, class) of another aggregate class the store holds (a SIP
        # service's stays), served by this access instead of the application's own.
        self.resource_type, self.aggregate_class = other or (
            application.resource_type,
            application.aggregate_class,
        )

    def aggregate(self, aggregate_id: UUID, version: int | None = None) -> Any:
        """The aggregate if it is of this access's class: another class's id is not found."""
        return self.application.aggregate_of(
            self.aggregate_class, self.resource_type, aggregate_id, version
        )

    def aggregate_ids(self) -> Iterator[UUID]:
        return self.application.aggregate_ids(aggregate_class=self.aggregate_class)

    def logged_custodians(self, seen: Any) -> list[str | None]:
        """The custodians an access to this (redacted) aggregate is logged under: those whose
        entries it shows (the person's own entries are theirs, not an organisation's)."""
        shown = {c for c in self.custodians_shown(seen) if c and c != PERSON}
        return sorted(shown) or [seen.custodian]

    def log(self, actor: Actor, interaction: str, **content: Any) -> None:
        """One access record (`record`'s keywords), in a transaction of its own."""
        self.log_all([self.record(actor, interaction, **content)])

    def record(
        self,
        actor: Actor,
        interaction: str,
        *,
        outcome: str = SUCCESS,
        patient: dict[str, str] | None = None,
        custodian: str | None = None,
        entity: str | None = None,
        consents: Iterable[str] = (),
        query: str | None = None,
        detail: str | None = None,
    ) -> dict[str, Any]:
        """One access record's content, for `log_all`."""
        return {
            "interaction": interaction,
            "action": ACTION_OF_INTERACTION.get(interaction, "E"),
            "outcome": outcome,
            "actor": actor.as_event_data(),
            "patient": patient,
            "custodian": custodian,
            "entity": storable_text(entity),
            "consents": list(consents),
            "query": storable_text(query),
            "detail": storable_text(detail),
            "recorded_at": now(),
        }

    def log_all(self, records: list[dict[str, Any]]) -> None:
        """Saves a request's access records in one transaction (one commit however many
        persons it showed); if they cannot be written the request fails (fail closed)."""
        try:
            self.application.record_accesses(records)
        except Exception as error:
            raise access_log_unwritable(error) from None

    def disclosed(
        self, actor: Actor, aggregate_id: UUID, interaction: str, entity: str
    ) -> "Disclosed":
        """The aggregate as the caller may see it (NotFound if not at all); the access is
        logged either way, with the consents relied on."""
        aggregate = self.aggregate(aggregate_id)
        disclosure = self._disclosure(actor, aggregate, interaction, entity)
        seen = self.redact(aggregate, disclosure)
        self.log_all(
            [
                self.record(
                    actor,
                    interaction,
                    patient=aggregate.person_identifier,
                    custodian=custodian,
                    entity=entity,
                    consents=disclosure.consents,
                )
                for custodian in self.logged_custodians(seen)
            ]
        )
        return Disclosed(self, disclosure, seen)

    def open(self, actor: Actor, aggregate_id: UUID, interaction: str, entity: str) -> Any:
        """The current version as the caller may see it; the access is logged either way."""
        return self.disclosed(actor, aggregate_id, interaction, entity).current

    def as_seen_by(self, actor: Actor, aggregate: Any) -> Any:
        """An aggregate the caller has just changed, as it may see it in the answer (the
        change itself was disclosure-checked and logged by `for_change` and the write)."""
        return self.redact(aggregate, self.disclose(aggregate, actor))

    def for_change(
        self, actor: Actor, aggregate_id: UUID, interaction: str
    ) -> tuple[Any, Disclosure]:
        """The aggregate, if the caller may see it, to run a command on, with what of it the
        caller sees; a refusal is logged, the write logs itself."""
        aggregate = self.aggregate(aggregate_id)
        entity = f"{self.resource_type}/{aggregate_id}"
        return aggregate, self._disclosure(actor, aggregate, interaction, entity)

    def refuse_withheld(
        self,
        actor: Actor,
        aggregate: Any,
        disclosure: Disclosure,
        interaction: str,
        names: Iterable[str],
    ) -> None:
        """A command that `names` a part withheld from the caller (by the `disclosure` of
        `for_change`) is refused (409): acting on an entry one may not see would disclose it
        (a revised goal keeps its old text, a status change answers with the intervention).
        Asked after the caller's permission, so one not permitted the operation at all is
        told that first."""
        entity = f"{self.resource_type}/{aggregate.id}"
        withheld = set(names) & self.withheld_parts(self.redact(aggregate, disclosure))
        if not withheld:
            return
        self.log(
            actor,
            interaction,
            outcome=REFUSED,
            patient=aggregate.person_identifier,
            custodian=aggregate.custodian,
            entity=entity,
            detail="names an entry withheld from the caller",
        )
        raise FhirError(
            409,
            "business-rule",
            f"{', '.join(sorted(withheld))}: an entry withheld from the caller "
            "(without the person's consent it is not disclosed, so not changed either)",
        )

    def _disclosure(self, actor: Actor, aggregate: Any, interaction: str, entity: str) -> Any:
        try:
            return self.disclose(aggregate, actor)
        except NotFound:
            self.log(
                actor,
                interaction,
                outcome=REFUSED,
                patient=aggregate.person_identifier,
                custodian=aggregate.custodian,
                entity=entity,
                detail="not disclosed to the caller",
            )
            raise

    def visible(
        self,
        actor: Actor,
        aggregates: Iterable[Any],
        query: str,
        interaction: str = "search-type",
        limit: int | None = None,
        matches: Callable[[Any], bool] | None = None,
    ) -> list[Any]:
        """The search matches the caller may see, as they may see them (the first `limit`);
        `matches` is asked again of what the caller sees, so a match found only in a withheld
        entry is no match. One log record per person and custodian."""
        return [
            disclosed.current
            for disclosed in self.visible_disclosed(
                actor, aggregates, query, interaction, limit, matches
            )
        ]

    def visible_disclosed(
        self,
        actor: Actor,
        aggregates: Iterable[Any],
        query: str,
        interaction: str = "search-type",
        limit: int | None = None,
        matches: Callable[[Any], bool] | None = None,
    ) -> list["Disclosed"]:
        shown: list[tuple[Any, Disclosed]] = []
        for found in self.disclosed_matches(actor, aggregates, matches):
            if limit is not None and len(shown) >= limit:
                break
            shown.append(found)
        self.log_shown(actor, shown, query, interaction)
        return [disclosed for _, disclosed in shown]

    def visible_page(
        self,
        actor: Actor,
        aggregates: Iterable[Any],
        query: str,
        order: Callable[[Any], Any],
        position: dict[str, Any],
        count: int,
        interaction: str = "search-type",
        matches: Callable[[Any], bool] | None = None,
    ) -> Page["Disclosed"]:
        """One page of the matches the caller may see, in `order` (a stable key of the
        aggregate): every match is disclosure-checked first, so the total counts only what
        the caller may see and a page is filled with visible matches. Only the page's are
        logged as disclosed (a count-only answer logs the search without entities)."""

        def key(found: tuple[Any, Disclosed]) -> Any:
            return order(found[0])

        seen = sorted(self.disclosed_matches(actor, aggregates, matches), key=key)
        page = keyset_page(seen, key, position, count)
        self.log_shown(actor, page.items, query, interaction, page.total)
        return Page(
            [disclosed for _, disclosed in page.items],
            page.total,
            page.first_key,
            page.last_key,
            page.more_after,
            page.more_before,
        )

    def disclosed_matches(
        self, actor: Actor, aggregates: Iterable[Any], matches: Callable[[Any], bool] | None
    ) -> Iterator[tuple[Any, "Disclosed"]]:
        """(aggregate, as the caller sees it) of each the caller may see and that matches."""
        for aggregate in aggregates:
            try:
                disclosure = self.disclose(aggregate, actor)
            except NotFound:
                continue
            seen = self.redact(aggregate, disclosure)
            if matches is not None and not matches(seen):
                continue
            yield aggregate, Disclosed(self, disclosure, seen)

    def log_shown(
        self,
        actor: Actor,
        shown: list[tuple[Any, "Disclosed"]],
        query: str,
        interaction: str,
        total: int = 0,
    ) -> None:
        """One log record per person and custodian of what a search shows."""
        entities: dict[tuple[str, str, str | None], list[str]] = {}
        consents: dict[tuple[str, str, str | None], set[str]] = {}
        for aggregate, disclosed in shown:
            person = aggregate.person_identifier
            for custodian in self.logged_custodians(disclosed.current):
                key = (person["system"], person["value"], custodian)
                entities.setdefault(key, []).append(f"{self.resource_type}/{aggregate.id}")
                consents.setdefault(key, set()).update(disclosed.disclosure.consents)
        # One transaction for all of them: a search showing 2,000 persons is one commit.
        self.log_all(
            [
                self.record(
                    actor,
                    interaction,
                    patient={"system": system, "value": value},
                    custodian=custodian,
                    entity=" ".join(matched),
                    consents=sorted(consents[(system, value, custodian)]),
                    query=query,
                )
                for (system, value, custodian), matched in entities.items()
            ]
        )
        if not entities:
            detail = f"{total} matches counted, none shown" if total else None
            self.log(
                actor, interaction, query=query, detail=detail or "no match the caller may see"
            )


def instant_parameter(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_fhir_datetime(value)
    except (InvalidDateTime, OverflowError) as error:
        raise FhirError(400, "invalid", f"{name}: {error}", expression=name) from None


T = TypeVar("T")


def history_window(
    versions: list[T],
    moment: Callable[[T], datetime],
    since: datetime | None,
    at: datetime | None,
) -> list[T]:
    """The versions (oldest first) from `_since` on, and with `_at` those current at some
    time from that instant on: the one in force then and every later one."""
    if since is not None:
        versions = [v for v in versions if moment(v) >= since]
    if at is not None:
        current = [v for v in versions if moment(v) <= at][-1:]
        versions = current + [v for v in versions if moment(v) > at]
    return versions


Since = Annotated[str | None, Query(alias="_since", description="versions from this instant")]
At = Annotated[str | None, Query(alias="_at", description="as the resource stood at this instant")]
Count = Annotated[
    str | None, Query(alias="_count", description="versions a page holds: 0 (the total) to 1000")
]
Cursor = Annotated[str | None, Query(alias="_cursor", description="a next or previous link's")]
Summary = Annotated[str | None, Query(alias="_summary", description="true | data | count | false")]
Elements = Annotated[
    str | None, Query(alias="_elements", description="elements to show, comma-separated")
]
Total = Annotated[str | None, Query(alias="_total", description="none | estimate | accurate")]
TypeTotal = Annotated[
    str | None,
    Query(alias="_total", description="none (the default) | estimate | accurate: the total"),
]
HISTORY_PAGE = 100
_COUNTED = 1000  # notifications a total reads at a time


@dataclass(frozen=True)
class ResourceVersion:
    """One version of a resource as its history lists it; rendered only when shown."""

    at: datetime
    version_id: str
    created: bool  # the version that created the resource
    render: Callable[[], dict[str, Any]]


class VersionedResource(Protocol):
    """A resource type whose versions are read from event-sourced aggregates: the aggregate's
    own type, or a view of one part of it (a plan's goals, meetings, care team)."""

    resource_type: str
    access: ResourceAccess

    def locate(self, id: str) -> tuple[UUID, str]:
        """(aggregate id, part) of a resource id."""
        ...

    def render(self, aggregate: Any, part: str) -> dict[str, Any] | None:
        """The resource of `part` in this version of the aggregate; None if it has none."""
        ...

    def versions(self, disclosed: Disclosed) -> dict[str, list[ResourceVersion]]:
        """Every part's versions as the caller may see them, oldest first."""
        ...

    def changes(
        self, disclosed: Disclosed, version: int, at: datetime
    ) -> dict[str, ResourceVersion]:
        """The parts' versions that the aggregate's `version` (made `at`) made, as the
        caller may see them (a part it left unchanged has none)."""
        ...

    # Whether counting its versions needs them replayed (`history_length` gets `disclosed`).
    replays_to_count: bool

    def history_length(
        self, disclosed: Disclosed | None, since: datetime | None, events: int
    ) -> int:
        """How many versions (from `since` on) the parts have, as `versions` lists them,
        where the aggregate has `events` events from `since` on."""
        ...


class AggregateResource:
    """The aggregates of an application, each one resource."""

    def __init__(self, access: ResourceAccess, to_fhir: Callable[[Any], dict[str, Any]]) -> None:
        self.access = access
        self.to_fhir = to_fhir
        self.application = access.application
        self.resource_type = access.resource_type

    def locate(self, id: str) -> tuple[UUID, str]:
        return resource_id(id), ""

    def render(self, aggregate: Any, part: str) -> dict[str, Any] | None:
        return self.to_fhir(aggregate)

    def versions(self, disclosed: Disclosed) -> dict[str, list[ResourceVersion]]:
        # Each event is a version, placed by its time; only a page's versions are replayed
        # (rendered oldest first, so one replay serves the page).
        return {
            "": [
                ResourceVersion(
                    published(event.timestamp),
                    str(event.originator_version),
                    event.originator_version == 1,
                    lambda then=then: self.to_fhir(then()),
                )
                for event, then in disclosed.stepped()
            ]
        }

    def changes(
        self, disclosed: Disclosed, version: int, at: datetime
    ) -> dict[str, ResourceVersion]:
        # Each event is a version: reconstructed only if the page shows it.
        return {
            "": ResourceVersion(
                at, str(version), version == 1, lambda: self.to_fhir(disclosed.version(version))
            )
        }

    replays_to_count = False

    def history_length(
        self, disclosed: Disclosed | None, since: datetime | None, events: int
    ) -> int:
        return events  # each event is a version


def versioned_resource(resource_type: str) -> Callable[[Request], VersionedResource]:
    def dependency(request: Request) -> VersionedResource:
        return request.app.state.resources[resource_type]

    return dependency


def _missing(resource_type: str, id: str, detail: str = "") -> FhirError:
    return FhirError(404, "not-found", f"no {resource_type} with id '{id}'{detail}")


def _newest_first(version: ResourceVersion, resource_id: str) -> tuple[int, str, int]:
    # A history's stable order: newest first, and a version's key never changes.
    moment = version.at
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return (-micros, resource_id, -int(version.version_id))


@dataclass(frozen=True)
class HistoryQuery:
    """A `_history` request's parameters, from the URL or from its `_cursor`."""

    query: dict[str, str]
    position: dict[str, Any]
    since: datetime | None
    at: datetime | None
    result: ResultParameters

    @classmethod
    def of(cls, request: Request, kind: str, resource_type: str) -> "HistoryQuery":
        query, position = opened_query(request, kind, query_of(request.query_params.multi_items()))
        unknown = sorted(set(query) - RESULT_PARAMETERS - {"_since", "_at"})
        # Prefer: handling=lenient ignores them (and leaves them out of the links); strict,
        # the default, refuses.
        if unknown and not ignoring_unknown_parameters(unknown):
            raise FhirError(
                400, "not-supported",
                f"_history takes _since, _at and the result parameters, not {', '.join(unknown)}",
                expression=unknown[0],
            )  # fmt: skip
        query = {name: value for name, value in query.items() if name not in unknown}
        result = ResultParameters.of(query, HISTORY_PAGE, ("_lastUpdated",))
        if result.sort not in ((), (SortKey("_lastUpdated", True),)):
            raise FhirError(
                400, "not-supported", "a history is newest first: _sort=-_lastUpdated",
                expression="_sort",
            )  # fmt: skip
        result.check_elements(resource_type)
        return cls(
            query,
            position,
            instant_parameter("_since", query.get("_since")),
            instant_parameter("_at", query.get("_at")),
            result,
        )


def history_response(
    request: Request,
    asked: HistoryQuery,
    kind: str,
    path: str,
    versions: list[tuple[ResourceVersion, str]],
) -> tuple[FhirResponse, Page[tuple[ResourceVersion, str]]]:
    """One page of `versions` ((version, resource id), any order), newest first."""
    page = keyset_page(
        sorted(versions, key=lambda found: _newest_first(*found)),
        lambda found: _newest_first(*found),
        asked.position,
        asked.result.count,
    )
    return history_page_response(request, asked, kind, path, page, page.total), page


def history_page_response(
    request: Request,
    asked: HistoryQuery,
    kind: str,
    path: str,
    page: Page[tuple[ResourceVersion, str]],
    total: int | None,
) -> FhirResponse:
    """The Bundle of one page of versions (newest first); without a `total` where None."""
    rendered = [(version.render(), version.created) for version, _ in reversed(page.items)]
    created = {id(resource) for resource, first in rendered if first}
    bundle = history_bundle(
        fhir_base(request),
        [resource for resource, _ in rendered],
        created=lambda resource: id(resource) in created,
    )
    if total is None:
        del bundle["total"]
    else:
        bundle["total"] = total
    bundle["link"] = page_links(request, kind, path, asked.query, page, asked.result.count)
    return FhirResponse(asked.result.finish(bundle))


class TypeHistory:
    """The versions of every resource of a type, as one caller may see them, read from the
    event log by position (services/common/position_paging.py): a page decides disclosure
    once for each resource with an event on it, by the one rule, and reconstructs only the
    versions it shows, so its cost is the page's, not the store's."""

    def __init__(self, resource: VersionedResource, actor: Actor, since: datetime | None) -> None:
        self.resource, self.actor, self.since = resource, actor, since
        self.access = resource.access
        self.application = resource.access.application
        self._found: dict[UUID, tuple[Any, Disclosed] | None] = {}
        self._visible: dict[UUID, bool] = {}
        recorder: Any = self.application.recorder
        self.pager: PositionPager[tuple[ResourceVersion, str]] = PositionPager(
            recorder,
            event_topics(self.access.aggregate_class),
            self.entries,
            recorder.max_notification_id() or 0,
        )

    def seen(self, aggregate_id: UUID) -> tuple[Any, Disclosed] | None:
        """(the aggregate, as the caller sees it), or None where the rule discloses nothing
        of it: decided on its current version, as every read decides, once a request."""
        if aggregate_id not in self._found:
            try:
                aggregate = self.access.aggregate(aggregate_id)
            except NotFound:  # its person was erased: answered as an unknown one
                self._found[aggregate_id] = None
                return None
            found = self.access.disclosed_matches(self.actor, [aggregate], None)
            self._found[aggregate_id] = next(iter(found), None)
        return self._found[aggregate_id]

    def entries(self, notification: Any) -> list[tuple[str, tuple[ResourceVersion, str]]]:
        """The versions an event made that the caller may see, each with its resource id."""
        at = self._at(notification)
        if self.since is not None and at < self.since:
            return []
        found = self.seen(notification.originator_id)
        if found is None:
            return []
        aggregate, disclosed = found
        changes = self.resource.changes(disclosed, notification.originator_version, at)
        return [
            (f"{aggregate.id}/{part}", (version, f"{aggregate.id}/{part}"))
            for part, version in changes.items()
        ]

    def total(self) -> int:
        """The exact number of versions the caller may see: every resource of the type is
        disclosure-checked, so it costs the store's size (asked by `_total`, or a count)."""
        events: Counter[UUID] = Counter()
        recorder: Any = self.application.recorder
        position = 0
        while True:
            found = recorder.select_notifications(
                start=position,
                limit=_COUNTED,
                stop=self.pager.head,
                topics=self.pager.topics,
                inclusive_of_start=False,
            )
            for notification in found:
                if self.since is None or self._at(notification) >= self.since:
                    events[notification.originator_id] += 1
            if len(found) < _COUNTED:
                break
            position = found[-1].id
        total = 0
        for aggregate_id, count in events.items():
            if not self.visible(aggregate_id):
                continue
            seen = self.seen(aggregate_id) if self.resource.replays_to_count else None
            total += self.resource.history_length(seen[1] if seen else None, self.since, count)
        return total

    def visible(self, aggregate_id: UUID) -> bool:
        """Whether the caller may see anything of the resource: the disclosure rule asked
        of its current version, without the redaction a page needs (a count shows nothing)."""
        if aggregate_id in self._found:
            return self._found[aggregate_id] is not None
        if aggregate_id not in self._visible:
            try:
                self.access.disclose(self.access.aggregate(aggregate_id), self.actor)
            except NotFound:
                self._visible[aggregate_id] = False
            else:
                self._visible[aggregate_id] = True
        return self._visible[aggregate_id]

    def _at(self, notification: Any) -> datetime:
        return published(self.application.mapper.to_domain_event(notification).timestamp)

    def shown(self, page: Page[tuple[ResourceVersion, str]]) -> list[tuple[Any, Disclosed]]:
        """(aggregate, as seen) of each resource with a version on the page."""
        on_page = dict.fromkeys(UUID(resource_id[:36]) for _, resource_id in page.items)
        return [found for i in on_page if (found := self._found.get(i)) is not None]


def type_history_response(
    request: Request, actor: Actor, resource: VersionedResource
) -> FhirResponse:
    """One page of the versions of every resource of the type the caller may see, newest
    first by commit (docs/decisions/0009-paged-type-history.md). A total is given only when
    asked (`_total=accurate` or `estimate`, a count only): counting what the caller may see
    asks the disclosure rule of every resource with a version, a scan of the store, where a
    page costs only its own versions. R4 lets a history leave `total` out."""
    # Its keys are positions in the log (a cursor of another order is refused, not misread).
    kind = f"history-by-position:{resource.resource_type}"
    asked = HistoryQuery.of(request, kind, resource.resource_type)
    history = TypeHistory(resource, actor, asked.since)
    keyed = history.pager.page(asked.position, asked.result.count)
    page = Page(
        [item for _, item in keyed.items],
        keyed.total,
        keyed.first_key,
        keyed.last_key,
        keyed.more_after,
        keyed.more_before,
    )
    total = history.total() if asked.result.asks_total else None
    path = f"{resource.resource_type}/_history"
    response = history_page_response(request, asked, kind, path, page, total)
    # Logged as disclosed: the resources with a version on the page, not all counted.
    query = urlencode(dict(request.query_params))
    resource.access.log_shown(actor, history.shown(page), query, "history-type", total or 0)
    return response


def add_version_routes(router: APIRouter, resource_type: str) -> None:
    """read (with `_at` for time travel), vread, instance and type `_history` (with `_since`
    and `_at`). A caller sees the history of what it may see now, nothing else."""
    Reader = Annotated[Actor, Depends(authorize(resource_type, "r"))]
    Resource = Annotated[VersionedResource, Depends(versioned_resource(resource_type))]

    @router.get(f"/{resource_type}/_history", name=f"type history {resource_type}")
    def type_history(
        request: Request,
        actor: Reader,
        resource: Resource,
        since: Since = None,
        count: Count = None,
        cursor: Cursor = None,
        summary: Summary = None,
        elements: Elements = None,
        total: TypeTotal = None,
    ) -> FhirResponse:
        # The parameters are declared for the OpenAPI; HistoryQuery reads them (or a cursor's).
        return type_history_response(request, actor, resource)

    @router.get(f"/{resource_type}/{{id}}", name=f"read {resource_type}")
    def read(id: str, actor: Reader, resource: Resource, at: At = None) -> FhirResponse:
        aggregate_id, part = resource.locate(id)
        instant = instant_parameter("_at", at)
        entity = f"{resource_type}/{id}" + (f"?_at={at}" if at else "")
        disclosed = resource.access.disclosed(actor, aggregate_id, "read", entity)
        aggregate = disclosed.current if instant is None else disclosed.at(instant)
        rendered = resource.render(aggregate, part)
        if rendered is None:
            raise _missing(resource_type, id, f" at {at}" if at else "")
        return resource_response(rendered)

    @router.get(f"/{resource_type}/{{id}}/_history", name=f"history {resource_type}")
    def history(
        id: str,
        request: Request,
        actor: Reader,
        resource: Resource,
        since: Since = None,
        at: At = None,
        count: Count = None,
        cursor: Cursor = None,
        summary: Summary = None,
        elements: Elements = None,
        total: Total = None,
    ) -> FhirResponse:
        aggregate_id, part = resource.locate(id)
        kind = f"history:{resource_type}/{id}"
        asked = HistoryQuery.of(request, kind, resource_type)
        entity = f"{resource_type}/{id}/_history"
        disclosed = resource.access.disclosed(actor, aggregate_id, "history-instance", entity)
        versions = resource.versions(disclosed).get(part)
        if not versions:
            raise _missing(resource_type, id)
        window = history_window(versions, lambda v: v.at, asked.since, asked.at)
        return history_response(request, asked, kind, entity, [(v, id) for v in window])[0]

    @router.get(f"/{resource_type}/{{id}}/_history/{{vid}}", name=f"vread {resource_type}")
    def vread(id: str, vid: str, actor: Reader, resource: Resource) -> FhirResponse:
        aggregate_id, part = resource.locate(id)
        entity = f"{resource_type}/{id}/_history/{vid}"
        disclosed = resource.access.disclosed(actor, aggregate_id, "vread", entity)
        version = whole_number(vid)
        if version is None or not 1 <= version <= disclosed.current.version:
            raise _missing(resource_type, id, f" version {vid}")
        then = disclosed.version(version)
        rendered = resource.render(then, part)
        if rendered is None:
            raise _missing(resource_type, id, f" version {vid}")
        return resource_response(rendered)


def form_body(declarations: SearchDeclarations) -> dict[str, Any]:
    """The OpenAPI request body of a `_search` form post: the same parameters as by GET."""
    properties = {
        name: {"type": "string", "description": description}
        for name, description in declarations.form_fields().items()
    }
    schema = {"type": "object", "properties": properties}
    return {
        "requestBody": {
            "required": False,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


def add_search_routes(
    router: APIRouter,
    search: Callable[[Request, dict[str, str], Actor], FhirResponse],
    declarations: SearchDeclarations,
    interaction: Literal["r", "s"] = "s",
    searcher: Callable[..., Actor] | None = None,
) -> None:
    """GET /{type}?... and POST /{type}/_search (form-encoded, keeps identifiers out of URLs);
    `interaction`: the scope's letter a search needs, or `searcher` the dependency that
    decides who may search."""
    resource_type = declarations.resource_type
    Searcher = Annotated[Actor, Depends(searcher or authorize(resource_type, interaction))]

    # Its query parameters are declared from the _search form's (services/common/openapi_fhir.py).
    @router.get(f"/{resource_type}", name=f"search {resource_type}")
    def search_by_get(request: Request, actor: Searcher) -> FhirResponse:
        return search(request, query_of(request.query_params.multi_items()), actor)

    @router.post(
        f"/{resource_type}/_search",
        name=f"search {resource_type} by post",
        openapi_extra=form_body(declarations),
    )
    async def search_by_post(request: Request, actor: Searcher) -> FhirResponse:
        form = await request.form()
        query = query_of(
            (key, value) for key, value in form.multi_items() if isinstance(value, str)
        )
        return await run_in_threadpool(search, request, query, actor)
