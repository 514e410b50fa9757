"""``setpoint kubeconfig``: a kubeconfig for a user, authenticated by a client certificate.

Run where the server's data dir is (it signs with the cluster CA's key): it issues a client
certificate with ``CN=<--user>`` and one ``O=`` per ``--group``, valid ``--days``, and writes
a kubeconfig that carries it (``client-certificate-data``/``client-key-data``) with the
server URL and CA of the server's own kubeconfig — as ``kubeadm kubeconfig user`` does.
What the user may then do is for the authorizers to say; ``--group system:masters`` makes an
administrator. A certificate cannot be revoked before it expires (as in Kubernetes), so keep
``--days`` short for people.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from setpoint.cli.flags import default_data_dir
from setpoint.pki import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    TLS_DIR,
    issue_client_certificate,
    load_kubeconfig,
    write_kubeconfig,
)


@click.command()
@click.option("--user", required=True, help="The user name (the certificate's CN).")
@click.option("--group", "groups", multiple=True, help="A group (an O); repeatable.")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The server's data dir [default: the server's default data dir].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the kubeconfig (mode 0600).",
)
def kubeconfig(
    user: str, groups: tuple[str, ...], days: int, data_dir: Path | None, output: Path
) -> None:
    """Write a kubeconfig for USER with a client certificate of the cluster CA."""
    directory = data_dir or default_data_dir()
    tls = directory / TLS_DIR
    if not (tls / CA_KEY_FILE).exists():
        raise click.UsageError(f"no cluster CA key under {tls}; give the server's --data-dir")
    admin = load_kubeconfig(directory / "kubeconfig.yaml")
    cert, key = issue_client_certificate(
        ca_cert_pem=(tls / CA_CERT_FILE).read_bytes(),
        ca_key_pem=(tls / CA_KEY_FILE).read_bytes(),
        common_name=user,
        organizations=groups,
        validity=datetime.timedelta(days=days),
    )
    write_kubeconfig(
        output,
        server_url=admin.server_url,
        ca_pem=admin.ca_pem,
        client_cert_pem=cert,
        client_key_pem=key,
        user_name=user,
    )
    click.echo(f"wrote {output} for user {user!r} (groups: {', '.join(groups) or 'none'})")
