"""Pages of what an application's stored events show, newest first, read from the event
log by position: a page costs the events it reads, not the store's size.

Type-level `_history` lists one entry per version of a resource (a plan's view lists one
per version at which its part changed). Each version is one event, and the event log
numbers events in commit order (notification ids: docs/decisions/0005), so the history is
paged by the key (-notification id, resource id): newest first, fixed once committed, no two
entries tied. A page reads the log backwards from its cursor's position in windows of ids
(`select_notifications(start, limit, stop, topics)`, an index range each) until it holds
`_count` entries the caller may see plus one, so it knows whether a next page exists, and
reconstructs only the versions it shows. Nothing committed after a page was read ever
lands behind that page's cursor, so paging on gives each entry once; a `previous` link may
meet what was committed meanwhile.

Which entries a notification gives, and whether the caller may see them, is the caller's
`entries` (the resource type's disclosure rule and redaction decide it); this module only
walks the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from services.common.paging import Page

Item = TypeVar("Item")
Key = tuple[int, str]
# The entries a notification gives the caller: (resource id, item) each; none where it
# shows the caller nothing.
Entries = Callable[[Any], Sequence[tuple[str, Item]]]
_FIRST_WINDOW = 64
_LARGEST_WINDOW = 8192


class PositionPager(Generic[Item]):
    """Newest-first keyset pages over the notifications of `topics` up to `head`."""

    def __init__(self, recorder: Any, topics: Sequence[str], entries: Entries, head: int) -> None:
        self.recorder = recorder
        self.topics = list(topics)
        self.entries = entries
        self.head = head

    def page(self, position: dict[str, Any], count: int) -> Page[tuple[Key, Item]]:
        """The `count` entries after (or before, or from) the cursor's key, with whether
        more are visible on either side; a page of 0 only says whether any is there."""
        if "before" in position:
            before = _key(position["before"])
            newer = self._take(self._ascending(before[0]), lambda k: k < before, count + 1)
            items = list(reversed(newer[:count]))
            more_after = self._any(self._descending(before[0]), lambda k: k >= before)
            return _page(items, more_after=more_after, more_before=len(newer) > count)
        if "from" in position:
            start = _key(position["from"])
            found = self._take(self._descending(start[0]), lambda k: k >= start, count + 1)
            more_before = self._any(self._ascending(start[0]), lambda k: k < start)
        else:
            after = _key(position.get("after"))
            top = after[0] if after else None
            newer_than_cursor = (lambda k: True) if after is None else (lambda k: k > after)
            found = self._take(self._descending(top), newer_than_cursor, count + 1)
            more_before = after is not None and self._any(
                self._ascending(after[0]), lambda k: k <= after
            )
        return _page(found[:count], more_after=len(found) > count, more_before=more_before)

    def every(self) -> Iterator[tuple[Key, Item]]:
        """Every entry the caller may see, newest first (for an exact total: a full scan)."""
        return self._descending(None)

    def _take(
        self, entries: Iterator[tuple[Key, Item]], wanted: Callable[[Key], bool], limit: int
    ) -> list[tuple[Key, Item]]:
        taken: list[tuple[Key, Item]] = []
        if limit <= 0:
            return taken
        for key, item in entries:
            if wanted(key):
                taken.append((key, item))
                if len(taken) >= limit:
                    break  # read no further: each entry read may reconstruct a version
        return taken

    def _any(self, entries: Iterator[tuple[Key, Item]], wanted: Callable[[Key], bool]) -> bool:
        return any(wanted(key) for key, _ in entries)

    def _descending(self, top: int | None) -> Iterator[tuple[Key, Item]]:
        """Entries in key order (newest first) from the notification at -`top` (the key's
        first part) or the head, down to the first."""
        stop = self.head if top is None else min(-top, self.head)
        window = _FIRST_WINDOW
        while stop >= 1:
            start = max(1, stop - window + 1)
            found = self.recorder.select_notifications(
                start=start, limit=stop - start + 1, stop=stop, topics=self.topics
            )
            for notification in reversed(found):
                yield from self._keyed(notification)
            stop = start - 1
            # Widening: a type's events may be sparse among the access records.
            window = min(window * 2, _LARGEST_WINDOW)

    def _ascending(self, top: int) -> Iterator[tuple[Key, Item]]:
        """Entries in reverse key order (oldest first) from the notification at -`top` up
        to the head."""
        start = -top
        window = _FIRST_WINDOW
        inclusive = True
        while start <= self.head:
            found = self.recorder.select_notifications(
                start=start,
                limit=window,
                stop=self.head,
                topics=self.topics,
                inclusive_of_start=inclusive,
            )
            for notification in found:
                yield from reversed(self._keyed(notification))
            if len(found) < window:
                return
            start, inclusive = found[-1].id, False
            window = min(window * 2, _LARGEST_WINDOW)

    def _keyed(self, notification: Any) -> list[tuple[Key, Item]]:
        keyed = [
            ((-notification.id, resource_id), item)
            for resource_id, item in self.entries(notification)
        ]
        return sorted(keyed, key=lambda entry: entry[0])


def _key(value: Any) -> Key | None:
    # JSON gives lists back; a key is compared as a tuple.
    if value is None:
        return None
    position, resource_id = value
    return (int(position), str(resource_id))


def _page(
    items: list[tuple[Key, Item]], *, more_after: bool, more_before: bool
) -> Page[tuple[Key, Item]]:
    return Page(
        items=items,
        total=len(items),  # the page's; an exact total is counted apart, where asked
        first_key=list(items[0][0]) if items else None,
        last_key=list(items[-1][0]) if items else None,
        more_after=more_after,
        more_before=more_before,
    )
