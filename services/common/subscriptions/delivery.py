"""Posting notifications to the receivers: one event's notifications to its subscribers at
once, from a pool of threads, each signed; an endpoint is checked against the SSRF rule
again before each post (its name may have come to point elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

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
        # Redirects are not followed: a receiver cannot send the service on to another host;
        # nor retried here: the worker retries with its backoff.
        self._client = urllib3.PoolManager(num_pools=256, maxsize=concurrency, retries=False)
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
            answer = self._client.request(
                "POST", row.endpoint, body=body, headers=headers, redirect=False,
                timeout=urllib3.Timeout(total=row.timeout_seconds),
            )  # fmt: skip
        except (HTTPError, OSError) as error:
            return f"{type(error).__name__} posting to the endpoint"
        if 200 <= answer.status < 300:
            return None
        return f"the endpoint answered HTTP {answer.status}"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.clear()
