"""JSON patch and JSON merge patch, applied the way the Kubernetes API server applies them.

This module owns the two "plain JSON" PATCH formats the API server accepts:

* ``application/json-patch+json`` (RFC 6902): :func:`apply_json_patch` runs a list of
  ``add``/``remove``/``replace``/``move``/``copy``/``test`` operations against a document,
  addressing values with RFC 6901 JSON pointers (``~0``/``~1`` escaping, ``-`` for "append").
* ``application/merge-patch+json`` (RFC 7386): :func:`apply_merge_patch` merges an object into
  the document (``null`` deletes a member, objects merge recursively, anything else replaces),
  and :func:`require_object` rejects a PATCH body that is not an object the way the API
  server does.

Strategic merge patch and server-side apply live elsewhere; they need per-field schema.
Computing the merge patch between two objects (evanphx's ``CreateMergePatch``) is a client's
job, done by the tests' oracle (``tests/merge_oracle.py``) with
:func:`~setpoint.meta.jsonvalue.deep_copy` and :func:`~setpoint.meta.jsonvalue.json_equal`, the
copy and the equality this module uses too.

Kubernetes compatibility
------------------------
The apiserver (``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``) hands both
formats to ``gopkg.in/evanphx/json-patch.v4``. What a client sees, and what this module
reproduces through :class:`PatchError`, is:

* **400 BadRequest** when the body cannot be decoded as a patch at all. With the default
  ``fieldValidation`` (Warn) the apiserver first decodes a JSON patch strictly into
  ``[]jsonPatchOp{op, path, from string; value any}``, so a body that is not an array, an
  element that is not an object, or an ``op``/``path``/``from`` that is not a string is
  rejected here with ``error decoding patch: json: cannot unmarshal ...``. A merge patch body
  that is not an object fails the same way (``map[string]interface {}``); a ``null`` merge
  patch is evanphx's ``Invalid JSON Patch``.
* **413 RequestEntityTooLarge** for a JSON patch with more than 10000 operations.
* **422 Invalid** for everything that goes wrong while *applying* a decoded JSON patch. The
  apiserver wraps every error from ``Patch.Apply`` in ``NewGenericServerResponse(422, ...)``;
  it never answers 500 for them, and neither do we (a 500 would tell clients the server is
  broken when it is the patch that is wrong). This includes cases one might expect to be
  "malformed" rather than "unprocessable": an unknown or missing ``op`` (``Unexpected kind:
  bogus``), a missing ``path`` or ``from``. Those are only discovered by ``Apply``, so
  Kubernetes answers 422 for them, and so do we. On the wire that 422 carries the fixed
  message "the server rejected our request due to an error in our request" and empty details
  (``NewGenericServerResponse`` drops the library's text); :attr:`PatchError.status_message`
  is that wire message while :attr:`PatchError.message` keeps evanphx's detailed text for logs
  and tests.

evanphx behaviours deliberately reproduced, because clients observe them: ``add``/``replace``
without a ``value`` store ``null``; ``replace`` of a missing *object member* adds it (only a
missing array index fails); ``test`` and ``copy`` treat a missing object member as ``null``;
negative array indices count from the end (``/items/-1`` is the last item); the root can be
``replace``-d (with an object or array) and ``test``-ed, but not added to, removed or moved;
``copy`` operations may grow the document by at most :data:`MAX_COPY_BYTES` in total (the
apiserver arms ``AccumulatedCopySizeLimit`` with ``JSONPatchMaxCopyBytes``, 3 MiB). A JSON
patch body of ``null`` decodes to "no operations" and leaves the document unchanged.

Deliberate deviations, all stricter or saner than the Go library: array indices must be
canonical RFC 6901 numbers (no leading zeros, no ``+``; evanphx uses ``strconv.Atoi``); a
pointer must be empty or start with ``/`` (evanphx reads ``a/b`` as ``/b``); ``test`` compares
numbers by value (evanphx compares their JSON text, so ``1`` differs from ``1.0``); merge
patches follow RFC 7386 exactly and keep ``null`` inside arrays (evanphx strips them in some
positions). Unknown members of an operation are ignored (the Warn-mode behaviour).

Copy semantics
--------------
Neither input is ever mutated. Results are built by path copying: only the containers on the
way to a changed value are copied; every untouched subtree of the result is *shared* with the
input document (or with the patch, for values the patch inserted). Treat results as immutable,
or deep-copy them before mutating in place.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from setpoint.meta.jsonvalue import deep_copy, json_equal, json_type_name

__all__ = [
    "JSON_PATCH",
    "MAX_COPY_BYTES",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "require_object",
]

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH_YAML: Final = "application/apply-patch+yaml"
APPLY_PATCH_CBOR: Final = "application/apply-patch+cbor"

#: patch.go ``maxJSONPatchOperations``.
MAX_JSON_PATCH_OPERATIONS: Final = 10000
#: The apiserver's default ``JSONPatchMaxCopyBytes`` (3 MiB), armed as evanphx's
#: ``AccumulatedCopySizeLimit``: the total size ``copy`` operations may add to a document.
MAX_COPY_BYTES: Final = 3 * 1024 * 1024

#: What ``NewGenericServerResponse(422, ...)`` puts in ``Status.message``.
_REJECTED: Final = "the server rejected our request due to an error in our request"
_REASONS: Final = {400: "BadRequest", 413: "RequestEntityTooLarge", 422: "Invalid"}

_MAP_TYPE: Final = "map[string]interface {}"


class PatchError(ValueError):
    """A PATCH body that is malformed (400), too large (413) or cannot be applied (422).

    ``message`` is the detailed, evanphx-style explanation. ``code``, ``reason`` and
    ``status_message`` are what the Kubernetes API server puts in the ``Status`` it answers
    with; an HTTP layer that wants to look exactly like Kubernetes should send those.
    """

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = _REASONS.get(code, "BadRequest")
        if code == 422:
            self.status_message = _REJECTED
        elif code == 413:
            self.status_message = f"Request entity too large: {message}"
        else:
            self.status_message = message

    def __repr__(self) -> str:
        return f"PatchError({self.message!r}, code={self.code})"


class _OpError(Exception):
    """A failed operation; becomes a 422 :class:`PatchError` with this message."""


_MISSING: Final = "missing value"
_INVALID_INDEX: Final = "invalid index referenced"
_INDEX_RE: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


# --------------------------------------------------------------------------- JSON helpers


def _encoded_size(value: Any) -> int:
    """Bytes of the compact JSON encoding (what evanphx adds to the copy budget)."""
    if value is None:
        return 0  # evanphx copies a missing/null source as a nil node of size 0
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------- JSON pointers


def _unescape(token: str) -> str:
    # RFC 6901 section 4: "~1" first, then "~0", so "~01" decodes to "~1".
    if "~" not in token:
        return token
    return token.replace("~1", "/").replace("~0", "~")


def _atoi(token: str) -> int:
    """Parse an array index like ``strconv.Atoi``, but only in RFC 6901's canonical form."""
    if not _INDEX_RE.fullmatch(token):
        raise _OpError(f"strconv.Atoi: parsing {json.dumps(token)}: invalid syntax")
    digits = token.lstrip("+-")
    if token[0] == "+" or token == "-0" or (len(digits) > 1 and digits[0] == "0"):
        raise _OpError(f"invalid array index {json.dumps(token)}: not a canonical number")
    if len(digits) > 19:
        raise _OpError(f"strconv.Atoi: parsing {json.dumps(token)}: value out of range")
    idx = int(token)
    if not _INT64_MIN <= idx <= _INT64_MAX:
        raise _OpError(f"strconv.Atoi: parsing {json.dumps(token)}: value out of range")
    return idx


def _invalid_index(idx: int) -> _OpError:
    return _OpError(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")


def _existing_index(ary: list[Any], token: str) -> int:
    """Resolve ``token`` to an existing position of ``ary`` (negative counts from the end)."""
    idx = _atoi(token)
    size = len(ary)
    if idx < 0:
        if idx < -size:
            raise _invalid_index(idx)
        idx += size
    if idx >= size:
        raise _invalid_index(idx)
    return idx


# Container primitives, mirroring evanphx's partialDoc / partialArray methods.


def _get(container: dict[str, Any] | list[Any], key: str) -> Any:
    """The value at ``key``; a missing object member reads as ``None`` (evanphx's nil)."""
    if isinstance(container, dict):
        return container.get(key)
    return container[_existing_index(container, key)]


def _set(container: dict[str, Any] | list[Any], key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
    else:
        container[_existing_index(container, key)] = value


def _add(container: dict[str, Any] | list[Any], key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    try:
        idx = _atoi(key)
    except _OpError as err:
        raise _OpError(f"value was not a proper array index: '{key}': {err}") from None
    size = len(container) + 1
    if idx >= size:
        raise _invalid_index(idx)
    if idx < 0:
        if idx < -size:
            raise _invalid_index(idx)
        idx += size
    container.insert(idx, value)


def _remove(container: dict[str, Any] | list[Any], key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _OpError(f"Unable to remove nonexistent key: {key}: {_MISSING}")
        del container[key]
    else:
        del container[_existing_index(container, key)]


# --------------------------------------------------------------------------- JSON patch


class _Document:
    """The document being patched, copied on write.

    ``_owned`` holds the containers this application created (copies of input containers,
    copies of copied values). Those may be mutated in place; any other container belongs to
    an input and is shallow-copied, and re-linked into its (owned) parent, before a write.
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        self._owned: dict[int, Any] = {}

    def _own(self, container: Any) -> Any:
        if self._owned.get(id(container)) is container:
            return container
        mine = dict(container) if isinstance(container, dict) else list(container)
        self._owned[id(mine)] = mine
        return mine

    def fresh_copy(self, value: Any) -> Any:
        """A deep copy of ``value`` whose containers are all owned."""
        if isinstance(value, dict):
            mine: Any = {key: self.fresh_copy(item) for key, item in value.items()}
        elif isinstance(value, list):
            mine = [self.fresh_copy(item) for item in value]
        else:
            return value
        self._owned[id(mine)] = mine
        return mine

    def locate(self, path: str, *, write: bool) -> tuple[dict[str, Any] | list[Any], str] | None:
        """The container holding ``path``'s last token, and that token, unescaped.

        ``None`` when the pointer has no parent (the root, or no leading ``/``) or an
        intermediate value is missing, ``null``, a scalar, or an array index that does not
        resolve. With ``write`` the containers on the way are made owned, so the caller may
        mutate the returned container.
        """
        if not path.startswith("/"):
            return None
        tokens = path.split("/")
        current = self.root
        if write:
            current = self.root = self._own(current)
        for raw in tokens[1:-1]:
            part = _unescape(raw)
            if isinstance(current, dict):
                child = current.get(part)
                if not isinstance(child, dict | list):
                    return None
                if write:
                    child = current[part] = self._own(child)
            else:
                try:
                    idx = _existing_index(current, part)
                except _OpError:
                    return None
                child = current[idx]
                if not isinstance(child, dict | list):
                    return None
                if write:
                    child = current[idx] = self._own(child)
            current = child
        return current, _unescape(tokens[-1])


def _decode_json_patch(patch: Any) -> list[dict[str, Any] | None]:
    """Check the body the way the apiserver's strict decode into ``[]jsonPatchOp`` does."""
    prefix = "error decoding patch: json: cannot unmarshal"
    if patch is None:
        return []  # Go decodes `null` into a nil slice: a patch with no operations
    if not isinstance(patch, list):
        raise PatchError(
            f"{prefix} {json_type_name(patch)} into Go value of type []handlers.jsonPatchOp", 400
        )
    for op in patch:
        if op is None:
            continue  # decodes to a zero jsonPatchOp; Apply then rejects its kind
        if not isinstance(op, dict):
            raise PatchError(
                f"{prefix} {json_type_name(op)} into Go value of type handlers.jsonPatchOp", 400
            )
        for field, value in op.items():
            if field in ("op", "path", "from") and value is not None and not isinstance(value, str):
                raise PatchError(
                    f"{prefix} {json_type_name(value)} into Go struct field jsonPatchOp.{field} "
                    "of type string",
                    400,
                )
    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(patch)}",
            413,
        )
    return patch


class _JSONPatch:
    def __init__(self, doc: _Document) -> None:
        self.doc = doc
        self.copied = 0

    def apply(self, op: dict[str, Any]) -> None:
        kind = op.get("op")
        handler = {
            "add": self.add,
            "remove": self.remove,
            "replace": self.replace,
            "move": self.move,
            "test": self.test,
            "copy": self.copy,
        }.get(kind if isinstance(kind, str) else "")
        if handler is None:
            raise _OpError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
        handler(op)

    def add(self, op: dict[str, Any]) -> None:
        path = op.get("path")
        if path is None:
            raise _OpError(f"add operation failed to decode path: {_MISSING}")
        found = self.doc.locate(path, write=True)
        if found is None:
            raise _OpError(
                f'add operation does not apply: doc is missing path: "{path}": {_MISSING}'
            )
        try:
            _add(*found, op.get("value"))
        except _OpError as err:
            raise _OpError(f"error in add for path: '{path}': {err}") from None

    def remove(self, op: dict[str, Any]) -> None:
        path = op.get("path")
        if path is None:
            raise _OpError(f"remove operation failed to decode path: {_MISSING}")
        found = self.doc.locate(path, write=True)
        if found is None:
            raise _OpError(
                f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}'
            )
        try:
            _remove(*found)
        except _OpError as err:
            raise _OpError(f"error in remove for path: '{path}': {err}") from None

    def replace(self, op: dict[str, Any]) -> None:
        path = op.get("path")
        if path is None:
            raise _OpError(
                f"replace operation failed to decode path: operation missing path field: {_MISSING}"
            )
        value = op.get("value")
        if path == "":
            if not isinstance(value, dict | list):
                raise _OpError("replace operation value must be object or array")
            self.doc.root = value
            return
        found = self.doc.locate(path, write=True)
        if found is None:
            raise _OpError(
                f"replace operation does not apply: doc is missing path: {path}: {_MISSING}"
            )
        container, key = found
        try:
            _get(container, key)
        except _OpError:
            raise _OpError(
                f"replace operation does not apply: doc is missing key: {path}: {_MISSING}"
            ) from None
        _set(container, key, value)

    def move(self, op: dict[str, Any]) -> None:
        source = op.get("from")
        if source is None:
            raise _OpError(
                f"move operation failed to decode from: operation, missing from field: {_MISSING}"
            )
        found = self.doc.locate(source, write=True)
        if found is None:
            raise _OpError(
                f"move operation does not apply: doc is missing from path: {source}: {_MISSING}"
            )
        container, key = found
        try:
            value = _get(container, key)
            _remove(container, key)
        except _OpError as err:
            raise _OpError(f"error in move for path: '{key}': {err}") from None
        path = op.get("path")
        if path is None:
            raise _OpError(
                f"move operation failed to decode path: operation missing path field: {_MISSING}"
            )
        found = self.doc.locate(path, write=True)
        if found is None:
            raise _OpError(
                "move operation does not apply: doc is missing destination path: "
                f"{path}: {_MISSING}"
            )
        try:
            _add(*found, value)
        except _OpError as err:
            raise _OpError(f"error in move for path: '{path}': {err}") from None

    def test(self, op: dict[str, Any]) -> None:
        path = op.get("path")
        if path is None:
            raise _OpError(
                f"test operation failed to decode path: operation missing path field: {_MISSING}"
            )
        expected = op.get("value")
        if path == "":
            if json_equal(self.doc.root, expected):
                return
            raise _OpError(f"testing value {path} failed: test failed")
        found = self.doc.locate(path, write=False)
        if found is None:
            raise _OpError(f"test operation does not apply: is missing path: {path}: {_MISSING}")
        try:
            actual = _get(*found)
        except _OpError as err:
            raise _OpError(f"error in test for path: '{path}': {err}") from None
        # A missing object member reads as null, and a missing "value" tests for null.
        if not json_equal(actual, expected):
            raise _OpError(f"testing value {path} failed: test failed")

    def copy(self, op: dict[str, Any]) -> None:
        source = op.get("from")
        if source is None:
            raise _OpError(
                f"copy operation failed to decode from: operation, missing from field: {_MISSING}"
            )
        found = self.doc.locate(source, write=False)
        if found is None:
            raise _OpError(
                f"copy operation does not apply: doc is missing from path: {source}: {_MISSING}"
            )
        try:
            value = _get(*found)
        except _OpError as err:
            raise _OpError(f"error in copy for from: '{source}': {err}") from None
        path = op.get("path")
        if path is None:
            raise _OpError(f"copy operation failed to decode path: {_MISSING}")
        target = self.doc.locate(path, write=True)
        if target is None:
            raise _OpError(
                "copy operation does not apply: doc is missing destination path: "
                f"{path}: {_MISSING}"
            )
        try:
            size = _encoded_size(value)
        except (ValueError, TypeError) as err:
            raise _OpError(f"error while performing deep copy: {err}") from None
        self.copied += size
        if self.copied > MAX_COPY_BYTES:
            raise _OpError(
                "Unable to complete the copy, the accumulated size increase of copy is "
                f"{self.copied}, exceeding the limit {MAX_COPY_BYTES}"
            )
        try:
            _add(*target, self.doc.fresh_copy(value))
        except _OpError as err:
            raise _OpError(f"error while adding value during copy: {err}") from None


def apply_json_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 6902 JSON patch (already JSON-decoded) to ``doc``; return the new document.

    Operations run in order and the patch is atomic: the first failing operation raises
    :class:`PatchError` and nothing is returned. ``doc`` and ``patch`` are not mutated; the
    result shares untouched subtrees with them (see the module docstring).
    """
    ops = _decode_json_patch(patch)
    if not isinstance(doc, dict | list):
        raise PatchError(
            f"json: cannot unmarshal {json_type_name(doc)} "
            "into Go value of type jsonpatch.partialDoc"
        )
    state = _Document(doc)
    applier = _JSONPatch(state)
    try:
        state.root = state._own(doc)  # the result is never the input object itself
        for op in ops:
            applier.apply(op or {})
    except _OpError as err:
        raise PatchError(str(err), 422) from None
    except RecursionError:
        raise PatchError("the document or patch is nested too deeply", 422) from None
    return state.root


# --------------------------------------------------------------------------- merge patch


def _merge(target: Any, patch: Any) -> Any:
    # RFC 7386 section 2, MergePatch(Target, Patch), copying instead of mutating Target.
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (already JSON-decoded) to ``doc``.

    Members whose patch value is ``null`` are removed, object values merge recursively, any
    other value (arrays included) replaces the target's. A patch that is not an object
    replaces the whole document (RFC 7386); the API server does not allow that, so check
    the body with :func:`require_object` first. Inputs are not mutated; the result shares
    untouched subtrees with them.
    """
    try:
        if not isinstance(patch, dict):
            return deep_copy(patch)
        return _merge(doc, patch)
    except RecursionError:
        raise PatchError("the document or patch is nested too deeply", 422) from None


def require_object(patch: Any, patch_type: str) -> dict[str, Any]:
    """Return ``patch`` if it is a JSON object, else raise the API server's 400 for it.

    ``patch_type`` is the request's Content-Type (parameters are ignored); it selects the
    message the apiserver's decoder for that patch type produces. A ``null`` body is
    rejected with evanphx's ``Invalid JSON Patch`` (Kubernetes would treat a ``null``
    strategic merge patch as a no-op; we do not accept it).
    """
    if isinstance(patch, dict):
        return patch
    if patch is None:
        raise PatchError("Invalid JSON Patch", 400)
    media_type = patch_type.split(";", 1)[0].strip().lower()
    cannot = f"json: cannot unmarshal {json_type_name(patch)} into Go value of type {_MAP_TYPE}"
    if media_type == STRATEGIC_MERGE_PATCH:
        message = cannot
    elif media_type in (APPLY_PATCH_YAML, APPLY_PATCH_CBOR):
        message = f"error decoding YAML: error unmarshaling JSON: while decoding JSON: {cannot}"
    else:
        message = f"error decoding patch: {cannot}"
    raise PatchError(message, 400)
