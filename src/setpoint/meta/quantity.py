"""Resource quantities ("500m", "1Gi", "2e3") the way Kubernetes reads and prints them.

A quantity is a decimal number with an optional suffix: a binary SI suffix (``Ki`` .. ``Ei``),
a decimal SI suffix (``n``, ``u``, ``m``, ``k``, ``M`` .. ``E``) or a decimal exponent
(``e3``). Kubernetes keeps the exact value (rounded up to nano units), remembers which of the
three formats was used, and always prints the canonical form: ``0.5`` becomes ``500m``,
``1024Mi`` becomes ``1Gi``, ``1.5Gi`` becomes ``1536Mi``. Comparisons use the exact value.

Where setpoint differs: Kubernetes keeps a quantity as a decimal with an int32 scale, so
``1e99999999`` costs it nothing; an exact fraction of that size would take minutes and
gigabytes. So a number of more than ``MAX_DIGITS`` characters, or a positive decimal
exponent past ``MAX_EXPONENT``, is refused with a :class:`QuantityError`; a negative one
past it is the smallest quantity of its sign (``1n``), as Kubernetes rounds it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

QUANTITY_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

MAX_DIGITS = 1000
MAX_EXPONENT = 1000

_SYNTAX = re.compile(r"([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(.*)")
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {bits // 10: suffix for suffix, bits in _BINARY.items()}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """The text is not a quantity; the message is Kubernetes'."""


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str  # "BinarySI" | "DecimalSI" | "DecimalExponent"

    def __str__(self) -> str:
        return canonical(self)


@functools.lru_cache(maxsize=4096)
def parse_quantity(text: str) -> Quantity:
    """Kubernetes' ``ParseQuantity``: exact value rounded up (away from zero) to nano units.

    Cached: the same few quantities appear in object after object.
    """
    match = _SYNTAX.fullmatch(text)
    if match is None:
        raise QuantityError(QUANTITY_ERROR)
    sign, number, suffix = match.groups()
    if number == ".":
        raise QuantityError(QUANTITY_ERROR)
    if len(number) > MAX_DIGITS:
        raise QuantityError(f"quantity has more than {MAX_DIGITS} digits")
    value = Fraction(number)
    if suffix in _BINARY:
        value *= 2 ** _BINARY[suffix]
        fmt = "BinarySI"
    elif suffix in _DECIMAL:
        value *= Fraction(10) ** _DECIMAL[suffix]
        fmt = "DecimalSI"
    elif (exp := _EXPONENT.fullmatch(suffix)) is not None:
        digits = exp.group(1).lstrip("+-").lstrip("0")
        if len(digits) > 18:  # Go's strconv.ParseInt(_, 10, 64) fails past int64
            raise QuantityError("unable to parse quantity's suffix")
        exponent = int(exp.group(1))
        if exponent > MAX_EXPONENT:
            raise QuantityError(f"quantity exponent is larger than {MAX_EXPONENT}")
        if exponent < -MAX_EXPONENT:  # far below 1n: rounds up to 1n, or is 0
            value = _NANO if value else Fraction(0)
            return Quantity(-value if sign == "-" else value, "DecimalExponent")
        value *= Fraction(10) ** exponent
        fmt = "DecimalExponent"
    else:
        raise QuantityError("unable to parse quantity's suffix")
    if sign == "-":
        value = -value
    return Quantity(round_up(value, _NANO), fmt)


def parse_quantity_or_none(text: object) -> Quantity | None:
    """The quantity, or None if ``text`` is not one (validation reports those)."""
    try:
        return parse_quantity(str(text))
    except QuantityError:
        return None


def round_up(value: Fraction, unit: Fraction) -> Fraction:
    """Round away from zero to a multiple of ``unit`` (``inf.RoundUp``)."""
    steps = value / unit
    return (math.ceil(steps) if steps >= 0 else math.floor(steps)) * unit


@functools.lru_cache(maxsize=4096)
def stored_resource_text(text: str) -> str:
    """How Kubernetes stores a container request or limit: rounded up to 1m, canonical."""
    return canonical(round_to_milli(parse_quantity(text)))


def round_to_milli(q: Quantity) -> Quantity:
    """``SetDefaults_ResourceList``: container requests and limits are rounded up to 1m."""
    return Quantity(round_up(q.value, Fraction(1, 1000)), q.format)


def canonical(q: Quantity) -> str:
    """Kubernetes' ``Quantity.String``: the canonical text of the value in its format."""
    if q.value == 0:
        return "0"
    if q.format == "BinarySI" and abs(q.value) >= 1024 and q.value.denominator == 1:
        return _binary_text(q.value.numerator)
    return _decimal_text(q.value, exponent_form=q.format == "DecimalExponent")


def _binary_text(value: int) -> str:
    steps = 0
    while value % 1024 == 0 and steps < max(_BINARY_SUFFIX):
        value //= 1024
        steps += 1
    return f"{value}{_BINARY_SUFFIX.get(steps, '')}"


def _decimal_text(value: Fraction, *, exponent_form: bool) -> str:
    mantissa, exponent = int(value / _NANO), -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if exponent_form:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    suffix = _DECIMAL_SUFFIX.get(exponent)
    if suffix is None:  # beyond E: no SI suffix left, Kubernetes falls back to an exponent
        return f"{mantissa}e{exponent}"
    return f"{mantissa}{suffix}"
