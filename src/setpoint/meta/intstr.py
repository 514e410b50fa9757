"""``IntOrString`` values that count pods: ``3`` or ``"25%"``.

A Deployment's ``maxSurge``/``maxUnavailable`` and a PodDisruptionBudget's
``minAvailable``/``maxUnavailable`` are either a number of pods or a percentage of some
total. :func:`scaled_value` resolves one to pods, as apimachinery's
``intstr.GetScaledValueFromIntOrPercent``; :func:`is_percent` says which form a value has
(``intstr.Type == intstr.String``).
"""

from __future__ import annotations

IntOrPercent = int | str


def is_percent(value: IntOrPercent | None) -> bool:
    """The value is the string form (``"25%"``), not a plain number."""
    return isinstance(value, str)


def scaled_value(value: IntOrPercent | None, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded up or
    down; ValueError for a string that is neither."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: {text!r}") from None
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {text!r}") from None
    numerator = percent * total
    return -(-numerator // 100) if round_up else numerator // 100
