"""Private files: what a data dir holds is for the user who runs setpoint, and nobody else.

The server's data dir holds the CA key, the tokens and the database with every Secret in
the clear; the agent's holds each pod's secret volumes, the env of its containers and logs
that may print them. Another local user must not read a byte of any of it, whatever the
umask and whatever an older version (or an operator's ``cp``) left behind. So every
directory is 0700 and every file 0600 — created so from the first byte, and tightened when
found looser — and group access is left out too, because a non-root user's group is often
shared. Inside a pod's volumes Kubernetes' own modes apply (the pod's processes must use
them); the private directories above them are what keeps other users out, as on a kubelet's
node.

Tightening only ever takes permissions away, and touches nothing that is already tight, so
a data dir on a read-only file system is no obstacle until something really has to change.
The supervisor keeps its own few lines for the same rule (its module imports nothing of
setpoint's; see :mod:`setpoint.agent.supervisor`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def tighten(path: Path, mode: int) -> None:
    """Take away from ``path`` whatever ``mode`` does not grant (nothing if already so)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        os.chmod(path, current & mode)


def private_dir(path: Path) -> Path:
    """Make ``path`` a directory only its owner may use: create it, and every missing parent
    with it, each 0700, or tighten it if it exists. Parents that exist are left as they are:
    they are not ours (``/var/lib``, a home directory)."""
    missing = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by someone else
            directory.mkdir(PRIVATE_DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    for directory in (*missing, path):
        tighten(directory, PRIVATE_DIR_MODE)  # also what the umask did to mkdir's mode
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


def create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600 if there is none (so that a program that opens
    it, SQLite for one, uses it rather than creating it with its own mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600 from the first byte, durably: the
    file and its directory are on disk before this returns."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable. A file system that cannot
    sync a directory (``EINVAL``) has nothing more to offer."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)
