"""A pod's kubelet-managed /etc/hosts (managedHostsFileContent)."""

from __future__ import annotations

from typing import Any

from setpoint.agent.clusterdns.hostsfile import HEADER, hosts_file


def pod(name: str = "web-0", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team"}, "spec": spec}


def test_the_pod_is_named_by_its_hostname() -> None:
    assert hosts_file(pod(), "10.244.0.5", cluster_domain="cluster.local") == (
        HEADER + "10.244.0.5\tweb-0\n"
    )


def test_a_subdomain_gives_the_fully_qualified_name_first() -> None:
    text = hosts_file(pod(hostname="db", subdomain="dbs"), "10.244.0.5", cluster_domain="c.local")
    assert text.endswith("10.244.0.5\tdb.dbs.team.svc.c.local\tdb\n")


def test_host_aliases_follow() -> None:
    aliases = [{"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}]
    text = hosts_file(pod(hostAliases=aliases), "10.244.0.5", cluster_domain="cluster.local")
    assert text.endswith(
        "10.244.0.5\tweb-0\n\n# Entries added by HostAliases.\n192.0.2.7\tfoo.local\tbar.local\n"
    )


def test_a_long_name_is_cut_to_63_characters() -> None:
    text = hosts_file(pod("a" * 62 + "-b"), "10.244.0.5", cluster_domain="cluster.local")
    assert text.endswith("10.244.0.5\t" + "a" * 62 + "\n")
