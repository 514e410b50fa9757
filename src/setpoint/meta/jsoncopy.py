"""A deep copy of a JSON value (what objects from the API are) through orjson.

About five times faster than ``copy.deepcopy`` for a pod, because the walk happens in C.
Only for JSON values: dicts with string keys, lists, strings, numbers, booleans, None.
"""

from __future__ import annotations

from typing import TypeVar

import orjson

T = TypeVar("T")


def json_copy(value: T) -> T:
    """A deep copy of the JSON value ``value``."""
    copied: T = orjson.loads(orjson.dumps(value))
    return copied
