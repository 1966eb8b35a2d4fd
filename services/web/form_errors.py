"""What is wrong with a submitted form, by field: the page's own checks and a service's
refusal, each message placed beside the field it concerns (or at the top of the form when it
concerns no one field), in Swedish."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.web.fhir_client import Issue, Refused
from services.web.texts import parameter_of, refusal_in_swedish


@dataclass
class FormErrors:
    fields: dict[str, list[str]] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)

    def add(self, name: str | None, message: str) -> None:
        if name:
            self.fields.setdefault(name, []).append(message)
        else:
            self.top.append(message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.top)

    def all(self) -> list[tuple[str | None, str]]:
        """Every message with its field, for the summary at the top of the form."""
        return [(None, m) for m in self.top] + [
            (name, m) for name, messages in self.fields.items() for m in messages
        ]


def place_refusal(
    refused: Refused,
    fields: Iterable[str],
    field_of: Callable[[Issue], str | None] = lambda issue: None,
    sentence_of: Callable[[Issue], str | None] = lambda issue: None,
) -> FormErrors:
    """Each issue of a refusal beside its field: the one `field_of` names for it (a rule the
    page knows), else the operation parameter it names if the form has that field; in the
    words `sentence_of` has for it, else texts.RULE's."""
    errors = FormErrors()
    known = set(fields)
    for issue in refused.issues or [Issue("")]:
        sentence = sentence_of(issue) or refusal_in_swedish(Refused(refused.status, [issue]))[0]
        name = field_of(issue)
        if name is None:
            parameter = parameter_of(issue)
            name = parameter if parameter in known else None
        errors.add(name, sentence)
    return errors
