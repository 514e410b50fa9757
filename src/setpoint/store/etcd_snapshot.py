"""etcd snapshot files: saving one from a running cluster, and reading one back.

**Save** streams etcd's Maintenance.Snapshot (what ``etcdctl snapshot save`` does): the
member's bbolt database, followed by the sha256 of those bytes. It is written to a private
temporary file beside the target, its hash checked as ``etcdctl snapshot restore`` checks it
(a file whose size is 32 bytes past a multiple of 512 ends with the sha256 of the rest),
its contents read, then fsync'd and renamed into place, so a snapshot file that exists is a
whole one.

**Read** checks the hash again and reads the keys out of the database without etcd: a
snapshot is a bbolt file (pages of a B+tree of buckets, ``go.etcd.io/bbolt``'s layout), whose
``key`` bucket maps each revision (8 bytes main, ``_``, 8 bytes sub, ``t`` if a deletion) to
an ``mvccpb.KeyValue``. Replaying it in revision order gives the live keys and the values
they had when the snapshot was taken; ``setpoint datastore snapshot restore`` writes those
into a cluster (:mod:`.etcd_load`), so no etcd tool is needed, and the same file restores into
the cluster it came from or into a new one.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aetcd.rpc import kv_pb2

from setpoint.meta.privatefiles import create_private_file, fsync_dir
from setpoint.store.etcd import EtcdStore
from setpoint.store.interface import KeyValue
from setpoint.store.snapshot import SnapshotError, SnapshotInfo

HASH_SIZE = 32  # sha256, appended by etcd to the database it streams
_PAGE = struct.Struct("<QHHI")  # id, flags, count, overflow
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, child page
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_META = struct.Struct("<IIIIQQQQQ")  # magic, version, page size, flags, root, seq, freelist,
#                                      high page, txid (then its FNV-64a checksum)
_BUCKET = struct.Struct("<QQ")  # root page (0: inline), sequence
_MAGIC = 0xED0CDAED
_BRANCH, _LEAF = 0x01, 0x02
_BUCKET_LEAF = 0x01
_REVISION = struct.Struct(">Q")


@dataclass(frozen=True)
class EtcdSnapshot:
    """What an etcd snapshot holds: its revision and its live keys, in key order."""

    revision: int
    keys: list[KeyValue]


async def save(store: EtcdStore, target: Path) -> SnapshotInfo:
    """Stream the cluster's snapshot into ``target``; what it holds."""
    tmp = target.with_name(f".{target.name}.part")
    tmp.unlink(missing_ok=True)
    create_private_file(tmp)
    try:
        with open(tmp, "wb") as out:
            async for chunk in store.snapshot():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        snapshot = read(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        raise SnapshotError(f"cannot write {target}: {exc.strerror}", path=str(target)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return SnapshotInfo(target, snapshot.revision, len(snapshot.keys), target.stat().st_size)


def read(path: Path) -> EtcdSnapshot:
    """Check the snapshot at ``path`` (its hash, its database) and read its live keys."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size % 512 != HASH_SIZE:
                raise SnapshotError(
                    f"{path} is not an etcd snapshot (no sha256 after a database)", path=str(path)
                )
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                db = memoryview(data)[: size - HASH_SIZE]
                try:
                    if hashlib.sha256(db).digest() != data[size - HASH_SIZE :]:
                        raise SnapshotError(
                            f"{path} is corrupt: its sha256 does not match its contents",
                            path=str(path),
                        )
                    return _replay(_Bolt(db, path))
                finally:
                    db.release()
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc


class _Bolt:
    """Just enough of a read-only bbolt database to walk its buckets."""

    def __init__(self, data: memoryview, path: Path) -> None:
        self.data = data
        self.path = path
        metas = [self._meta(offset) for offset in (0, self._page_size())]
        valid = [meta for meta in metas if meta is not None]
        if not valid:
            raise self.corrupt("no valid meta page")
        self.page_size, self.root = max(valid)[1:]

    def corrupt(self, why: str) -> SnapshotError:
        return SnapshotError(f"{self.path} is not a readable etcd snapshot: {why}")

    def _page_size(self) -> int:
        if len(self.data) < _PAGE.size + _META.size:
            raise self.corrupt("too short")
        return _META.unpack_from(self.data, _PAGE.size)[2] or 4096

    def _meta(self, offset: int) -> tuple[int, int, int] | None:
        """(txid, page size, root bucket page) of the meta page at ``offset``, if valid."""
        start = offset + _PAGE.size
        if start + _META.size + 8 > len(self.data):
            return None
        magic, _, page_size, _, root, _, _, _, txid = _META.unpack_from(self.data, start)
        (checksum,) = struct.unpack_from("<Q", self.data, start + _META.size)
        if magic != _MAGIC or checksum != _fnv64a(self.data[start : start + _META.size]):
            return None
        return txid, page_size, root

    def bucket(self, name: bytes) -> Iterator[tuple[bytes, memoryview]]:
        """The (key, value) pairs of the top-level bucket ``name``, in key order."""
        for key, value, flags in self._entries(*self._page(self.root)):
            if key == name and flags & _BUCKET_LEAF:
                root, _ = _BUCKET.unpack_from(value)
                # an inline bucket's page follows its header in the value
                where = self._page(root) if root else (value, _BUCKET.size)
                for entry, entry_value, _ in self._entries(*where):
                    yield entry, entry_value
                return

    def _page(self, page: int) -> tuple[memoryview, int]:
        offset = page * self.page_size
        if offset + _PAGE.size > len(self.data):
            raise self.corrupt(f"page {page} is past the end")
        return self.data, offset

    def _entries(self, data: memoryview, offset: int) -> Iterator[tuple[bytes, memoryview, int]]:
        _, flags, count, _ = _PAGE.unpack_from(data, offset)
        for i in range(count):
            element = offset + _PAGE.size + i * 16
            if flags & _BRANCH:
                _, _, child = _BRANCH_ELEMENT.unpack_from(data, element)
                yield from self._entries(*self._page(child))
            elif flags & _LEAF:
                kind, pos, ksize, vsize = _LEAF_ELEMENT.unpack_from(data, element)
                start = element + pos
                key = bytes(data[start : start + ksize])
                yield key, data[start + ksize : start + ksize + vsize], kind
            else:
                raise self.corrupt(f"unexpected page flags {flags:#x} at offset {offset}")


def _replay(bolt: _Bolt) -> EtcdSnapshot:
    live: dict[bytes, KeyValue] = {}
    revision = 0
    for raw, value in bolt.bucket(b"key"):
        if len(raw) < 17:
            raise bolt.corrupt(f"revision key {raw!r}")
        revision = max(revision, _REVISION.unpack_from(raw)[0])
        kv = kv_pb2.KeyValue.FromString(bytes(value))
        if raw[17:18] == b"t":
            live.pop(kv.key, None)
        else:
            live[kv.key] = KeyValue(
                kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision
            )
    # a compaction can leave the last revision with no key (a deletion, compacted away)
    for name, value in bolt.bucket(b"meta"):
        if name in (b"scheduledCompactRev", b"finishedCompactRev") and len(value) >= 8:
            revision = max(revision, _REVISION.unpack_from(value)[0])
    return EtcdSnapshot(revision, [live[key] for key in sorted(live)])


def _fnv64a(data: memoryview) -> int:
    value = 0xCBF29CE484222325
    for byte in bytes(data):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value
