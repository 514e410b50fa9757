"""Merging what a client sends into what is stored: server-side apply and the PATCH formats.

Everything here works on plain JSON dicts and knows nothing of HTTP; the storage layer and the
handlers call it. One module per concept:

* :mod:`~setpoint.api.merge.fieldpath`: field paths and sets of them, the vocabulary of
  ownership (``sigs.k8s.io/structured-merge-diff``'s ``fieldpath``);
* :mod:`~setpoint.api.merge.merge`: server-side apply and ``managedFields`` tracking
  (:func:`~setpoint.api.merge.merge.apply`, :func:`~setpoint.api.merge.merge.track_update`);
* :mod:`~setpoint.api.merge.strategic`: strategic merge patch
  (``k8s.io/apimachinery/pkg/util/strategicpatch``);
* :mod:`~setpoint.api.merge.jsonpatch`: JSON patch and JSON merge patch
  (``evanphx/json-patch``).
"""
