"""Values as Go prints them: one function per Go rendering, each named for it.

Kubernetes' messages and records are Go's output, and clients (``kubectl``, client libraries,
the tests' oracles) compare them as text, so setpoint writes each value exactly as the Go
function behind it would. Go has several renderings of the same value, and they differ:
``1e-7`` is ``1e-07`` to ``fmt``'s ``%v`` but ``1e-7`` to ``encoding/json``; ``"a\\x01"`` is
quoted by ``strconv.Quote`` as ``"a\\x01"`` but by ``encoding/json`` as ``"a\\u0001"``. So each
function here names the Go rendering it mirrors, by family:

* ``encoding/json`` (``json_*``): :func:`json_marshal`, :func:`json_float`.
* ``fmt`` verbs (``verb_*``) over values decoded from JSON: :func:`verb_v` (``%v``),
  :func:`verb_s` (``%s``), :func:`verb_t` (``%T``), and ``%#v`` of the few Kubernetes types
  validation messages show (``sharp_v_*``).
* ``strconv``: :func:`quote` (``Quote``, which ``%q`` uses), :func:`format_float`
  (``FormatFloat(f, 'g', -1, bitSize)``, which ``%v`` of a float uses).
* ``time``: :func:`duration_string` (``Duration.String``), :func:`time_string`
  (``Time.String``).
* Kubernetes' own: :func:`field_error_value` (how ``field.Error`` shows the rejected value),
  :func:`smd_value_string` (structured-merge-diff's ``value.ToString``).

Values decoded from JSON follow Kubernetes' decoder: integers are ``int64``, other numbers
``float64``, objects ``map[string]interface {}`` (see :func:`setpoint.meta.jsonvalue.go_kind`).
"""

from __future__ import annotations

import decimal
import json
import math
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from setpoint.meta.jsonvalue import LIST, MAP, go_kind

__all__ = [
    "duration_string",
    "field_error_value",
    "format_float",
    "json_float",
    "json_marshal",
    "quote",
    "sharp_v_int_or_string",
    "sharp_v_label_selector",
    "sharp_v_string_map",
    "sharp_v_string_slice",
    "smd_value_string",
    "time_string",
    "verb_s",
    "verb_t",
    "verb_v",
]


# =========================================================================== strconv

_QUOTE_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def quote(value: str) -> str:
    """``strconv.Quote`` (and so ``fmt``'s ``%q`` of a string): ASCII escapes, printable
    Unicode kept, other characters as ``\\x``, ``\\u`` or ``\\U`` escapes."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    out = ['"']
    for ch in value:
        esc = _QUOTE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")  # not a valid rune: Go substitutes U+FFFD
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_float(value: float, bit_size: int = 64) -> str:
    """``strconv.FormatFloat(value, 'g', -1, bit_size)``: the fewest digits that read back
    as the same float64 (or float32), in exponent form below 1e-4 and from 1e+06.
    Infinities and NaN are ``+Inf``, ``-Inf`` and ``NaN``."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if bit_size == 32:
        sign, digits, exp10 = _shortest_float32(value)
    else:
        if value == 0:
            return "-0" if math.copysign(1.0, value) < 0 else "0"
        sign, digits, exp10 = _shortest_float64(value)
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return f"{sign}0.{'0' * (-exp10 - 1)}{digits}"
    whole = digits[: exp10 + 1].ljust(exp10 + 1, "0")
    fraction = digits[exp10 + 1 :]
    return f"{sign}{whole}{'.' + fraction if fraction else ''}"


def _shortest_float64(value: float) -> tuple[str, str, int]:
    """``(sign, digits, exponent)`` of the shortest decimal that reads back as ``value``."""
    negative, digit_tuple, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    return ("-" if negative else ""), digits, len(digits) + exponent - 1


def _shortest_float32(value: float) -> tuple[str, str, int]:
    """:func:`_shortest_float64` for the float32 nearest ``value``."""
    single = struct.unpack("f", struct.pack("f", value))[0]
    for decimals in range(9):  # the fewest digits that read back as the same float32
        text = f"{single:.{decimals}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exponent_text = text.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    return sign, digits, int(exponent_text)


# =========================================================================== encoding/json


def json_float(value: float) -> str:
    """A float64 as ``encoding/json`` writes it: like ``strconv``'s ``'f'`` format, but in
    exponent form (``1e-7``, ``1e+21``, no zero padding) below 1e-6 and from 1e21."""
    if not math.isfinite(value):
        raise ValueError(f"unsupported float {value!r}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        sign = exponent[0] if exponent[:1] in "+-" else "+"
        digits = exponent.lstrip("+-").lstrip("0") or "0"
        if len(digits) < 2 and sign == "+":
            digits = digits.rjust(2, "0")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        return f"{mantissa}e{sign}{digits}"
    text = format(decimal.Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def json_marshal(value: Any) -> str:
    """``json.Marshal`` of a JSON value: compact, map keys sorted, HTML-safe (``<``, ``>``,
    ``&``, U+2028 and U+2029 as ``\\u`` escapes), floats by :func:`json_float`."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    if isinstance(value, list):
        return "[" + ",".join(json_marshal(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(json_marshal(str(k)) + ":" + json_marshal(v) for k, v in items) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


# =========================================================================== fmt verbs

_GO_TYPES: Final = {
    "null": "<nil>",
    MAP: "map[string]interface {}",
    LIST: "[]interface {}",
}


def verb_t(value: Any) -> str:
    """``fmt``'s ``%T`` of a decoded JSON value (``<nil>`` for null)."""
    kind = go_kind(value)
    return _GO_TYPES.get(kind, kind)


def verb_v(value: Any) -> str:
    """``fmt``'s ``%v`` of a decoded JSON value (maps print with sorted keys)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{verb_v(value[k])}" for k in sorted(value, key=str)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(verb_v(item) for item in value) + "]"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def verb_s(value: Any, *, nested: bool = False) -> str:
    """``fmt``'s ``%s`` of a decoded JSON value: strings as they are, other scalars flagged
    the way Go flags them (``%!s(int64=3)``); ``nested`` inside a map or slice, where a nil
    prints as ``<nil>``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>" if nested else "%!s(<nil>)"
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{verb_s(value[k], nested=True)}" for k in sorted(value, key=str))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(verb_s(item, nested=True) for item in value) + "]"
    return f"%!s({verb_t(value)}={verb_v(value)})"


def sharp_v_string_slice(values: Sequence[str] | None) -> str:
    """``%#v`` of a ``[]string`` (``[]string(nil)`` for a nil slice)."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(quote(v) for v in values) + "}"


def sharp_v_string_map(labels: Mapping[str, str] | None) -> str:
    """``%#v`` of a ``map[string]string`` (keys sorted, as Go prints maps)."""
    if labels is None:
        return "map[string]string(nil)"
    items = ", ".join(f"{quote(k)}:{quote(labels[k])}" for k in sorted(labels))
    return "map[string]string{" + items + "}"


def sharp_v_label_selector(selector: Mapping[str, Any] | None) -> str:
    """``%#v`` of a ``*metav1.LabelSelector`` (``null`` when absent)."""
    if selector is None:
        return "null"
    expressions = selector.get("matchExpressions")
    if expressions is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        rendered = (
            "[]v1.LabelSelectorRequirement{"
            + ", ".join(
                f"v1.LabelSelectorRequirement{{Key:{quote(e.get('key', ''))}, "
                f"Operator:{quote(e.get('operator', ''))}, "
                f"Values:{sharp_v_string_slice(e.get('values'))}}}"
                for e in expressions
            )
            + "}"
        )
    return (
        f"v1.LabelSelector{{MatchLabels:{sharp_v_string_map(selector.get('matchLabels'))}, "
        f"MatchExpressions:{rendered}}}"
    )


def sharp_v_int_or_string(value: int | str | None) -> str:
    """``%#v`` of an ``intstr.IntOrString``."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{quote(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value or 0}, StrVal:""}}'


# =========================================================================== time


def _fraction(value: int, precision: int) -> str:
    """Go's fmtFrac + fmtInt: value / 10**precision with trailing zeros trimmed."""
    whole, frac = divmod(value, 10**precision)
    if not precision or not frac:
        return str(whole)
    return f"{whole}." + f"{frac:0{precision}d}".rstrip("0")


def duration_string(nanos: int) -> str:
    """``time.Duration.String`` of a count of nanoseconds (``1h2m3.5s``, ``1.5µs``)."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    u = abs(nanos)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_fraction(u, 3)}µs"
        return f"{sign}{_fraction(u, 6)}ms"
    seconds, frac = divmod(u, 1_000_000_000)
    text = _fraction((seconds % 60) * 1_000_000_000 + frac, 9) + "s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def time_string(value: str | None) -> str:
    """``time.Time.String`` of an RFC 3339 timestamp, in UTC (the zero time when absent)."""
    if not value:
        return "0001-01-01 00:00:00 +0000 UTC"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return moment.strftime("%Y-%m-%d %H:%M:%S") + fraction + " +0000 UTC"


# =========================================================================== Kubernetes'


def field_error_value(value: Any) -> str:
    """The rejected value as ``field.Error`` shows it: ``%v`` of numbers and booleans,
    ``%q`` of strings, ``%#v`` of a ``map[string]string``, ``null`` for nil."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return sharp_v_string_map(value)
    return repr(value)


def smd_value_string(value: Any) -> str:
    """structured-merge-diff's ``value.ToString`` (how a field path prints a key's value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(smd_value_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={smd_value_string(v)}" for k, v in value.items())
    return str(value)
