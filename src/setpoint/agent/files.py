"""Who may read what the node agent keeps on disk.

Everything under the agent's data dir is private to the user the agent and its supervisor
run as (root, normally): its directories are mode 0700 and the files they write 0600. That
is where a pod's secrets end up on the node: secret and projected volumes, the env of each
container in the supervisor's spec files, container logs that may print them. Another local
user must not be able to read a byte of it, whatever the umask. The kubelet keeps
``/var/lib/kubelet`` and its pod directories at 0750 with group root; setpoint leaves the
group out too, because a non-root agent's group is often shared with other users.

:func:`private_dir` is how the agent makes or adopts a directory: created if missing, every
missing parent with it, and tightened with ``chmod`` when it exists, because ``mkdir``'s mode
passes through the umask and a data dir left by an older setpoint (or made by hand) may be
0755. The agent tightens its data dir when it starts and each directory below when it uses
it. (The supervisor does the same for its own files with its own few lines: its module
imports nothing of setpoint's, see :mod:`setpoint.agent.supervisor`.)

Inside a volume, Kubernetes' modes apply, because the pod's processes must use the files:
an ``emptyDir`` is 0777, and the files of configMap, secret, downwardAPI and projected
volumes have their ``items[].mode`` or ``defaultMode`` (0644 unless set), in directories
0755 (see :mod:`setpoint.agent.volumes`). The private directories above a volume are what
keeps other users out, as on a kubelet's node. The tmpfs of a secret or projected volume is
mounted 0755: the kubelet's is 1777 (an ``emptyDir`` with ``medium: Memory``), but nobody
needs to write into a secret volume.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Make ``path`` a directory only its owner may use: create it (and every missing
    parent, each private too) or tighten it if it exists. Parents that exist are left as
    they are: they are not ours (``/var/lib``, a home directory)."""
    missing = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by someone else
            directory.mkdir(PRIVATE_DIR_MODE)
        os.chmod(directory, PRIVATE_DIR_MODE)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open`` for a file only its owner may read, also if it existed with a looser
    mode (``O_CREAT``'s mode applies only to a new file)."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd
