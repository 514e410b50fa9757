"""Kubernetes label selectors: parsing, canonical printing and matching.

This module owns label selection, in both of the forms the Kubernetes API uses:

* the string form of ``?labelSelector=`` (``app=web,tier in (fe,be),!canary``), parsed by
  :func:`parse_selector` with the same lexer, grammar, validation and error messages as
  ``k8s.io/apimachinery/pkg/labels/selector.go``;
* the ``LabelSelector`` object of specs (``matchLabels`` / ``matchExpressions``), turned into a
  :class:`Selector` by :func:`selector_from_label_selector` (``LabelSelectorAsSelector``) and
  checked field by field by :func:`validate_label_selector` (``ValidateLabelSelector``).

A :class:`Selector` is an AND of :class:`Requirement` s sorted by key. Its ``str`` is
Kubernetes' canonical form, which parses back to an equal selector. Two selectors are special:
the empty selector (``Selector()``, ``""``) matches every object, while :meth:`Selector.nothing`
matches none - it is what a *missing* (``null``) ``LabelSelector`` means, whereas an empty one
(``{}``) selects everything.

Matching semantics are Kubernetes': ``=``/``==``/``in`` need the key present with one of the
values; ``!=``/``notin`` also match when the key is absent; ``gt``/``lt`` need the key present
with a value that parses as a base-10 int64. :meth:`Selector.matches` runs in the watch fan-out
hot path, so each selector precompiles its requirements into a flat plan of tuples.

Label key/value syntax checks live in :mod:`setpoint.meta.validation`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from setpoint.meta import gofmt
from setpoint.meta.validation import label_key_errors, label_value_errors

__all__ = [
    "OPERATORS",
    "Requirement",
    "Selector",
    "SelectorParseError",
    "label_selector_field_errors",
    "new_requirement",
    "parse_selector",
    "selector_from_label_selector",
    "selector_from_set",
    "validate_label_selector",
    "validated_selector_from_set",
]


class SelectorParseError(ValueError):
    """A label selector (string or object form) is malformed; the message is Kubernetes'."""


# Operator spellings, as Kubernetes' ``selection.Operator`` values.
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_UNARY_OPERATORS = (EXISTS, DOES_NOT_EXIST)
OPERATORS: tuple[str, ...] = _BINARY_OPERATORS + _UNARY_OPERATORS
"""Every operator a :class:`Requirement` may carry, in Kubernetes' order."""

_OPERATOR_SET = frozenset(OPERATORS)
_EQUALITY_OPERATORS = frozenset((EQUALS, DOUBLE_EQUALS))

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _parse_int64(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: None where Go would return an error.

    Accepts an optional sign and ASCII digits only (no spaces, underscores or other digits).
    """
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    number = int(text)
    if number < _INT64_MIN or number > _INT64_MAX:
        return None
    return number


# ---------------------------------------------------------------------------------------------
# Requirement


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` term of a selector.

    ``operator`` is one of :data:`OPERATORS`; ``==`` is kept distinct from ``=`` (as Kubernetes
    does, so ``str`` round-trips) but the two behave identically. Constructing a Requirement
    directly only checks the operator; use :func:`new_requirement` for Kubernetes' full
    validation of the key, the number of values and their syntax.
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()
    _value_set: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)
    _bound: int | None = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.operator not in _OPERATOR_SET:
            raise SelectorParseError(
                f"{gofmt.quote(self.operator)} is not a valid selector operator"
            )
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "_value_set", frozenset(self.values))
        bound = None
        if self.operator in (GREATER_THAN, LESS_THAN) and len(self.values) == 1:
            bound = _parse_int64(self.values[0])
        object.__setattr__(self, "_bound", bound)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this requirement (Kubernetes' ``Requirement.Matches``)."""
        op = self.operator
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            return value is not None and value in self._value_set
        if op in (NOT_EQUALS, NOT_IN):
            return value is None or value not in self._value_set
        # gt / lt
        if value is None or self._bound is None:
            return False
        number = _parse_int64(value)
        if number is None:
            return False
        return number > self._bound if op == GREATER_THAN else number < self._bound

    def __str__(self) -> str:
        op = self.operator
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op == EXISTS:
            return self.key
        values = self.values
        rendered = values[0] if len(values) == 1 else ",".join(sorted(values))
        if op == IN:
            return f"{self.key} in ({rendered})"
        if op == NOT_IN:
            return f"{self.key} notin ({rendered})"
        if op == GREATER_THAN:
            return f"{self.key}>{rendered}"
        if op == LESS_THAN:
            return f"{self.key}<{rendered}"
        return f"{self.key}{op}{rendered}"


def _child(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path else name


def _aggregate(messages: list[str]) -> str:
    """Kubernetes' ``ErrorList.ToAggregate().Error()``: de-duplicated, bracketed if several."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def _requirement_errors(
    key: str, operator: str, values: Sequence[str] | None, path: str | None
) -> list[str]:
    """The ``field.Error`` strings Kubernetes' ``NewRequirement`` would produce."""
    errs: list[str] = []
    key_errs = label_key_errors(key)
    if key_errs:
        errs.append(
            f"{_child(path, 'key')}: Invalid value: {gofmt.quote(key)}: {'; '.join(key_errs)}"
        )
    vals: Sequence[str] = values or ()
    value_path = _child(path, "values")
    if operator in (IN, NOT_IN):
        if not vals:
            errs.append(
                f"{value_path}: Invalid value: {gofmt.sharp_v_string_slice(values)}: "
                "for 'in', 'notin' operators, values set can't be empty"
            )
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(
                f"{value_path}: Invalid value: {gofmt.sharp_v_string_slice(values)}: "
                "exact-match compatibility requires one single value"
            )
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(
                f"{value_path}: Invalid value: {gofmt.sharp_v_string_slice(values)}: "
                "values set must be empty for exists and does not exist"
            )
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(
                f"{value_path}: Invalid value: {gofmt.sharp_v_string_slice(values)}: "
                "for 'Gt', 'Lt' operators, exactly one value is required"
            )
        for i, value in enumerate(vals):
            if _parse_int64(value) is None:
                errs.append(
                    f"{value_path}[{i}]: Invalid value: {gofmt.quote(value)}: "
                    "for 'Gt', 'Lt' operators, the value must be an integer"
                )
    else:
        supported = ", ".join(gofmt.quote(op) for op in OPERATORS)
        errs.append(
            f"{_child(path, 'operator')}: Unsupported value: {gofmt.quote(operator)}: "
            f"supported values: {supported}"
        )
    for i, value in enumerate(vals):
        value_errs = label_value_errors(value)
        if value_errs:
            errs.append(
                f"{value_path}[{i}][{key}]: Invalid value: {gofmt.quote(value)}: "
                + "; ".join(value_errs)
            )
    return errs


def new_requirement(
    key: str, operator: str, values: Sequence[str] | None = (), *, path: str | None = None
) -> Requirement:
    """Kubernetes' ``NewRequirement``: validate, then build a :class:`Requirement`.

    Raises :class:`SelectorParseError` carrying Kubernetes' aggregated field errors, e.g.
    ``values[0][tier]: Invalid value: "-x": a valid label must be ...``. ``path`` prefixes the
    field paths in those messages; ``values=None`` stands for Go's nil slice in messages.
    """
    errs = _requirement_errors(key, operator, values, path)
    if errs:
        raise SelectorParseError(_aggregate(errs))
    return Requirement(key, operator, tuple(values or ()))


# ---------------------------------------------------------------------------------------------
# Selector

# Opcodes of the compiled match plan (literals are inlined in Selector.matches for speed).
_OP_EQ, _OP_NE, _OP_IN, _OP_NOTIN, _OP_EXISTS, _OP_ABSENT, _OP_GT, _OP_LT = range(8)

_NO_LABELS: Mapping[str, str] = {}


def _compile(req: Requirement) -> tuple[int, str, Any]:
    op, key, values = req.operator, req.key, req.values
    if op in (EQUALS, DOUBLE_EQUALS, IN):
        return (_OP_EQ, key, values[0]) if len(values) == 1 else (_OP_IN, key, req._value_set)
    if op in (NOT_EQUALS, NOT_IN):
        return (_OP_NE, key, values[0]) if len(values) == 1 else (_OP_NOTIN, key, req._value_set)
    if op == EXISTS:
        return (_OP_EXISTS, key, None)
    if op == DOES_NOT_EXIST:
        return (_OP_ABSENT, key, None)
    return (_OP_GT if op == GREATER_THAN else _OP_LT, key, req._bound)


class Selector:
    """An AND of label requirements, kept sorted by key (stable for equal keys).

    ``Selector()`` is the empty selector and matches everything; :meth:`nothing` matches
    nothing. Instances are immutable and hashable.
    """

    __slots__ = ("_eq", "_nothing", "_plan", "requirements")

    requirements: tuple[Requirement, ...]
    _plan: tuple[tuple[int, str, Any], ...]
    _nothing: bool
    _eq: dict[str, str]

    _EVERYTHING: ClassVar[Selector]
    _NOTHING: ClassVar[Selector]

    def __init__(self, requirements: Iterable[Requirement] = ()) -> None:
        reqs = tuple(sorted(requirements, key=_requirement_key))
        self.requirements = reqs
        self._plan = tuple(_compile(r) for r in reqs)
        self._nothing = False
        eq: dict[str, str] = {}
        for r in reqs:
            if (r.operator in _EQUALITY_OPERATORS or r.operator == IN) and len(r.values) == 1:
                eq.setdefault(r.key, r.values[0])
        self._eq = eq

    @classmethod
    def everything(cls) -> Selector:
        """The empty selector: matches every label set (what ``{}`` / ``""`` mean)."""
        return cls._EVERYTHING

    @classmethod
    def nothing(cls) -> Selector:
        """A selector that matches no label set, not even an empty one.

        This is what Kubernetes makes of a *missing* (``null``) ``LabelSelector``; it has no
        requirements, is not empty, and prints as ``""``.
        """
        return cls._NOTHING

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether the label set satisfies every requirement. ``None`` means no labels."""
        plan = self._plan
        if not plan:
            return not self._nothing
        if labels is None:
            labels = _NO_LABELS
        get = labels.get
        for op, key, arg in plan:
            if op == 0:  # _OP_EQ
                if get(key) != arg:
                    return False
            elif op == 1:  # _OP_NE
                if get(key) == arg:
                    return False
            elif op == 2:  # _OP_IN
                value = get(key)
                if value is None or value not in arg:
                    return False
            elif op == 3:  # _OP_NOTIN
                value = get(key)
                if value is not None and value in arg:
                    return False
            elif op == 4:  # _OP_EXISTS
                if key not in labels:
                    return False
            elif op == 5:  # _OP_ABSENT
                if key in labels:
                    return False
            else:  # _OP_GT / _OP_LT
                value = get(key)
                if value is None or arg is None:
                    return False
                number = _parse_int64(value)
                if number is None:
                    return False
                if op == 6:
                    if number <= arg:
                        return False
                elif number >= arg:
                    return False
        return True

    def is_empty(self) -> bool:
        """True if the selector does not restrict anything (``nothing()`` is not empty)."""
        return not self.requirements and not self._nothing

    def matches_nothing(self) -> bool:
        """True only for :meth:`nothing` (contradictions like ``a=x,a=y`` are not detected)."""
        return self._nothing

    def equality_pairs(self) -> dict[str, str]:
        """``key -> value`` for every key pinned to a single value (``=``, ``==``, ``in (v)``).

        Meant for narrowing an index lookup: every matching object has these labels, so the
        caller still runs :meth:`matches` on the candidates. If a key is pinned twice to
        different values nothing can match; the first one is returned.
        """
        return dict(self._eq)

    def requires_exact_match(self, key: str) -> str | None:
        """Kubernetes' ``RequiresExactMatch``: the value the *first* requirement on ``key``
        pins it to (``=``, ``==`` or single-valued ``in``), else None."""
        for r in self.requirements:
            if r.key == key:
                if (r.operator in _EQUALITY_OPERATORS or r.operator == IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def add(self, *requirements: Requirement) -> Selector:
        """A new selector with extra requirements (re-sorted by key)."""
        if self._nothing:
            return self
        return Selector(self.requirements + requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        if self._nothing:
            return "Selector.nothing()"
        return f"Selector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


def _requirement_key(r: Requirement) -> str:
    return r.key


Selector._EVERYTHING = Selector()
Selector._NOTHING = Selector()
Selector._NOTHING._nothing = True


def selector_from_set(labels: Mapping[str, str] | None) -> Selector:
    """Kubernetes' ``SelectorFromSet``: ``k=v`` for every pair, without validation.

    ``None`` and ``{}`` give the empty selector (matches everything).
    """
    if not labels:
        return Selector._EVERYTHING
    return Selector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())


def validated_selector_from_set(labels: Mapping[str, str] | None) -> Selector:
    """Kubernetes' ``ValidatedSelectorFromSet``: like :func:`selector_from_set` but checks
    every key and value, raising :class:`SelectorParseError`."""
    if not labels:
        return Selector._EVERYTHING
    return Selector(new_requirement(k, EQUALS, (v,)) for k, v in sorted(labels.items()))


# ---------------------------------------------------------------------------------------------
# String form: lexer and parser, a transliteration of Kubernetes' labels.Parse

# Tokens
_ERROR = 0
_EOS = 1
_CLOSE_PAR = 2
_COMMA = 3
_NOT = 4  # "!" (DoesNotExistToken)
_DOUBLE_EQUALS = 5
_EQUALS = 6
_GREATER = 7
_IDENTIFIER = 8
_IN = 9
_LESS = 10
_NOT_EQUALS = 11
_NOT_IN = 12
_OPEN_PAR = 13

_STRING_TO_TOKEN = {
    ")": _CLOSE_PAR,
    ",": _COMMA,
    "!": _NOT,
    "==": _DOUBLE_EQUALS,
    "=": _EQUALS,
    ">": _GREATER,
    "in": _IN,
    "<": _LESS,
    "!=": _NOT_EQUALS,
    "notin": _NOT_IN,
    "(": _OPEN_PAR,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
# An identifier runs up to a special symbol, whitespace, or NUL (which Go's lexer treats as
# end of input and swallows).
_IDENTIFIER_RE = re.compile(r"[^=!(),>< \t\r\n\x00]*")

_BINARY_OPERATORS_TEXT = ", ".join(_BINARY_OPERATORS)

_TOKEN_TO_OPERATOR = {
    _IN: IN,
    _EQUALS: EQUALS,
    _DOUBLE_EQUALS: DOUBLE_EQUALS,
    _GREATER: GREATER_THAN,
    _LESS: LESS_THAN,
    _NOT_IN: NOT_IN,
    _NOT_EQUALS: NOT_EQUALS,
}


def _lex(text: str) -> list[tuple[int, str]]:
    """Tokenise like Kubernetes' ``Lexer``, up to and including the end-of-string token.

    Go's lexer reads bytes and uses NUL as its end-of-input sentinel, so a literal NUL ends
    an identifier (and is consumed) and, where a token would start, ends the whole input.
    Non-ASCII characters are never special, so lexing code points gives the same tokens.
    """
    items: list[tuple[int, str]] = []
    n = len(text)
    pos = 0
    while True:
        # skip whitespace; reading past the end yields the NUL sentinel
        while pos < n and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_EOS, ""))
            return items
        ch = text[pos]
        if ch == "\x00":
            items.append((_EOS, ""))
            return items
        if ch in _SPECIAL:
            token, literal = _ERROR, ""
            buffer = ""
            while pos < n:
                ch = text[pos]
                if ch == "\x00":
                    pos += 1
                    break
                if ch not in _SPECIAL:
                    break
                buffer += ch
                found = _STRING_TO_TOKEN.get(buffer)
                if found is not None:
                    token, literal = found, buffer
                elif token != _ERROR:
                    break
                pos += 1
            if token == _ERROR:
                items.append((_ERROR, f"error expected: keyword found '{buffer}'"))
            else:
                items.append((token, literal))
            continue
        match = _IDENTIFIER_RE.match(text, pos)
        assert match is not None  # the pattern accepts the empty string
        literal = match.group()
        pos = match.end()
        if pos < n and text[pos] == "\x00":
            pos += 1
        items.append((_STRING_TO_TOKEN.get(literal, _IDENTIFIER), literal))


class _RequirementError(Exception):
    """An error inside one requirement; parse() prefixes ``unable to parse requirement:``."""


class _Parser:
    """Kubernetes' recursive-descent label selector parser, with its error messages."""

    __slots__ = ("items", "position")

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def _item(self, values_context: bool) -> tuple[int, str]:
        index = self.position
        if index >= len(self.items):
            return _EOS, ""
        token, literal = self.items[index]
        # In a values context the keywords "in" and "notin" are plain identifiers.
        if values_context and token in (_IN, _NOT_IN):
            token = _IDENTIFIER
        return token, literal

    def lookahead(self, values_context: bool) -> tuple[int, str]:
        return self._item(values_context)

    def consume(self, values_context: bool) -> tuple[int, str]:
        item = self._item(values_context)
        self.position += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token, literal = self.lookahead(True)
            if token in (_IDENTIFIER, _NOT):
                try:
                    requirements.append(self.parse_requirement())
                except _RequirementError as exc:
                    raise SelectorParseError(f"unable to parse requirement: {exc}") from None
                token, literal = self.consume(True)
                if token == _EOS:
                    return requirements
                if token == _COMMA:
                    token2, literal2 = self.lookahead(True)
                    if token2 != _IDENTIFIER and token2 != _NOT:
                        raise SelectorParseError(
                            f"found '{literal2}', expected: identifier after ','"
                        )
                else:
                    raise SelectorParseError(f"found '{literal}', expected: ',' or 'end of string'")
            elif token == _EOS:
                return requirements
            else:
                raise SelectorParseError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )

    def parse_requirement(self) -> Requirement:
        key, operator = self.parse_key_and_infer_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return self._new(key, operator, [])
        operator = self.parse_operator()
        values = self.parse_values() if operator in (IN, NOT_IN) else self.parse_exact_value()
        return self._new(key, operator, sorted(values))

    @staticmethod
    def _new(key: str, operator: str, values: list[str]) -> Requirement:
        errs = _requirement_errors(key, operator, values, None)
        if errs:
            raise _RequirementError(_aggregate(errs))
        return Requirement(key, operator, tuple(values))

    def parse_key_and_infer_operator(self) -> tuple[str, str]:
        operator = ""
        token, literal = self.consume(True)
        if token == _NOT:
            operator = DOES_NOT_EXIST
            token, literal = self.consume(True)
        if token != _IDENTIFIER:
            raise _RequirementError(f"found '{literal}', expected: identifier")
        key_errs = label_key_errors(literal)
        if key_errs:
            # Kubernetes reports this against a nil field path, hence "<nil>".
            raise _RequirementError(
                f"<nil>: Invalid value: {gofmt.quote(literal)}: {'; '.join(key_errs)}"
            )
        next_token, _ = self.lookahead(True)
        if next_token in (_EOS, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def parse_operator(self) -> str:
        token, literal = self.consume(False)
        operator = _TOKEN_TO_OPERATOR.get(token)
        if operator is None:
            raise _RequirementError(f"found '{literal}', expected: {_BINARY_OPERATORS_TEXT}")
        return operator

    def parse_values(self) -> set[str]:
        token, literal = self.consume(True)
        if token != _OPEN_PAR:
            raise _RequirementError(f"found '{literal}' expected: '('")
        token, literal = self.lookahead(True)
        if token in (_IDENTIFIER, _COMMA):
            values = self.parse_identifiers_list()
            token2, _ = self.consume(True)
            if token2 != _CLOSE_PAR:
                raise _RequirementError(f"found '{literal}', expected: ')'")
            return values
        if token == _CLOSE_PAR:  # "()"
            self.consume(True)
            return {""}
        raise _RequirementError(f"found '{literal}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            token, literal = self.consume(True)
            if token == _IDENTIFIER:
                values.add(literal)
                token2, literal2 = self.lookahead(True)
                if token2 == _COMMA:
                    continue
                if token2 == _CLOSE_PAR:
                    return values
                raise _RequirementError(f"found '{literal2}', expected: ',' or ')'")
            if token == _COMMA:  # empty values: "(,", ",,", ",)"
                if not values:
                    values.add("")
                token2, _ = self.lookahead(True)
                if token2 == _CLOSE_PAR:
                    values.add("")
                    return values
                if token2 == _COMMA:
                    values.add("")
                continue
            raise _RequirementError(f"found '{literal}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        token, _ = self.lookahead(True)
        if token in (_EOS, _COMMA):
            return {""}
        token, literal = self.consume(True)
        if token == _IDENTIFIER:
            return {literal}
        raise _RequirementError(f"found '{literal}', expected: identifier")


def parse_selector(text: str) -> Selector:
    """Parse the string form of a label selector (``?labelSelector=``), as ``labels.Parse``.

    Grammar: comma-separated requirements, each ``[!]KEY``, ``KEY (=|==|!=) VALUE``,
    ``KEY (in|notin) (V1,V2,...)`` or ``KEY (>|<) INTEGER``; whitespace between tokens is
    ignored and ``""`` is the empty selector. Keys and values are validated as label keys and
    label values. Raises :class:`SelectorParseError` with Kubernetes' message, e.g.
    ``unable to parse requirement: found '', expected: ',' or ')'``.
    """
    return Selector(_Parser(text).parse())


# ---------------------------------------------------------------------------------------------
# Object form: metav1.LabelSelector

_EXPRESSION_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def _string_list(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise SelectorParseError(f"values must be a list of strings, got {values!r}")
    return list(values)


def selector_from_label_selector(ls: Mapping[str, Any] | None) -> Selector:
    """Kubernetes' ``LabelSelectorAsSelector`` for a ``LabelSelector`` in its JSON shape.

    ``None`` (a missing selector) gives :meth:`Selector.nothing`, which matches no object;
    a selector with no ``matchLabels`` and no ``matchExpressions`` (e.g. ``{}``) gives the
    empty selector, which matches every object. Invalid content raises
    :class:`SelectorParseError` with Kubernetes' message (e.g.
    ``"Foo" is not a valid pod selector operator``).
    """
    if ls is None:
        return Selector._NOTHING
    match_labels = ls.get("matchLabels") or {}
    match_expressions = ls.get("matchExpressions") or []
    if not match_labels and not match_expressions:
        return Selector._EVERYTHING
    requirements: list[Requirement] = []
    for key in sorted(match_labels):
        value = match_labels[key]
        if not isinstance(value, str):
            raise SelectorParseError(f"matchLabels[{key}] must be a string, got {value!r}")
        requirements.append(new_requirement(key, EQUALS, (value,)))
    for expr in match_expressions:
        raw_operator = expr.get("operator") or ""
        operator = _EXPRESSION_OPERATORS.get(raw_operator)
        if operator is None:
            raise SelectorParseError(
                f"{gofmt.quote(str(raw_operator))} is not a valid pod selector operator"
            )
        values = _string_list(expr.get("values"))
        # Kubernetes copies the values with append([]string(nil), ...): empty means nil.
        requirements.append(new_requirement(expr.get("key") or "", operator, values or None))
    return Selector(requirements)


def label_selector_field_errors(
    ls: Mapping[str, Any] | None, path: str
) -> list[tuple[str, str, str]]:
    """Kubernetes' ``ValidateLabelSelector`` as ``(causeType, fieldPath, message)`` triples.

    ``causeType`` is ``FieldValueRequired``, ``FieldValueForbidden`` or ``FieldValueInvalid``;
    ``message`` is the error body (``Required value: ...``, ``Forbidden: ...``,
    ``Invalid value: "x": ...``).
    """
    problems: list[tuple[str, str, str]] = []
    if ls is None:
        return problems
    labels_path = _child(path, "matchLabels")
    match_labels = ls.get("matchLabels") or {}
    for key, value in match_labels.items():
        for msg in label_key_errors(key):
            problems.append(
                ("FieldValueInvalid", labels_path, f"Invalid value: {gofmt.quote(key)}: {msg}")
            )
        if isinstance(value, str):
            for msg in label_value_errors(value):
                problems.append(
                    (
                        "FieldValueInvalid",
                        labels_path,
                        f"Invalid value: {gofmt.quote(value)}: {msg}",
                    )
                )
    for i, expr in enumerate(ls.get("matchExpressions") or []):
        expr_path = f"{_child(path, 'matchExpressions')}[{i}]"
        operator = expr.get("operator") or ""
        values = expr.get("values") or []
        if not isinstance(values, list | tuple):
            values = []
        if operator in ("In", "NotIn"):
            if not values:
                problems.append(
                    (
                        "FieldValueRequired",
                        f"{expr_path}.values",
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                problems.append(
                    (
                        "FieldValueForbidden",
                        f"{expr_path}.values",
                        "Forbidden: may not be specified when `operator` is "
                        "'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            problems.append(
                (
                    "FieldValueInvalid",
                    f"{expr_path}.operator",
                    f"Invalid value: {gofmt.quote(str(operator))}: not a valid selector operator",
                )
            )
        key = expr.get("key") or ""
        for msg in label_key_errors(key):
            problems.append(
                (
                    "FieldValueInvalid",
                    f"{expr_path}.key",
                    f"Invalid value: {gofmt.quote(key)}: {msg}",
                )
            )
        for j, value in enumerate(values):
            if not isinstance(value, str):
                continue
            for msg in label_value_errors(value):
                problems.append(
                    (
                        "FieldValueInvalid",
                        f"{expr_path}.values[{j}]",
                        f"Invalid value: {gofmt.quote(value)}: {msg}",
                    )
                )
    return problems


def validate_label_selector(ls: Mapping[str, Any] | None, path: str) -> list[tuple[str, str]]:
    """Kubernetes' ``ValidateLabelSelector``: ``(fieldPath, message)`` for every problem.

    ``path`` is where the selector sits (``spec.selector``), giving paths such as
    ``spec.selector.matchExpressions[0].values``. A ``None`` selector has no problems. Use
    :func:`label_selector_field_errors` to also get each problem's cause type.
    """
    return [(fld, msg) for _, fld, msg in label_selector_field_errors(ls, path)]
