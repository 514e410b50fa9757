"""JSON values, as every object from the API is one: the ``Obj`` shape, and a fast deep copy.

``json_copy`` goes through orjson: about five times faster than ``copy.deepcopy`` for a pod,
because the walk happens in C. Only for JSON values: dicts with string keys, lists,
strings, numbers, booleans, None.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson

Obj = dict[str, Any]
"""A Kubernetes object in its JSON shape."""

T = TypeVar("T")


def json_copy(value: T) -> T:
    """A deep copy of the JSON value ``value``."""
    copied: T = orjson.loads(orjson.dumps(value))
    return copied
