"""Merging what a client sends into what is stored: server-side apply and the PATCH formats.

Everything here works on plain JSON dicts and knows nothing of HTTP; the storage layer and the
handlers call it. One module per concept:

* :mod:`~setpoint.api.merge.fieldpath`: field paths and sets of them, the vocabulary of
  ownership, and their ``FieldsV1`` encoding (``sigs.k8s.io/structured-merge-diff``'s
  ``fieldpath``);
* :mod:`~setpoint.api.merge.goview`: what Go makes of a value: its ``encoding/json`` text and
  the view of an object with Go's zero-valued structs, which ownership is decided on;
* :mod:`~setpoint.api.merge.typed`: Kubernetes' schema compiled into structured-merge-diff
  types, and the walks that need only a type: the fields an object sets, how two differ;
* :mod:`~setpoint.api.merge.managedfields`: the ``metadata.managedFields`` entries, decoded,
  encoded and capped (``k8s.io/apimachinery/pkg/util/managedfields``);
* :mod:`~setpoint.api.merge.conflicts`: apply conflicts and the 409 that words them;
* :mod:`~setpoint.api.merge.merge`: server-side apply and update tracking, merging and removing
  fields by ownership (:func:`~setpoint.api.merge.merge.apply`,
  :func:`~setpoint.api.merge.merge.track_update`);
* :mod:`~setpoint.api.merge.strategic`: strategic merge patch
  (``k8s.io/apimachinery/pkg/util/strategicpatch``);
* :mod:`~setpoint.api.merge.jsonpatch`: JSON patch and JSON merge patch
  (``evanphx/json-patch``).

Imports run one way: goview needs none of the others; fieldpath needs goview; typed,
managedfields and conflicts build on those; merge uses them all. The patch formats stand
apart (strategic raises jsonpatch's :class:`~setpoint.api.merge.jsonpatch.PatchError`).
Computing patches is a client's business: the tests keep those computations as their oracle
(``tests/merge_oracle.py``).
"""
