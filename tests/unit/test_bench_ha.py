"""The issue 16 benchmarks' command line: ``python -m bench write --store etcd --servers N``
and where those options do not apply."""

from __future__ import annotations

import pytest
from bench.__main__ import main


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
