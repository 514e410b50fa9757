"""The issue 16 benchmarks' command line and harness: ``python -m bench write --store etcd
--servers N`` and the secrets a second server on the same etcd shares with the first."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.__main__ import main
from bench.common import Server
from bench.ha import join_first

from tests.ha import SHARED_CREDENTIALS as SHARED_FILES


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("write", "--servers", "2"), "needs --store etcd"),
        (("write", "--store", "etcd", "--servers", "0"), "N >= 1"),
        (("watch", "--store", "etcd"), "apply to write only"),
        (("write", "--store", "mysql"), "invalid choice"),
    ],
)
def test_store_and_servers_are_refused_where_they_cannot_apply(
    args: tuple[str, ...], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_a_joining_server_gets_the_first_servers_secrets_with_their_modes(
    tmp_path: Path,
) -> None:
    first = Server(tmp_path / "first", tmp_path / "first.log")
    for n, name in enumerate(SHARED_FILES):
        path = first.data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"secret {n}")
        path.chmod(0o600)

    joining = tmp_path / "second"
    assert join_first(first, joining) == []

    for n, name in enumerate(SHARED_FILES):
        copy = joining / name
        assert copy.read_text() == f"secret {n}"
        assert copy.stat().st_mode & 0o777 == 0o600
    assert joining.stat().st_mode & 0o777 == 0o700
    assert (joining / "tls").stat().st_mode & 0o777 == 0o700
