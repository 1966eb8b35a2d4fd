"""Posting notifications to the receivers: one event's notifications to its subscribers at
once, from a pool of threads, each signed; an endpoint is checked against the SSRF rule
again before each post (its name may have come to point elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from services.common.subscriptions.endpoints import EndpointRefused, check_endpoint
from services.common.subscriptions.signing import SIGNATURE_HEADER, NotificationSigner
from services.common.subscriptions.store import SubscriptionRow

FHIR_JSON = "application/fhir+json"
# (subscription, bundle) to post
Post = tuple[SubscriptionRow, dict[str, Any]]


class Sender:
    def __init__(
        self, signer: NotificationSigner, allowances: Iterable[str], concurrency: int = 32
    ) -> None:
        self._signer = signer
        self._allowances = frozenset(allowances)
        limits = httpx.Limits(
            max_connections=concurrency * 2, max_keepalive_connections=concurrency
        )
        # Redirects are not followed: a receiver cannot send the service on to another host.
        self._client = httpx.Client(limits=limits, follow_redirects=False)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="subscription-post")

    def post_all(self, posts: list[Post]) -> dict[str, str | None]:
        """Each subscription's error (None: delivered), the posts made side by side."""
        if len(posts) == 1:
            row, bundle = posts[0]
            return {row.id: self.post(row, bundle)}
        futures = [(row.id, self._pool.submit(self.post, row, bundle)) for row, bundle in posts]
        return {subscription_id: future.result() for subscription_id, future in futures}

    def post(self, row: SubscriptionRow, bundle: dict[str, Any]) -> str | None:
        try:
            check_endpoint(row.endpoint, self._allowances)
        except EndpointRefused as refused:
            return f"endpoint refused: {refused}"
        body = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": FHIR_JSON, SIGNATURE_HEADER: self._signer.sign(body)}
        try:
            answer = self._client.post(
                row.endpoint, content=body, headers=headers, timeout=row.timeout_seconds
            )
        except httpx.HTTPError as error:
            return f"{type(error).__name__} posting to the endpoint"
        if 200 <= answer.status_code < 300:
            return None
        return f"the endpoint answered HTTP {answer.status_code}"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
