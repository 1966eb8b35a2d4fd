"""How the web pages show the services' instants (services/web/times.py): in Swedish time, the
one formatter every page uses (the coordinator's, the person's, the printed plan)."""

import pytest

from services.web.times import local, local_date


@pytest.mark.parametrize(
    ("instant", "shown", "day"),
    [
        # Late in the UTC evening is the next day in Sweden: winter (+01:00), summer (+02:00).
        ("2026-12-31T23:30:00Z", "2027-01-01 00:30", "2027-01-01"),
        ("2026-06-30T22:15:00.123Z", "2026-07-01 00:15", "2026-07-01"),
        ("2026-12-02T10:00:00+05:00", "2026-12-02 06:00", "2026-12-02"),
        # A date stays the date it names; a time without an offset is read as Swedish.
        ("2026-12-02", "2026-12-02", "2026-12-02"),
        ("2026-12-02T23:30:00", "2026-12-02 23:30", "2026-12-02"),
        # Not a time at all: shown as it came, never a 500; nothing: nothing.
        ("i morgon", "i morgon", "i morgon"),
        ("", "", ""),
        (None, "", ""),
    ],
)
def test_instants_are_shown_in_swedish_time(instant, shown, day):
    assert local(instant) == shown
    assert local_date(instant) == day


def test_seconds_are_shown_when_asked():
    assert local("2026-12-02T15:28:46.543Z", seconds=True) == "2026-12-02 16:28:46"
