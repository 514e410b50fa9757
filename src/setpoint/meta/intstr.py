"""``IntOrString`` values that count pods: ``5`` or ``"25%"`` of some total.

Rolling updates bound their pace with such values (a Deployment's and a DaemonSet's
``maxSurge`` and ``maxUnavailable``); :func:`scaled_value` resolves one against a total, as
``intstr.GetScaledValueFromIntOrPercent`` of ``k8s.io/apimachinery/pkg/util/intstr``: an int
as it is, a percentage of the total rounded up or down as the caller says.
"""

from __future__ import annotations


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded;
    ValueError for a string that is neither."""
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
    percent = int(text[:-1])
    numerator = percent * total
    return -(-numerator // 100) if round_up else numerator // 100
