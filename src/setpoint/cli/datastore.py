"""``setpoint datastore``: operations on a server's store from outside the server.

``setpoint datastore snapshot save FILE`` takes a consistent snapshot of the embedded store,
also (usually) while the server runs; ``setpoint datastore snapshot restore FILE`` puts one
back into a stopped server's data dir, with revisions continuing above every one handed out
there (``store.snapshot`` has the how and why). ``--data-dir`` names the server's data dir,
as for ``setpoint server``.
"""

from __future__ import annotations

from pathlib import Path

import click

from setpoint.cli.flags import default_data_dir
from setpoint.store.interface import BackendError
from setpoint.store.snapshot import restore, save

DB = Path("db") / "state.db"


def _data_dir_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The setpoint server's data dir [default: the server's default data dir].",
    )(func)


def _data_dir(given: Path | None) -> Path:
    return (given or default_data_dir()).resolve()


@click.group()
def datastore() -> None:
    """Operations on the server's store (snapshots)."""


@datastore.group()
def snapshot() -> None:
    """Save and restore snapshots of the embedded store."""


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_data_dir_option
def save_command(file: Path, data_dir: Path | None) -> None:
    """Write a consistent snapshot of the store to FILE (mode 0600), while the server runs
    or not."""
    db = _data_dir(data_dir) / DB
    try:
        info = save(db, file.resolve())
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Saved snapshot {info.path}: revision {info.revision}, {info.keys} keys, {info.size} bytes"
    )


@snapshot.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_data_dir_option
def restore_command(file: Path, data_dir: Path | None) -> None:
    """Make the snapshot FILE the store of a stopped server. Revisions continue above every
    one handed out before, and older ones are compacted, so clients re-list; the database it
    replaces is kept beside it."""
    directory = _data_dir(data_dir)
    try:
        restored = restore(file.resolve(), directory / DB)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Restored {restored.snapshot.keys} keys from {file} (snapshot revision "
        f"{restored.snapshot.revision}) into {directory}; revisions continue at "
        f"{restored.revision}, earlier ones are compacted (clients re-list)."
    )
    if restored.previous is not None:
        click.echo(f"The database it replaced is kept as {restored.previous}.")
