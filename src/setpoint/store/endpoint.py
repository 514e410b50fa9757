"""Which store to open, chosen by a URL: ``--datastore-endpoint``, spelled as k3s (kine) does.

* ``sqlite:///absolute/path/state.db`` — the embedded SQLite store (:mod:`.sqlite`), the
  default: ``<data dir>/db/state.db``. Query parameters (kine's ``?_journal=WAL``) are
  accepted and ignored: the store sets its own pragmas.
* ``etcd://host:port,host:port,...`` — an etcd v3 cluster (:mod:`.etcd`), every member
  named, so the store carries on when one of them is down; ``etcds://`` for TLS, with the
  CA, client certificate and key of :class:`.etcd.EtcdTLS` (k3s's ``--datastore-cafile``,
  ``--datastore-certfile``, ``--datastore-keyfile``).

This is the one place that maps a scheme to a backend, so adding a backend is a new scheme
here plus a class that passes ``tests/unit/test_store_conformance.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from setpoint.store.interface import Store
from setpoint.store.sqlite import SQLiteStore

SQLITE = "sqlite"
ETCD_SCHEMES = ("etcd", "etcds")


class EndpointError(ValueError):
    """A datastore endpoint that names no store setpoint can open; ``str()`` says why."""


@dataclass(frozen=True)
class EtcdTLS:
    """TLS to etcd (``etcds://``), as k3s's ``--datastore-cafile/-certfile/-keyfile``: the CA
    that signed the members' certificates (default: the system's), and the client
    certificate and key etcd asks for with ``--client-cert-auth``."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    path: Path | None = None  # sqlite: the database file
    hosts: tuple[str, ...] = ()  # etcd: host:port of each member


def default_endpoint(data_dir: Path) -> str:
    """The embedded store in the data dir: ``sqlite://<data dir>/db/state.db``."""
    return f"{SQLITE}://{(data_dir / 'db' / 'state.db').resolve()}"


def parse_endpoint(text: str) -> Endpoint:
    """The store an endpoint names (EndpointError if it names none)."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme == SQLITE:
        if parts.netloc or not parts.path.startswith("/"):
            raise EndpointError(
                f"datastore endpoint {text!r}: a SQLite endpoint names an absolute path, "
                "as in sqlite:///var/lib/setpoint/db/state.db"
            )
        return Endpoint(SQLITE, path=Path(parts.path))
    if scheme in ETCD_SCHEMES:
        hosts = tuple(h for h in parts.netloc.split(",") if h)
        if not hosts:
            raise EndpointError(f"datastore endpoint {text!r} names no etcd member")
        return Endpoint(scheme, hosts=hosts)
    raise EndpointError(
        f"datastore endpoint {text!r}: unknown scheme {parts.scheme!r} "
        "(supported: sqlite:///path/to/state.db, etcd://host:port,host:port)"
    )


async def open_store(
    endpoint: str,
    *,
    expect_data: bool = False,
    reset: bool = False,
    purpose: str = "setpoint",
    etcd_tls: EtcdTLS | None = None,
) -> Store:
    """Open the store ``endpoint`` names. ``expect_data``, ``reset`` and ``purpose`` are the
    embedded store's (see :meth:`setpoint.store.sqlite.SQLiteStore.open`); etcd keeps its
    own data, so ``expect_data`` means nothing to it, and ``reset`` is refused (recovering an
    etcd cluster is etcd's own procedure)."""
    target = parse_endpoint(endpoint)
    tls_files = etcd_tls is not None and etcd_tls != EtcdTLS()
    if tls_files and target.scheme != "etcds":
        raise EndpointError(
            f"datastore endpoint {endpoint!r}: --datastore-cafile/-certfile/-keyfile are for "
            "TLS to etcd; name the members as etcds://host:port,..."
        )
    if target.scheme in ETCD_SCHEMES:
        if reset:
            raise EndpointError(
                "--cluster-reset starts the embedded SQLite store over; it does nothing for "
                f"etcd ({endpoint}): recover an etcd cluster with etcd's own tools"
            )
        from setpoint.store.etcd import EtcdStore  # grpc is loaded only for etcd

        tls = (etcd_tls or EtcdTLS()) if target.scheme == "etcds" else None
        return await EtcdStore.open(target.hosts, tls)
    assert target.path is not None
    return await SQLiteStore.open(
        target.path, expect_data=expect_data, reset=reset, purpose=purpose
    )
