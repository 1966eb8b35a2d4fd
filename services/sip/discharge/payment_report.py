"""The monthly payment report (betalningsansvar) as FHIR `MeasureReport`:
`GET /fhir/Encounter/$payment-report?municipality=<HSA-id>&month=YYYY-MM` (or POST with a
`Parameters` body), computed by services/sip/discharge/payment.py at the server's instant from
the county's model, which is configuration (`payment_model_from_env`), not constants.

Who may ask: staff of the municipality reported on, or of a hospital's organisation (a region)
with a stay counted in that month; anyone else is answered 404, as for a record they may not
see (a patient, 403). The figures are the municipality's month, all of it: what the two pay each
other. Each discharged person is listed (`evaluatedResource`, with their days, how they count
and what they cost) only where the caller may see their stay and its ready notice, by the
stays' one disclosure rule; each one listed is an access record of the person.

Refused, before anything is computed: a month that is not YYYY-MM (400 naming `month`), a
municipality that is no HSA-id (400 naming `municipality`), a year for which no daily amount is
configured (422 naming the year: a report is never priced at zero).

The report (`MeasureReport`):
- `group` `average`: the people in the average (population count), their average days
  (`measureScore`), the days the municipality pays and the amount (extensions);
- `group` `individual`: the people counted alone (over 7 days), their payable days and amount;
- `group` `excluded`: the people the municipality pays nothing for, stratified by why
  (`admission-notice-missed`, `sip-call-missed`, `outpatient-care-unavailable`, ...);
- the daily amount and the total as extensions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from contracts.actor import Actor
from contracts.canonical import CANONICAL_BASE
from services.common.access_log import REFUSED
from services.common.fhir_api import FhirError, FhirResponse, resource_response
from services.common.fhir_time import fhir_instant
from services.common.operations.declaration import Operation, OperationCall
from services.common.parameters import HsaId, OperationParameters, String
from services.common.resource_routes import ResourceAccess
from services.sip.discharge.application import STAY_RESOURCE_TYPE
from services.sip.discharge.disclosure import READY_NOTICE, READY_WITHDRAWAL
from services.sip.discharge.payment import (
    AVERAGE,
    EXCLUDED,
    INDIVIDUAL,
    DailyAmountMissing,
    Line,
    MonthlyReport,
    PaymentModel,
    monthly_report,
)
from services.sip.discharge.projections import StayIndex
from services.sip.discharge.stay import Stay
from services.sip.fhir_mapping import organization_reference
from services.sip.redaction import withheld_of

MEASURE = f"{CANONICAL_BASE}/Measure/discharge-waiting-days-payment"
GROUP_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/payment-report-group"
REASON_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/payment-exclusion"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
_EXT = f"{CANONICAL_BASE}/StructureDefinition"
EXT_DAILY_AMOUNT = f"{_EXT}/payment-daily-amount"
EXT_TOTAL = f"{_EXT}/payment-total"
EXT_AMOUNT = f"{_EXT}/payment-amount"
EXT_PAYABLE_DAYS = f"{_EXT}/payment-payable-days"
EXT_DAYS = f"{_EXT}/payment-days"
EXT_LINE = f"{_EXT}/payment-line"
MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
STAFF = ("professional", "coordinator", "integration")
_PARAMETER = "Parameters.parameter.where(name='{}')"

# The model's figures from the environment (docs/operations, ADR 0008): daily amounts per year
# ("2026=8000,2027=8500"), and the county's thresholds where they are not the seed's.
ENV_DAILY_AMOUNTS = "SIP_PAYMENT_DAILY_AMOUNTS"
ENV_AVERAGE_OVER = "SIP_PAYMENT_AVERAGE_OVER_DAYS"
ENV_INDIVIDUAL_AFTER = "SIP_PAYMENT_INDIVIDUAL_AFTER_DAYS"
ENV_INDIVIDUAL_PAYS_AFTER = "SIP_PAYMENT_INDIVIDUAL_PAYS_AFTER_DAYS"
ENV_COUNT_READY_DAY = "SIP_PAYMENT_COUNT_READY_DAY"


def payment_model_from_env(environ: Mapping[str, str] | None = None) -> PaymentModel:
    """The county's payment model; a malformed figure refuses to start, naming its variable."""
    environ = os.environ if environ is None else environ
    default = PaymentModel()
    amounts: dict[int, Decimal] = {}
    for item in filter(None, (i.strip() for i in environ.get(ENV_DAILY_AMOUNTS, "").split(","))):
        year, _, amount = item.partition("=")
        try:
            amounts[int(year)] = Decimal(amount)
        except (ValueError, InvalidOperation):
            raise ValueError(f"{ENV_DAILY_AMOUNTS}: '{item}' is not YEAR=AMOUNT") from None
        if amounts[int(year)] < 0:
            raise ValueError(f"{ENV_DAILY_AMOUNTS}: '{item}' is a negative amount")

    def number(name: str, given: Any, kind: type) -> Any:
        value = environ.get(name)
        if value is None or value == "":
            return given
        try:
            return kind(value)
        except (ValueError, InvalidOperation):
            raise ValueError(f"{name}: '{value}' is not a number") from None

    flag = environ.get(ENV_COUNT_READY_DAY, "").lower()
    if flag not in ("", "true", "false"):
        raise ValueError(f"{ENV_COUNT_READY_DAY}: true or false, not '{flag}'")
    return PaymentModel(
        average_over_days=number(ENV_AVERAGE_OVER, default.average_over_days, Decimal),
        individual_after_days=number(ENV_INDIVIDUAL_AFTER, default.individual_after_days, int),
        individual_pays_after_days=number(
            ENV_INDIVIDUAL_PAYS_AFTER, default.individual_pays_after_days, int
        ),
        daily_amounts=MappingProxyType(amounts),
        count_ready_day=flag == "true",
    )


class PaymentReportParameters(OperationParameters):
    municipality: HsaId
    month: String


def _month(value: str) -> tuple[int, int]:
    found = MONTH.fullmatch(value)
    if found is None:
        raise FhirError(400, "invalid", f"month is YYYY-MM, not '{value}'",
                        expression=_PARAMETER.format("month"))  # fmt: skip
    return int(found[1]), int(found[2])


def _staff(actor: Actor) -> None:
    if actor.role not in STAFF or not actor.organization:
        raise FhirError(403, "forbidden", "the payment report is asked by an organisation's staff")


def payment_report(call: OperationCall[PaymentReportParameters]) -> FhirResponse:
    p = call.parameters
    year, month = _month(p.month)
    model: PaymentModel = call.state.payment_model
    access: ResourceAccess = call.state.resources[STAY_RESOURCE_TYPE].access
    # The read model names the municipality's stays discharged in the month (in the model's
    # zone); the report still tests each stay it loads (monthly_report).
    zone = model.clock.zone
    first = date(year, month, 1)
    after = date(year + month // 12, month % 12 + 1, 1)
    index: StayIndex = call.state.stay_index
    named = index.discharged_between(
        p.municipality,
        datetime.combine(first, time(), tzinfo=zone),
        datetime.combine(after, time(), tzinfo=zone),
    )
    stays: list[Stay] = [access.aggregate(stay_id) for stay_id in named]
    try:
        report = monthly_report(stays, p.municipality, year, month, model, as_of=call.at)
    except DailyAmountMissing as missing:
        raise FhirError(
            422, "business-rule",
            f"no daily amount is configured for {missing.year}: the report is refused, not "
            "priced at zero", expression=_PARAMETER.format("month"),
        ) from None  # fmt: skip
    counted = {line.stay_id for line in report.lines}
    actor = call.actor
    hospitals = {s.organization for s in stays if str(s.id) in counted}
    if actor.organization != p.municipality and actor.organization not in hospitals:
        access.log(
            actor, "operation", entity=f"{STAY_RESOURCE_TYPE}/$payment-report",
            query=call.request.url.query, outcome=REFUSED,
            detail="a payment report that does not concern the caller",
        )  # fmt: skip
        raise FhirError(404, "not-found", f"no payment report of {p.municipality} for the caller")
    shown = []
    listed = [stay for stay in stays if str(stay.id) in counted]
    for stay, disclosed in access.disclosed_matches(actor, listed, None):
        hidden = {mark.kind for mark in withheld_of(disclosed.current)}
        if not hidden & {READY_NOTICE, READY_WITHDRAWAL}:
            shown.append((stay, disclosed))
    access.log_shown(actor, shown, call.request.url.query, "operation", len(counted))
    visible = {str(stay.id) for stay, _ in shown}
    return resource_response(report_to_fhir(report, model, call.at, visible))


def _money(amount: Decimal) -> dict[str, Any]:
    return {"value": float(amount), "currency": "SEK"}


def _line(line: Line) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "counted", "valueCode": line.counted},
        {"url": "days", "valueInteger": line.days},
    ]
    if line.ready_on is not None:
        parts.append({"url": "ready", "valueDate": line.ready_on.isoformat()})
    parts.append({"url": "discharged", "valueDate": line.discharged_on.isoformat()})
    if line.reason:
        parts.append({"url": "reason", "valueCode": line.reason})
    if line.counted == INDIVIDUAL:
        parts.append({"url": "payable-days", "valueInteger": line.payable_days})
        parts.append({"url": "amount", "valueMoney": _money(line.amount)})
    return {"reference": f"{STAY_RESOURCE_TYPE}/{line.stay_id}",
            "extension": [{"url": EXT_LINE, "extension": parts}]}  # fmt: skip


def _group(code: str, count: int, *extensions: dict[str, Any]) -> dict[str, Any]:
    population = {"coding": [{"system": POPULATION_SYSTEM, "code": "initial-population"}]}
    return {
        "code": {"coding": [{"system": GROUP_SYSTEM, "code": code}]},
        "population": [{"code": population, "count": count}],
        **({"extension": list(extensions)} if extensions else {}),
    }


def report_to_fhir(
    report: MonthlyReport, model: PaymentModel, at: datetime, visible: set[str]
) -> dict[str, Any]:
    zone = model.clock.zone
    first = date(report.year, report.month, 1)
    after = date(report.year + report.month // 12, report.month % 12 + 1, 1)
    individual = [line for line in report.lines if line.counted == INDIVIDUAL]
    excluded = [line for line in report.lines if line.counted == EXCLUDED]
    reasons: dict[str, int] = {}
    for line in excluded:
        reasons[line.reason or "unknown"] = reasons.get(line.reason or "unknown", 0) + 1
    average = _group(
        AVERAGE, report.people_in_average,
        {"url": EXT_DAYS, "valueInteger": report.days_in_average},
        {"url": EXT_PAYABLE_DAYS, "valueDecimal": float(report.average_payable_days)},
        {"url": EXT_AMOUNT, "valueMoney": _money(report.average_amount)},
    )  # fmt: skip
    if report.average is not None:
        average["measureScore"] = {"value": float(report.average), "unit": "d",
                                   "system": "http://unitsofmeasure.org", "code": "d"}  # fmt: skip
    alone = _group(
        INDIVIDUAL, len(individual),
        {"url": EXT_PAYABLE_DAYS, "valueDecimal": float(report.individual_payable_days)},
        {"url": EXT_AMOUNT, "valueMoney": _money(report.individual_amount)},
    )  # fmt: skip
    left_out = _group(EXCLUDED, len(excluded))
    if reasons:  # FHIR has no empty lists
        left_out["stratifier"] = [
            {
                "code": [{"text": "reason"}],
                "stratum": [
                    {
                        "value": {"coding": [{"system": REASON_SYSTEM, "code": reason}]},
                        "population": [{"count": count}],
                    }
                    for reason, count in sorted(reasons.items())
                ],
            }
        ]
    start = datetime.combine(first, time(), tzinfo=zone)
    end = datetime.combine(after, time(), tzinfo=zone) - timedelta(milliseconds=1)
    resource = {
        "resourceType": "MeasureReport",
        # Not stored: the id names the month reported on (asked again, it may differ).
        "id": f"payment-{report.municipality}-{report.year:04}-{report.month:02}",
        "extension": [
            {"url": EXT_DAILY_AMOUNT, "valueMoney": _money(report.daily_amount)},
            {"url": EXT_TOTAL, "valueMoney": _money(report.total)},
        ],
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "reporter": organization_reference(report.municipality),  # the one reported on
        "date": fhir_instant(at),
        "period": {"start": fhir_instant(start), "end": fhir_instant(end)},
        "group": [average, alone, left_out],
    }  # fmt: skip
    listed = [_line(line) for line in report.lines if line.stay_id in visible]
    return {**resource, "evaluatedResource": listed} if listed else resource


PAYMENT_REPORT = Operation(
    "payment-report",
    STAY_RESOURCE_TYPE,
    "The municipality's payment for waiting days in a calendar month (betalningsansvar, "
    "seed 002 5.1-5.2): municipality (HSA-id), month (YYYY-MM). Asked by the municipality or "
    "a region whose hospital had a stay counted in it.",
    PaymentReportParameters,
    payment_report,
    instance=False,
    changes_state=False,
    method="GET",
    returns="MeasureReport",
    may_call=_staff,
)
