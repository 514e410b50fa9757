"""Query parameters as Kubernetes' servers read them: an integer is a number or absent.

Both HTTP servers of setpoint — the API server and the agent's kubelet endpoint — read
``limit``, ``timeoutSeconds``, ``tailLines`` and the like the same way; each turns the
:class:`QueryParamError` into its own error answer (a 400 ``Status``).
"""

from __future__ import annotations

from collections.abc import Mapping


class QueryParamError(ValueError):
    """A query parameter that is not what it must be; ``str()`` is the message for the
    client, worded as Kubernetes words it."""


def int_param(query: Mapping[str, str], name: str) -> int | None:
    """An integer query parameter: None when absent or empty."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise QueryParamError(f'invalid value "{raw}" for query parameter {name}') from None
