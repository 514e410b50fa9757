"""Kubernetes field selectors: parsing, canonical printing and matching.

This module owns the ``?fieldSelector=`` query parameter (``metadata.name=web,status.phase!=
Running``), following ``k8s.io/apimachinery/pkg/fields/selector.go``:

* terms are separated by commas; each is ``field=value``, ``field==value`` or ``field!=value``,
  split at the first operator, with nothing trimmed;
* inside a value a backslash escapes ``\\``, ``,`` and ``=`` (Kubernetes' ``EscapeValue`` /
  ``UnescapeValue``); any other escape, a dangling backslash or an unescaped ``=`` in a value is
  an error. ``!`` needs no escaping in a value (``a=!b`` selects the value ``!b``) and ``\\!``
  is rejected, as in Kubernetes;
* terms are sorted by their text, and a term with an empty field and empty value (``=``) is
  dropped.

The parser does not know which fields a kind supports: the API server checks
:meth:`FieldSelector.fields` against the kind's selectable fields (answering ``field label not
supported``) and then matches with a getter. :meth:`FieldSelector.matches` treats a field the
getter does not know (``None``) as the empty string, as Kubernetes' ``fields.Set.Get`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "FieldSelectorParseError",
    "escape_value",
    "field_selector_from_set",
    "parse_field_selector",
    "unescape_value",
]


class FieldSelectorParseError(ValueError):
    """A field selector is malformed; the message is Kubernetes'."""


EQUALS = "="
NOT_EQUALS = "!="


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One ``field=value`` or ``field!=value`` term (``==`` is normalised to ``=``)."""

    field: str
    operator: str
    value: str

    def __post_init__(self) -> None:
        if self.operator == "==":
            object.__setattr__(self, "operator", EQUALS)
        elif self.operator not in (EQUALS, NOT_EQUALS):
            raise FieldSelectorParseError(
                f"invalid field selector operator {self.operator!r}: must be '=', '==' or '!='"
            )

    def matches(self, getter: Callable[[str], str | None]) -> bool:
        actual = getter(self.field)
        if actual is None:
            actual = ""
        return (actual == self.value) == (self.operator == EQUALS)

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_value(self.value)}"


class FieldSelector:
    """An AND of field requirements. ``FieldSelector()`` is empty and matches everything."""

    __slots__ = ("_plan", "requirements")

    requirements: tuple[FieldRequirement, ...]
    _plan: tuple[tuple[str, bool, str], ...]

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements = tuple(requirements)
        self._plan = tuple((r.field, r.operator == EQUALS, r.value) for r in self.requirements)

    def matches(self, getter: Callable[[str], str | None]) -> bool:
        """Whether the object whose fields ``getter`` reads satisfies every requirement.

        ``getter(field)`` returns the field's string value, or None if the field is unknown
        (compared as ``""``).
        """
        for fld, equal, value in self._plan:
            actual = getter(fld)
            if actual is None:
                actual = ""
            if (actual == value) != equal:
                return False
        return True

    def fields(self) -> set[str]:
        """The field names the selector refers to (for checking they are supported)."""
        return {r.field for r in self.requirements}

    def equality_value(self, field: str) -> str | None:
        """The value an ``=`` requirement pins ``field`` to (the first one), else None.

        Kubernetes' ``RequiresExactMatch``; used to narrow a lookup, e.g. by
        ``metadata.name`` or ``spec.nodeName``.
        """
        for r in self.requirements:
            if r.field == field and r.operator == EQUALS:
                return r.value
        return None

    def is_empty(self) -> bool:
        return not self.requirements

    def transform(self, fn: Callable[[str, str], tuple[str, str]]) -> FieldSelector:
        """Kubernetes' ``Transform``: map every ``(field, value)``, e.g. to convert field
        labels; ``fn`` may raise to reject one. Terms mapped to ``("", "")`` are dropped."""
        out: list[FieldRequirement] = []
        for r in self.requirements:
            fld, value = fn(r.field, r.value)
            if fld or value:
                out.append(FieldRequirement(fld, r.operator, value))
        return FieldSelector(out)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


def field_selector_from_set(fields: Mapping[str, str] | None) -> FieldSelector:
    """``field=value`` for every pair (sorted by field); ``None``/``{}`` select everything."""
    if not fields:
        return FieldSelector()
    return FieldSelector(FieldRequirement(f, EQUALS, v) for f, v in sorted(fields.items()))


def escape_value(value: str) -> str:
    """Kubernetes' ``EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(text: str) -> str:
    """Kubernetes' ``UnescapeValue``: undo :func:`escape_value`, rejecting anything else.

    Raises :class:`FieldSelectorParseError` with Kubernetes' messages
    (``invalid field selector: invalid escape sequence: \\x``, or
    ``invalid field selector: unescaped character in value: 61`` - Go prints the rune's code).
    """
    if "\\" not in text and "," not in text and "=" not in text:
        return text
    out: list[str] = []
    in_slash = False
    for ch in text:
        if in_slash:
            if ch in "\\,=":
                out.append(ch)
            else:
                raise FieldSelectorParseError(
                    f"invalid field selector: invalid escape sequence: \\{ch}"
                )
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            raise FieldSelectorParseError(
                f"invalid field selector: unescaped character in value: {ord(ch)}"
            )
        else:
            out.append(ch)
    if in_slash:
        raise FieldSelectorParseError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split at commas not preceded by an escaping backslash (escapes are kept)."""
    if "\\" not in text:
        return text.split(",")
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """``(lhs, op, rhs)`` at the first ``!=``, ``==`` or ``=``; None if there is none."""
    eq = term.find("=")
    ne = term.find("!=")
    if ne != -1 and (eq == -1 or ne < eq):
        return term[:ne], NOT_EQUALS, term[ne + 2 :]
    if eq == -1:
        return None
    if term.startswith("==", eq):
        return term[:eq], "==", term[eq + 2 :]
    return term[:eq], EQUALS, term[eq + 1 :]


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``?fieldSelector=`` text, as Kubernetes' ``fields.ParseSelector``.

    ``""`` is the empty selector. Raises :class:`FieldSelectorParseError`, e.g.
    ``invalid selector: 'a'; can't understand 'a'`` for a term without an operator.
    """
    if not text:
        return FieldSelector()
    terms = _split_terms(text)
    terms.sort()
    requirements: list[FieldRequirement] = []
    for term in terms:
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise FieldSelectorParseError(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs, op, rhs = split
        value = unescape_value(rhs)
        if not lhs and not value:
            continue  # Kubernetes' Transform drops a term that is empty on both sides
        requirements.append(
            FieldRequirement(lhs, NOT_EQUALS if op == NOT_EQUALS else EQUALS, value)
        )
    return FieldSelector(requirements)
