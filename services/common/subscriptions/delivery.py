"""Posting notifications to the receivers: one event's notifications to its subscribers at
once, each signed.

The posts are made by aiohttp on one event loop of their own (a thread): a hundred
notifications of one event go out side by side without a hundred threads taking turns at the
interpreter, which is what bounded the delivery latency with a thread pool (measured in
bench/notification_latency.py; decision 0006). Bodies are serialised and signed by the
caller, before the loop sees them.

An endpoint is checked against the SSRF rule before each post (its name may have come to
point elsewhere), and the addresses a connection is made to are checked by the same rule as
they are resolved (`_CheckingResolver`), so a name that changes in between is refused too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from services.common.subscriptions.endpoints import (
    EndpointRefused,
    check_endpoint,
    checked_addresses,
)
from services.common.subscriptions.signing import SIGNATURE_HEADER, NotificationSigner
from services.common.subscriptions.store import SubscriptionRow

FHIR_JSON = "application/fhir+json"
# (subscription, bundle) to post
Post = tuple[SubscriptionRow, dict[str, Any]]
# What a receiver may answer is read up to this much; a longer answer closes the connection
# rather than filling the service's memory.
ANSWER_READ_LIMIT = 64 * 1024


class _AddressRefused(OSError):
    """A connection's address is one the endpoint rule forbids (an OSError, as aiohttp
    expects of a resolver that fails)."""


class _CheckingResolver(ThreadedResolver):
    """Resolves a receiver's host name for a connection and refuses an address the endpoint
    rule forbids for the scheme (aiohttp raises it as a connection error)."""

    def __init__(self, scheme: str, allowances: frozenset[str]) -> None:
        super().__init__()
        self._scheme, self._allowances = scheme, allowances

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await super().resolve(host, port, family)
        try:
            checked_addresses([r["host"] for r in resolved], self._scheme, self._allowances)
        except EndpointRefused as refused:
            raise _AddressRefused(f"endpoint refused: {refused}") from None
        return resolved


class Sender:
    def __init__(
        self, signer: NotificationSigner, allowances: Iterable[str], concurrency: int = 64
    ) -> None:
        self._signer = signer
        self._allowances = frozenset(allowances)
        self._concurrency = concurrency
        # The loop and its thread are made at the first post: an app whose worker never
        # starts (a test's, a CLI's) holds no thread.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._starting = threading.Lock()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._starting:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=loop.run_forever, name="subscription-post", daemon=True
                )
                self._thread.start()
                self._loop = loop
                self._sessions = self._run(self._open(self._concurrency))
            return self._loop

    async def _open(self, concurrency: int) -> dict[str, aiohttp.ClientSession]:
        # One session per scheme: the resolver's rule depends on it (http only to loopback).
        return {
            scheme: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=concurrency, resolver=_CheckingResolver(scheme, self._allowances)
                ),
                auto_decompress=False,
            )
            for scheme in ("http", "https")
        }

    def _run(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def post_all(self, posts: list[Post]) -> dict[str, str | None]:
        """Each subscription's error (None: delivered), the posts made side by side."""
        refusals: dict[str, str | None] = {}
        prepared, results = [], {}
        for row, bundle in posts:
            if row.endpoint not in refusals:
                refusals[row.endpoint] = _refusal(row.endpoint, self._allowances)
            if refusals[row.endpoint] is not None:
                results[row.id] = refusals[row.endpoint]
                continue
            body = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()
            prepared.append((row, body, self._signer.sign(body)))
        if prepared:
            self._started()
            results.update(self._run(self._post_each(prepared)))
        return results

    async def _post_each(
        self, prepared: list[tuple[SubscriptionRow, bytes, str]]
    ) -> dict[str, str | None]:
        answers = await asyncio.gather(*(self._post(*each) for each in prepared))
        return {row.id: answer for (row, _, _), answer in zip(prepared, answers, strict=True)}

    async def _post(self, row: SubscriptionRow, body: bytes, signature: str) -> str | None:
        session = self._sessions[urlsplit(row.endpoint).scheme]
        headers = {"Content-Type": FHIR_JSON, SIGNATURE_HEADER: signature}
        try:
            # Redirects are not followed: a receiver cannot send the service on to another
            # host; nor retried here: the worker retries with its backoff.
            async with session.post(
                row.endpoint, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=row.timeout_seconds),
            ) as answer:  # fmt: skip
                await answer.content.read(ANSWER_READ_LIMIT)
                status = answer.status
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            refused = getattr(error, "os_error", error)
            if isinstance(refused, _AddressRefused):
                return str(refused)
            return f"{type(error).__name__} posting to the endpoint"
        if 200 <= status < 300:
            return None
        return f"the endpoint answered HTTP {status}"

    def close(self) -> None:
        with self._starting:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                self._run(_close_all(self._sessions.values()))
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
                loop.close()
                self._loop = self._thread = None


def _refusal(endpoint: str, allowances: frozenset[str]) -> str | None:
    try:
        check_endpoint(endpoint, allowances)
    except EndpointRefused as refused:
        return f"endpoint refused: {refused}"
    return None


async def _close_all(sessions: Iterable[aiohttp.ClientSession]) -> None:
    for session in sessions:
        await session.close()
