"""Paging of searches and `_history`: `_count`, `_summary=count`, and the `next`, `previous`
and `self` links of a Bundle.

A page is a keyset page: the items are in a stable order (a search by resource id, a history
by (instant, resource, version)), and a link names the key the page starts after (or ends
before). An item's key never changes, so paging visits each item that existed when paging
began exactly once, whatever is created or changed meanwhile (new items may or may not be
met, depending on where their key falls).

The link carries an opaque cursor (`_cursor`), never the query in the clear: a search POSTed
with a personnummer (`subject:identifier`, `patient:identifier`) must not have it put back in
a URL, where proxies and browsers log it. The cursor is the query and the key, encrypted and
authenticated (JWE, `dir` + A256GCM) with a key of the service's own (`cursor-key.json` in the
key directory, shared by replicas like the signing keys). So a cursor cannot be read, and one
changed by a single character is refused (400) instead of continuing some other search; no
stored search has to be kept or expired. A cursor names a query, not a caller: each page is
disclosure-checked for whoever asks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from services.common.fhir_api import FhirError, fhir_base
from services.common.key_files import key_dir_from_env, load_or_create_jwk

CURSOR = "_cursor"
_PROTECTED = {"alg": "dir", "enc": "A256GCM"}
_process_key = OctKey.generate_key(256)  # for an app served without settings (tests)
# Parameters whose value names a person (by reference or identifier): kept out of URLs.
PERSON_PARAMETERS = ("subject", "patient")


def _cursor_key(request: Request) -> OctKey:
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return _process_key
    key_dir: Path = getattr(settings, "keys_dir", None) or key_dir_from_env(settings.data_dir)
    return _key_in(key_dir / "cursor-key.json")


@functools.lru_cache(maxsize=16)
def _key_in(path: Path) -> OctKey:
    # Read once per process: a link's cursor is sealed up to three times an answer.
    return OctKey.import_key(load_or_create_jwk(path, lambda: OctKey.generate_key(256)))


def seal(request: Request, kind: str, content: dict[str, Any]) -> str:
    plaintext = json.dumps({"kind": kind, **content}, separators=(",", ":"))
    return jwe.encrypt_compact(_PROTECTED, plaintext.encode(), _cursor_key(request))


def unseal(request: Request, kind: str, token: str) -> dict[str, Any]:
    """The content of a cursor this service made for `kind`, or a 400 naming `_cursor`."""
    try:
        content = json.loads(jwe.decrypt_compact(token, _cursor_key(request)).plaintext or b"")
    except (JoseError, ValueError, TypeError):
        content = None
    if not isinstance(content, dict) or content.get("kind") != kind:
        raise FhirError(
            400,
            "invalid",
            "_cursor is not a cursor of this search; start the search again",
            expression=CURSOR,
        )
    return content


def opened_query(request: Request, kind: str, query: dict[str, str]) -> tuple[dict, dict]:
    """(the query a request asks, the cursor's position): from the cursor when there is one
    (with nothing beside it), else the query itself from the start."""
    token = query.get(CURSOR)
    if token is None:
        return query, {}
    extra = sorted(set(query) - {CURSOR})
    if extra:
        raise FhirError(
            400,
            "invalid",
            f"a _cursor continues its own search; leave out {', '.join(extra)}",
            expression=extra[0],
        )
    content = unseal(request, kind, token)
    return content["query"], content["position"]


Item = TypeVar("Item")


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: list[Item]
    total: int
    first_key: Any
    last_key: Any
    more_after: bool
    more_before: bool


def keyset_page(
    ordered: Sequence[Item], key: Callable[[Item], Any], position: dict, count: int
) -> Page[Item]:
    """The `count` items after (or before) the cursor's key, of all `ordered` (by `key`)."""
    keys = [key(item) for item in ordered]
    if "before" in position:
        before = _comparable(position["before"])
        end = sum(1 for k in keys if k < before)
        start = max(0, end - count)
    elif "from" in position:
        start = sum(1 for k in keys if k < _comparable(position["from"]))
        end = min(len(keys), start + count)
    else:
        after = _comparable(position.get("after"))
        start = 0 if after is None else sum(1 for k in keys if k <= after)
        end = min(len(keys), start + count)
    return Page(
        items=list(ordered[start:end]),
        total=len(ordered),
        first_key=keys[start] if start < end else None,
        last_key=keys[end - 1] if start < end else None,
        more_after=end < len(keys),
        more_before=start > 0,
    )


def _comparable(key: Any) -> Any:
    # JSON gives lists back; keys are compared as tuples.
    return tuple(key) if isinstance(key, list) else key


def page_links(
    request: Request,
    kind: str,
    path: str,
    query: dict[str, str],
    page: Page,
    count: int,
    pinned: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """`self` (the query in the clear unless it names a person, whose number stays out of
    URLs), `next` and `previous` (cursors); `pinned` goes into every cursor's position
    (what every page of the search must agree on, such as a sorted search's snapshot)."""
    base = f"{fhir_base(request)}/{path}"

    def link(relation: str, position: dict) -> dict[str, str]:
        position = {**(pinned or {}), **position}
        token = seal(request, kind, {"query": query, "position": position})
        return {"relation": relation, "url": f"{base}?{urlencode({CURSOR: token})}"}

    names_person = any(name.partition(":")[0] in PERSON_PARAMETERS for name in query)
    if names_person or CURSOR in request.query_params:
        links = [link("self", {"from": page.first_key} if page.items else {})]
    else:
        links = [{"relation": "self", "url": f"{base}?{urlencode(query)}" if query else base}]
    if count and page.more_after:
        links.append(link("next", {"after": page.last_key}))
    if count and page.more_before:
        links.append(link("previous", {"before": page.first_key}))
    return links
