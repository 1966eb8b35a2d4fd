"""The retention rules (issue 16, docs/decisions/0007): per retention class, how long after the
last entry about the person their data of that class is kept before it is erased (its data
key deleted, `sip retention run`).

The Swedish defaults: the region's parts of a plan are a patient record, kept at least ten
years after the last entry (patientdatalagen 3 kap. 17 §); the municipality's parts are
social-services records, erased five years after it (socialtjänstlagen 12 kap. 1 §); a
consent is kept as long as the longest record it let be disclosed (ten years); access records
at least five years. Changed with a TOML file named by `SIP_RETENTION_FILE`:

    [municipality]
    years = 7
    rule = "Kommunens gallringsbeslut 2027:12"

A class left out keeps its default. The file is checked at the services' start and by every
`sip retention` command: an unknown class, a period that is not a whole number of years, or
one shorter than the law's minimum (ten years for `region`, five for `access`) is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RETENTION_FILE_VARIABLE = "SIP_RETENTION_FILE"


@dataclass(frozen=True)
class RetentionRule:
    retention_class: str
    years: int
    rule: str  # named on the erased key and in the erasure event

    def due(self, last_entry: datetime) -> datetime:
        """The moment the period counted from the last entry ends (29 February: 28th)."""
        year = last_entry.year + self.years
        try:
            return last_entry.replace(year=year)
        except ValueError:
            return last_entry.replace(year=year, day=28)


DEFAULT_RULES: dict[str, RetentionRule] = {
    rule.retention_class: rule
    for rule in (
        RetentionRule("region", 10, "patient record, 10 years after the last entry (PDL 3:17)"),
        RetentionRule(
            "municipality", 5, "social-services record, 5 years after the last entry (SoL 12:1)"
        ),
        RetentionRule("consent", 10, "consent, 10 years after the last entry"),
        RetentionRule("access", 5, "access log, 5 years after the record (PDL 4:3)"),
    )
}
# The shortest periods the law allows: a longer one may be configured, never a shorter.
MINIMUM_YEARS = {"region": 10, "access": 5}


class RetentionConfigProblem(ValueError):
    """A retention file that cannot be used, with what is wrong in it."""


def retention_rules(path: Path | None) -> dict[str, RetentionRule]:
    """The rules: the defaults, with those the file at `path` changes."""
    rules = dict(DEFAULT_RULES)
    if path is None:
        return rules
    try:
        configured = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise RetentionConfigProblem(f"{RETENTION_FILE_VARIABLE} {path}: {error}") from None
    for retention_class, settings in configured.items():
        where = f"{RETENTION_FILE_VARIABLE} {path}, [{retention_class}]"
        if retention_class not in DEFAULT_RULES:
            raise RetentionConfigProblem(
                f"{where}: not a retention class (one of {', '.join(DEFAULT_RULES)})"
            )
        if not isinstance(settings, dict) or set(settings) - {"years", "rule"}:
            raise RetentionConfigProblem(f"{where}: takes `years` and `rule` only")
        years = settings.get("years", rules[retention_class].years)
        if isinstance(years, bool) or not isinstance(years, int) or years < 1:
            raise RetentionConfigProblem(f"{where}: years is a whole number, at least 1")
        minimum = MINIMUM_YEARS.get(retention_class, 1)
        if years < minimum:
            raise RetentionConfigProblem(
                f"{where}: {years} years is shorter than the law's minimum of {minimum}"
            )
        rule = settings.get("rule", f"{retention_class}, {years} years after the last entry")
        if not isinstance(rule, str) or not rule.strip() or len(rule) > 200:
            raise RetentionConfigProblem(f"{where}: rule is a name of 1 to 200 characters")
        rules[retention_class] = RetentionRule(retention_class, years, rule.strip())
    return rules


def retention_file_from_env(environ: Mapping[str, str] = os.environ) -> Path | None:
    given = environ.get(RETENTION_FILE_VARIABLE)
    return Path(given) if given else None
