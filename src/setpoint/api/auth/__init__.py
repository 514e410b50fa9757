"""Who is asking and what they may do: the API server's authentication, authorization and
the request attributes both work on.

``user`` holds the identity every authenticator produces (kube-apiserver's ``user.Info``),
``attributes`` derives from a request what it does (``RequestInfoFactory``: verb, resource,
subresource, namespace, name, or a non-resource path), and ``authorizer`` asks the chain of
authorizers whether that identity may do it, answering a Kubernetes 403 when not.
"""
