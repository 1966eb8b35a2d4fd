"""One way a page's form becomes an operation of the API, for the plan's page, a stay's page
and the admission: the posted form read into `Parameters` (`parameters_of`, its errors beside
the fields), the version the page showed sent as `If-Match`, and each way the API can answer
shown on the page again: a form without its version (400), someone else's change first (409),
a refusal (the OperationOutcome's issues beside the fields they name, in Swedish). The page
says how it is loaded again and shown; nothing is written but by the one operation call."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from services.web.fhir_client import Answer, ChangedMeanwhile, FhirClient, Refused
from services.web.plan_forms import FORM_ERROR, FormSpec, Invalid, parameters_of, refusal_errors
from services.web.session import CSRF_FIELD, SignedInUser
from services.web.submissions import SUBMISSION_FIELD, submitted_once

VERSION = re.compile(r"^[0-9]{1,9}$")
View = TypeVar("View")
Errors = dict[str, list[str]]


@dataclass(frozen=True)
class FormPage(Generic[View]):
    """How the page a form was posted from is loaded again and shown with the posted form.

    `show(view, posted, errors, status)` renders the page with the posted form open;
    `missing_version` is the text for a form without its version, None for an operation that
    changes no existing record (then no version is sent, and `changed` is not needed);
    `changed` answers a post that lost to someone else's change (409)."""

    load: Callable[[], Awaitable[View]]
    show: Callable[[View, dict[str, list[str]], Errors, int], Response]
    done: Callable[[Answer], str]  # where the browser goes after it succeeded
    missing_version: str | None
    changed: Callable[[View, dict[str, list[str]], str], Awaitable[Response]] | None = None
    # An operation that makes a resource: the form's submission key, so that the form posted
    # twice makes it once (services/web/submissions.py).
    submission: str | None = None


def posted_values(form: FormData) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if name in (CSRF_FIELD, "version", SUBMISSION_FIELD) or not isinstance(value, str):
            continue
        values.setdefault(name, []).append(value)
    return values


async def submit_operation(
    request: Request,
    fhir: FhirClient,
    user: SignedInUser,
    spec: FormSpec,
    path: str,
    page: FormPage[Any],
) -> Response:
    """Posts the form as the operation at `path` (`CarePlan/<id>/$<operation>`, ...) of the
    SIP service; the page again with what went wrong, or a redirect to `page.done`."""
    form = await request.form()
    posted = posted_values(form)
    version = None
    if page.missing_version is not None:
        version = str(form.get("version") or "")
        if not VERSION.fullmatch(version):
            errors = {FORM_ERROR: [page.missing_version]}
            return page.show(await page.load(), posted, errors, 400)
    try:
        parameters = parameters_of(spec, posted)
    except Invalid as invalid:
        return page.show(await page.load(), posted, invalid.errors, 400)
    condition = None
    if page.submission is not None:
        parameters, condition = submitted_once(parameters, page.submission)
    try:
        answer = await fhir.operation("sip", path, parameters, version, condition)
    except Refused as refused:
        view = await page.load()  # a record the user may not see: the 404 page
        if isinstance(refused, ChangedMeanwhile) and page.changed is not None:
            return await page.changed(view, posted, version or "")
        errors = refusal_errors(spec, refused, view, user)
        return page.show(view, posted, errors, refused.status)
    return RedirectResponse(page.done(answer), status_code=303)
