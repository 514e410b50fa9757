"""A user of its own for each pod that names none: the agent's default ``runAsUser``.

setpoint's containers are host processes in the node's PID namespace. Processes of one uid
may look into each other (``/proc/<pid>/root``, ``/proc/<pid>/environ``: the kernel's
ptrace access check lets the same user in), so a default user shared by every pod, or with
the node's own daemons (65534 ``nobody`` runs some), would let one pod read another's
Secrets. So, unless the node sets one fixed default (``--default-run-as-user=N``), each pod
gets a uid of its own, from ``FIRST_UID`` up (far above the node's users, systemd's dynamic
users and the usual ``/etc/subuid`` ranges), with a group of the same number: the idea of
OpenShift's per-namespace uid ranges, per pod. All containers of a pod share it, as they
would share an image's user, so they share their emptyDir files.

The choice starts from a hash of the pod's uid and probes past uids other pods on the node
hold; it is kept in ``<pod dir>/run-as-user``, so an agent restart gives a pod the user it
had, and released with the pod's sandbox.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from setpoint.meta.privatefiles import private_dir

FIRST_UID = 2_000_000_000
SPAN = 1 << 24  # uids FIRST_UID .. FIRST_UID + SPAN - 1, all below 2**31 - 1
FILE_NAME = "run-as-user"


class PodUsers:
    """The per-pod default users of the pods under ``root`` (``<data-dir>/pods``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._users: dict[str, int] | None = None  # pod uid -> its user; loaded on first use

    def _load(self) -> dict[str, int]:
        if self._users is None:
            self._users = {}
            with contextlib.suppress(FileNotFoundError):
                for path in self.root.glob(f"*/{FILE_NAME}"):
                    with contextlib.suppress(OSError, ValueError):
                        self._users[path.parent.name] = int(path.read_text())
        return self._users

    def get(self, pod_uid: str) -> int:
        """The pod's user, chosen (and written in its directory) the first time it is
        asked for."""
        users = self._load()
        if pod_uid in users:
            return users[pod_uid]
        taken = set(users.values())
        start = int.from_bytes(hashlib.sha256(pod_uid.encode()).digest()[:8], "big") % SPAN
        offset = next(i for i in range(SPAN) if FIRST_UID + (start + i) % SPAN not in taken)
        uid = FIRST_UID + (start + offset) % SPAN
        path = private_dir(self.root / pod_uid) / FILE_NAME
        temporary = path.with_name(FILE_NAME + ".tmp")
        temporary.write_text(f"{uid}\n")
        temporary.replace(path)
        users[pod_uid] = uid
        return uid

    def release(self, pod_uid: str) -> None:
        self._load().pop(pod_uid, None)
