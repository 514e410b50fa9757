"""What the API server tells clients about itself: discovery and OpenAPI documents.

Clients learn a server before they use it. kubectl and client-go read the discovery documents
(``/api``, ``/apis`` and one per group-version, or the aggregated ``apidiscovery.k8s.io/v2``
list) to know which resources exist, their short names, verbs and scope, and the OpenAPI
documents (``/openapi/v2``, ``/openapi/v3``) for client-side validation, client-side apply and
``kubectl explain``. All of them are built from the registry, again whenever a kind is
added or removed while serving, and served as bytes:

* :mod:`~setpoint.api.discovery.discovery`: the discovery documents and the version;
* :mod:`~setpoint.api.discovery.openapi`: the OpenAPI v2 and v3 documents, from the official
  Kubernetes schema;
* :mod:`~setpoint.api.discovery.openapi_pb`: the v2 document in gnostic's protobuf encoding,
  which client-go's discovery client asks for.
"""
