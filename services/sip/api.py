"""The SIP service's FHIR API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Request

from contracts.actor import Actor
from services.common import access_log_routes
from services.common.access_log import WriteContext, writing
from services.common.access_log_views import AccessLogIndex
from services.common.audit import feed as event_feed
from services.common.audit.checkpoints import CheckpointSigner
from services.common.auth.dependency import authorize
from services.common.capability import (
    ACCESS_LOG_CAPABILITIES,
    capability_statement,
    resource_capability,
)
from services.common.domain import NotFound
from services.common.fhir_api import (
    FhirError,
    FhirResponse,
    fhir_base,
    fhir_body,
    history_bundle,
    parse_if_match,
    resource_response,
    searchset,
    unavailable,
)
from services.common.fhir_time import fhir_instant, now
from services.common.parameters import OperationParameters
from services.common.persistence import read_model_engine, storage_for
from services.common.resource_routes import (
    At,
    Count,
    Disclosure,
    ResourceAccess,
    Since,
    add_search_routes,
    add_version_routes,
    history_window,
    instant_parameter,
    resource_id,
)
from services.common.search import (
    date_range,
    follow_up_bound,
    organization_token,
    person_token,
    search_parameters,
)
from services.common.service import build_service_app
from services.common.settings import ServiceSettings
from services.sip.application import SipPlans, plan_disclosure_request
from services.sip.consent_feed import ConsentFeedFollower
from services.sip.consent_gate import (
    CachingConsentGate,
    ConsentServiceUnavailable,
    HttpConsentGate,
)
from services.sip.domain import Plan
from services.sip.fhir_mapping import (
    care_team_to_fhir,
    goal_to_fhir,
    plan_started_from_fhir,
    plan_to_fhir,
)
from services.sip.operations import OPERATIONS, Operation
from services.sip.plan_views import PLAN_VIEWS, PlanView, ViewVersion, view_history
from services.sip.projections import PlanIndex

PLAN_STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error")
SEARCH_PARAMETERS = {
    "subject:identifier": "Whose plan: system|personnummer",
    "status": "draft | active | revoked | completed",
    "date": "The plan's period: ge<date> (still running then), le<date> (started by then)",
    "care-team-organization": "HSA-id of an organisation taking part",
    "responsible-organization": "HSA-id responsible for an intervention or overall",
    "follow-up-due": "le<date>: next follow-up due on or before (overdue: le<yesterday>)",
}
INCLUDES = {"CarePlan:care-team", "CarePlan:goal"}
CAPABILITIES = [
    resource_capability(
        "CarePlan",
        interactions=["create", "read", "vread", "history-instance", "history-type", "search-type"],
        search_parameters={name.split(":")[0]: doc for name, doc in SEARCH_PARAMETERS.items()},
        operations={
            "activate": "Activates a draft plan when the consent service permits it",
            "as-of": "The plan as it stood at an instant, with the consents it relied on then",
            **{operation.name: operation.documentation for operation in OPERATIONS},
        },
    ),
    *(
        resource_capability(
            view.resource_type,
            interactions=["read", "vread", "history-instance", "history-type"],
            search_parameters={},
        )
        for view in PLAN_VIEWS
    ),
    *ACCESS_LOG_CAPABILITIES,
]
Body = Annotated[dict[str, Any], Depends(fhir_body)]
Creator = Annotated[Actor, Depends(authorize("CarePlan", "c"))]
Updater = Annotated[Actor, Depends(authorize("CarePlan", "u"))]
Reader = Annotated[Actor, Depends(authorize("CarePlan", "r"))]


def consent_service_down(error: ConsentServiceUnavailable) -> FhirError:
    return unavailable(
        f"the consent service could not be asked ({error}); nothing was disclosed or changed"
    )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env("SIP_DATABASE_URL")
    storage = storage_for("sip", settings.database_url, settings.data_dir)
    plans = SipPlans(env=storage.event_store_env)
    engine = read_model_engine(storage)
    index = PlanIndex(plans, engine)
    service_tokens = settings.service_tokens()
    asked_each_time = HttpConsentGate(
        settings.consent_service_url, settings.consent_timeout_seconds, token_source=service_tokens
    )
    consent_gate = CachingConsentGate(asked_each_time)
    follower = ConsentFeedFollower(
        consent_url=settings.consent_service_url,
        token_source=service_tokens,
        plans=plans,
        index=index,
        engine=engine,
        cache=consent_gate,
    )

    def disclose(plan: Plan, actor: Actor) -> Disclosure:
        """The person sees their own plan; the starting organisation its own data; any other
        organisation only when it takes part and a consent permits it."""
        if actor.role == "patient":
            if actor.patient == plan.subject["value"]:
                return Disclosure()
            raise NotFound(f"CarePlan/{plan.id}")
        if actor.organization == plan.starting_organization:
            return Disclosure()
        if actor.organization and plan.takes_part(actor.organization):
            try:
                decision = consent_gate.check(
                    plan_disclosure_request(plan, actor.organization, "sip-disclosure")
                )
            except ConsentServiceUnavailable as error:
                raise consent_service_down(error) from None
            if decision.permitted:
                return Disclosure(decision.consents)
        raise NotFound(f"CarePlan/{plan.id}")

    access = ResourceAccess(plans, disclose)
    app = build_service_app(
        title="SIP plan service",
        application=plans,
        capability_statement=lambda base: capability_statement(
            base, name="SipPlanService", title="SIP plan service", resources=CAPABILITIES
        ),
        token_verifier=settings.token_verifier(),
        starters=[follower.start],
        closers=[follower.stop, consent_gate.close, engine.dispose],
    )
    app.state.plans = plans
    app.state.consent_feed = follower
    app.state.index = index
    router = APIRouter(prefix="/fhir")

    @router.post("/CarePlan", status_code=201)
    def start_plan(body: Body, actor: Creator) -> FhirResponse:
        if actor.role == "patient":
            raise FhirError(403, "forbidden", "a plan is started by a unit, on anyone's initiative")
        started = plan_started_from_fhir(body, actor, now())
        if started["starting_organization"] != actor.organization:
            raise FhirError(
                403, "forbidden", "a plan can only be started for the caller's own organisation"
            )
        with writing(WriteContext(actor.as_event_data(), "create", "CarePlan", now())):
            plan = plans.start(**started)
        return resource_response(plan_to_fhir(plan), status=201)

    def search(request: Request, query: dict[str, str], actor: Actor) -> FhirResponse:
        includes = set(request.query_params.getlist("_include")) | set(
            (query.get("_include") or "").split(",")
        )
        includes.discard("")
        unknown_includes = includes - INCLUDES
        if unknown_includes:
            raise FhirError(
                400, "not-supported", f"_include supports {', '.join(sorted(INCLUDES))}"
            )
        query = {key: value for key, value in query.items() if key != "_include"}
        parameters = search_parameters(query, set(SEARCH_PARAMETERS))
        subject = parameters.get("subject:identifier")
        status = parameters.get("status")
        if status is not None and status not in PLAN_STATUSES:
            raise FhirError(400, "invalid", f"status is one of {', '.join(PLAN_STATUSES)}")
        period_from, period_to = date_range(
            request.query_params.getlist("date") or ([query["date"]] if "date" in query else [])
        )
        due = parameters.get("follow-up-due")
        ids = index.search(
            subject=person_token(subject) if subject else None,
            status=status,
            period_from=period_from,
            period_to=period_to,
            member=organization_token(
                "care-team-organization", parameters.get("care-team-organization")
            ),
            responsible=organization_token(
                "responsible-organization", parameters.get("responsible-organization")
            ),
            follow_up_due_by=follow_up_bound(due) if due else None,
        )
        matches = (plans.aggregate(plan_id) for plan_id in ids)
        shown = access.visible(actor, matches, urlencode(query))
        base = fhir_base(request)
        bundle = searchset(base, [plan_to_fhir(plan) for plan in shown], f"{base}/CarePlan")
        for plan in shown:
            included = []
            if "CarePlan:care-team" in includes:
                included.append(care_team_to_fhir(plan))
            if "CarePlan:goal" in includes:
                included += [goal_to_fhir(plan, goal_id) for goal_id in plan.goals]
            bundle["entry"] += [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "include"},
                }
                for r in included
            ]
        return FhirResponse(bundle)

    add_search_routes(router, "CarePlan", search)
    add_version_routes(router, access, plan_to_fhir)

    @router.post("/CarePlan/{plan_id}/$activate")
    def activate(
        plan_id: str,
        actor: Updater,
        if_match: Annotated[str | None, Header()] = None,
    ) -> FhirResponse:
        plan = access.for_change(actor, resource_id(plan_id), "operation")
        holder = plan.overall_responsible
        if actor.organization is None or actor.organization not in (
            plan.starting_organization,
            holder,
        ):
            raise FhirError(
                403,
                "forbidden",
                "the starting organisation or the one with overall responsibility activates",
            )
        try:
            with writing(
                WriteContext(
                    actor.as_event_data(), "operation", "CarePlan", now(), detail="activate"
                )
            ):
                plan = plans.activate(
                    plan.id,
                    consent_gate=asked_each_time,  # a decision that is written down is fresh
                    at=now(),
                    by=actor.as_event_data(),
                    expected_version=parse_if_match(if_match),
                )
        except ConsentServiceUnavailable as error:
            raise consent_service_down(error) from None
        return resource_response(plan_to_fhir(plan))

    app.state.event_feed = event_feed.EventFeed(
        plans, engine, CheckpointSigner(settings.data_dir, "sip")
    )
    app.include_router(event_feed.router)
    app.state.access_log_reading = access_log_routes.AccessLogReading(
        access,
        AccessLogIndex(plans, engine),
        observer=app.title,
        peer_extract_url=settings.consent_service_url,
    )
    router.include_router(access_log_routes.router)

    def add_operation(operation: Operation) -> None:
        @router.post(
            f"/CarePlan/{{plan_id}}/${operation.name}",
            name=operation.name,
            description=operation.documentation,
        )
        def run(
            plan_id: str,
            body: Body,
            actor: Updater,
            if_match: Annotated[str | None, Header()] = None,
        ) -> FhirResponse:
            parameters = OperationParameters(body, operation.name)
            plan = access.for_change(actor, resource_id(plan_id), "operation")
            if actor.role == "patient" and not operation.patient_may:
                raise FhirError(403, "forbidden", f"${operation.name} is done by staff")
            if actor.role != "patient" and not plan.takes_part(actor.organization or ""):
                raise FhirError(403, "forbidden", "the caller's organisation takes no part")
            at = now()
            context = WriteContext(
                actor.as_event_data(), "operation", "CarePlan", at, detail=operation.name
            )
            with writing(context):
                plan, _ = plans.change(
                    plan.id,
                    lambda plan: operation.command(plan, parameters, actor, at),
                    expected_version=parse_if_match(if_match),
                )
            return resource_response(plan_to_fhir(plan))

    for operation in OPERATIONS:
        add_operation(operation)

    def add_view_routes(view: PlanView) -> None:
        """read (with `_at`), vread, instance and type `_history` of a view of plans."""
        resource_type = view.resource_type
        # A local alias would not resolve: annotations are strings here (PEP 563).
        reader = Depends(authorize(resource_type, "r"))

        def located(id: str) -> tuple[UUID, str]:
            plan_id, part = view.split_id(id)
            return resource_id(plan_id), part

        def missing(id: str, detail: str = "") -> FhirError:
            return FhirError(404, "not-found", f"no {resource_type} with id '{id}'{detail}")

        @router.get(f"/{resource_type}/_history", name=f"type history {resource_type}")
        def type_history(
            request: Request, since: Since = None, count: Count = 100, actor: Actor = reader
        ) -> FhirResponse:
            since_instant = instant_parameter("_since", since)
            aggregates = (plans.aggregate(i) for i in plans.aggregate_ids())
            query = urlencode(dict(request.query_params))
            versions = [
                version
                for plan in access.visible(actor, aggregates, query, "history-type")
                for part_versions in view_history(plans, plan.id, view).values()
                for version in part_versions
                if since_instant is None or version.at >= since_instant
            ]
            versions.sort(key=lambda version: version.at)
            return view_history_response(request, versions[-count:])

        @router.get(f"/{resource_type}/{{id}}", name=f"read {resource_type}")
        def read(id: str, at: At = None, actor: Actor = reader) -> FhirResponse:
            plan_id, part = located(id)
            instant = instant_parameter("_at", at)
            entity = f"{resource_type}/{id}" + (f"?_at={at}" if at else "")
            plan = access.open(actor, plan_id, "read", entity)
            if instant is not None:
                plan = plans.version_at(plan.id, instant)
            resource = view.render_part(plan, part)
            if resource is None:
                raise missing(id, f" at {at}" if at else "")
            return resource_response(resource)

        @router.get(f"/{resource_type}/{{id}}/_history", name=f"history {resource_type}")
        def history(
            id: str, request: Request, since: Since = None, at: At = None, actor: Actor = reader
        ) -> FhirResponse:
            plan_id, part = located(id)
            since_instant, at_instant = (
                instant_parameter("_since", since),
                instant_parameter("_at", at),
            )
            access.open(actor, plan_id, "history-instance", f"{resource_type}/{id}/_history")
            versions = view_history(plans, plan_id, view).get(part)
            if not versions:
                raise missing(id)
            window = history_window(versions, lambda v: v.at, since_instant, at_instant)
            return view_history_response(request, window)

        @router.get(f"/{resource_type}/{{id}}/_history/{{vid}}", name=f"vread {resource_type}")
        def vread(id: str, vid: str, actor: Actor = reader) -> FhirResponse:
            plan_id, part = located(id)
            entity = f"{resource_type}/{id}/_history/{vid}"
            plan = access.open(actor, plan_id, "vread", entity)
            if not vid.isdigit() or not 1 <= int(vid) <= plan.version:
                raise missing(id, f" version {vid}")
            resource = view.render_part(plans.aggregate(plan.id, version=int(vid)), part)
            if resource is None:
                raise missing(id, f" version {vid}")
            return resource_response(resource)

    def view_history_response(request: Request, versions: list[ViewVersion]) -> FhirResponse:
        created = {(v.resource["id"], v.version_id) for v in versions if v.created}
        bundle = history_bundle(
            fhir_base(request),
            [version.resource for version in versions],
            created=lambda resource: (resource["id"], resource["meta"]["versionId"]) in created,
        )
        return FhirResponse(bundle)

    for view in PLAN_VIEWS:
        add_view_routes(view)

    @router.get("/CarePlan/{plan_id}/$as-of")
    def as_of(plan_id: str, instant: str, request: Request, actor: Reader) -> FhirResponse:
        """The plan as it stood at an instant, with the consents it relied on as they stood
        then in the consent service (asked with the caller's own token)."""
        at = instant_parameter("instant", instant)
        assert at is not None
        plan = access.open(actor, resource_id(plan_id), "operation", f"CarePlan/{plan_id}/$as-of")
        then = plans.version_at(plan.id, at)
        entries = [
            {"fullUrl": f"{fhir_base(request)}/CarePlan/{plan.id}", "resource": plan_to_fhir(then)}
        ]
        for consent_id in then.consents:
            try:
                response = httpx.get(
                    f"{settings.consent_service_url}/fhir/Consent/{consent_id}",
                    params={"_at": instant},
                    headers={"Authorization": request.headers.get("authorization", "")},
                    timeout=settings.consent_timeout_seconds,
                )
            except httpx.HTTPError as error:
                raise consent_service_down(
                    ConsentServiceUnavailable(type(error).__name__)
                ) from None
            if response.status_code == 200:
                entries.append(
                    {
                        "fullUrl": f"{settings.consent_service_url}/fhir/Consent/{consent_id}",
                        "resource": response.json(),
                    }
                )
            elif response.status_code != 404:  # 404: the caller may not see that consent
                raise consent_service_down(
                    ConsentServiceUnavailable(f"HTTP {response.status_code}")
                )
        return FhirResponse(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "timestamp": fhir_instant(at),
                "entry": entries,
            }
        )

    app.include_router(router)
    return app
