"""Rendering a page: the templates (Jinja2, autoescaped) with what every page needs, the
signed-in user, the CSRF token and the Swedish names of codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import HTMLResponse

from services.web import texts, times
from services.web.erased_texts import ErasedShown
from services.web.session import CSRF_FIELD, csrf_token

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.globals.update(texts=texts, CSRF_FIELD=CSRF_FIELD)
TEMPLATES.env.globals["times"] = times  # local Swedish time of FHIR instants


def quoted(value: Any) -> Markup:
    """Someone's words, in quotation marks; an erased text is said to be erased, unquoted."""
    if isinstance(value, ErasedShown):
        return value.__html__()
    return Markup("”{}”").format(value)


TEMPLATES.env.filters["quoted"] = quoted


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("user", getattr(request.state, "user", None))
    context["csrf_token"] = csrf_token(request)
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def error_page(
    request: Request, status_code: int, heading: str, sentences: list[str]
) -> HTMLResponse:
    """The plain error page: a heading and what the user can do, in Swedish."""
    return render(
        request, "error.html", status_code=status_code, heading=heading, sentences=sentences
    )
