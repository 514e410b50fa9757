"""Hypothesis settings the fuzz tests share: deterministic in CI (derandomized, no example
database written into the repo), bigger by hand with ``SETPOINT_FUZZ_EXAMPLES=N``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("SETPOINT_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int) -> settings:
    """``examples`` per property in CI; ``SETPOINT_FUZZ_EXAMPLES`` times that by hand."""
    return settings(
        max_examples=examples * max(1, EXAMPLES),
        derandomize=not EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
