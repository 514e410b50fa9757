"""A user of its own for each namespace's pods that name none: the agent's default
``runAsUser``.

setpoint's containers are host processes in the node's PID namespace. Processes of one uid
may look into each other (``/proc/<pid>/root``, ``/proc/<pid>/environ``: the kernel's
ptrace access check lets the same user in), so a default user shared by every pod, or with
the node's own daemons (65534 ``nobody`` runs some), would let a pod read the Secrets of
pods in other namespaces. So, unless the node sets one fixed default
(``--default-run-as-user=N``), the pods of each namespace run as a uid of that namespace's
own, with a group of the same number: OpenShift's model (a uid range per namespace), with
one uid per namespace. The namespace is Kubernetes' boundary of trust already (any pod of
it may mount any of its Secrets), and a uid that stays the same for every pod of the
namespace, on every node and across agent restarts, lets the pod that replaces another (a
StatefulSet's ``web-0``) write the files its predecessor left in a persistent volume.

The uid is a hash of the namespace's name into ``FIRST_UID`` .. ``FIRST_UID + SPAN - 1``:
far above the node's users, systemd's dynamic users and the usual ``/etc/subuid`` ranges,
and the same on every node without any coordination. Two namespaces share a uid only if
their names collide in 2**24 values.
"""

from __future__ import annotations

import hashlib

FIRST_UID = 2_000_000_000
SPAN = 1 << 24  # uids FIRST_UID .. FIRST_UID + SPAN - 1, all below 2**31 - 1


def namespace_user(namespace: str) -> int:
    """The default uid (and gid) of the pods of ``namespace``."""
    digest = hashlib.sha256(namespace.encode()).digest()
    return FIRST_UID + int.from_bytes(digest[:8], "big") % SPAN
