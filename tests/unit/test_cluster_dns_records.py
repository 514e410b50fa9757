"""Specification of the names cluster DNS answers (Kubernetes' DNS specification, as
CoreDNS's kubernetes plugin answers it), as a pure index fed Services and EndpointSlices."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from setpoint.agent.clusterdns.records import ClusterRecords, Resolution

Obj = dict[str, Any]


def service(name: str, namespace: str = "default", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoint_slice(
    service_name: str, *endpoints: Obj, namespace: str = "default", **more: Any
) -> Obj:
    return {
        "metadata": {
            "name": f"{service_name}-abc",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "endpoints": list(endpoints),
        "ports": more.get("ports", [{"name": "http", "port": 8080, "protocol": "TCP"}]),
    }


def ep(ip: str, ready: bool = True, hostname: str | None = None) -> Obj:
    body: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        body["hostname"] = hostname
    return body


@pytest.fixture
def zone() -> ClusterRecords:
    records = ClusterRecords("cluster.local")
    records.set_service(
        service(
            "web",
            clusterIP="10.96.0.10",
            clusterIPs=["10.96.0.10"],
            ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}],
        )
    )
    records.set_service(
        service("db", clusterIP="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}])
    )
    records.set_slice(
        endpoint_slice(
            "db",
            ep("10.244.0.5", hostname="db-0"),
            ep("10.244.0.6"),
            ep("10.244.0.7", ready=False),
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
        )
    )
    records.set_service(service("empty", clusterIP="None"))
    records.set_service(service("ext", type="ExternalName", externalName="example.org"))
    records.set_service(
        service("alias", type="ExternalName", externalName="web.default.svc.cluster.local")
    )
    return records


def ask(records: ClusterRecords, name: str, rdtype: str = "A") -> Resolution | None:
    return records.resolve(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))


def values(found: Resolution | None, rdtype: str = "A") -> list[str]:
    assert found is not None
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(r.to_text() for rrset in found.answer if rrset.rdtype == wanted for r in rrset)


def test_a_cluster_ip_service_is_its_cluster_ip(zone: ClusterRecords) -> None:
    assert values(ask(zone, "web.default.svc.cluster.local.")) == ["10.96.0.10"]


def test_names_are_case_insensitive(zone: ClusterRecords) -> None:
    assert values(ask(zone, "WEB.Default.SVC.cluster.LOCAL.")) == ["10.96.0.10"]


def test_a_headless_service_is_its_ready_endpoints(zone: ClusterRecords) -> None:
    assert values(ask(zone, "db.default.svc.cluster.local.")) == ["10.244.0.5", "10.244.0.6"]


def test_a_headless_service_without_ready_endpoints_is_nxdomain(zone: ClusterRecords) -> None:
    found = ask(zone, "empty.default.svc.cluster.local.")
    assert found is not None and found.rcode == dns.rcode.NXDOMAIN


def test_an_endpoint_hostname_names_its_address(zone: ClusterRecords) -> None:
    assert values(ask(zone, "db-0.db.default.svc.cluster.local.")) == ["10.244.0.5"]
    assert values(ask(zone, "10-244-0-6.db.default.svc.cluster.local.")) == ["10.244.0.6"]


def test_srv_of_a_named_port_points_at_the_service(zone: ClusterRecords) -> None:
    found = ask(zone, "_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert values(found, "SRV") == ["0 100 80 web.default.svc.cluster.local."]
    assert found is not None
    assert [r.to_text() for r in found.additional] == [
        "web.default.svc.cluster.local. 5 IN A 10.96.0.10"
    ]


def test_srv_of_a_headless_service_has_one_record_per_ready_endpoint(zone: ClusterRecords) -> None:
    found = ask(zone, "_pg._tcp.db.default.svc.cluster.local.", "SRV")
    assert values(found, "SRV") == [
        "0 50 5432 10-244-0-6.db.default.svc.cluster.local.",
        "0 50 5432 db-0.db.default.svc.cluster.local.",
    ]


def test_unnamed_ports_and_other_protocols_have_no_srv(zone: ClusterRecords) -> None:
    for name in ("_81._tcp.web", "_http._udp.web"):
        found = ask(zone, f"{name}.default.svc.cluster.local.", "SRV")
        assert found is not None and found.rcode == dns.rcode.NXDOMAIN


def test_an_unknown_name_in_the_domain_is_nxdomain_with_soa(zone: ClusterRecords) -> None:
    found = ask(zone, "nope.default.svc.cluster.local.")
    assert found is not None and found.rcode == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in found.authority] == [dns.rdatatype.SOA]


def test_a_known_name_without_the_type_is_nodata(zone: ClusterRecords) -> None:
    found = ask(zone, "web.default.svc.cluster.local.", "AAAA")
    assert found is not None and found.rcode == dns.rcode.NOERROR and not found.answer
    assert [rrset.rdtype for rrset in found.authority] == [dns.rdatatype.SOA]


def test_pod_records_are_their_dashed_address(zone: ClusterRecords) -> None:
    assert values(ask(zone, "10-244-1-7.default.pod.cluster.local.")) == ["10.244.1.7"]


def test_external_name_is_a_cname_followed_upstream(zone: ClusterRecords) -> None:
    found = ask(zone, "ext.default.svc.cluster.local.")
    assert values(found, "CNAME") == ["example.org."]
    assert found is not None and found.follow == dns.name.from_text("example.org.")


def test_external_name_inside_the_cluster_is_chased_here(zone: ClusterRecords) -> None:
    found = ask(zone, "alias.default.svc.cluster.local.")
    assert values(found, "CNAME") == ["web.default.svc.cluster.local."]
    assert values(found, "A") == ["10.96.0.10"]


def test_external_names_naming_each_other_do_not_loop() -> None:
    records = ClusterRecords()
    records.set_service(
        service("a", type="ExternalName", externalName="b.default.svc.cluster.local")
    )
    records.set_service(
        service("b", type="ExternalName", externalName="a.default.svc.cluster.local")
    )
    assert ask(records, "a.default.svc.cluster.local.") is not None


def test_names_outside_the_domain_are_not_ours(zone: ClusterRecords) -> None:
    assert ask(zone, "example.org.") is None
    assert ask(zone, "1.2.3.4.in-addr.arpa.", "PTR") is None


def test_ptr_of_a_cluster_ip_and_a_headless_endpoint(zone: ClusterRecords) -> None:
    assert values(ask(zone, "10.0.96.10.in-addr.arpa.", "PTR"), "PTR") == [
        "web.default.svc.cluster.local."
    ]
    assert values(ask(zone, "5.0.244.10.in-addr.arpa.", "PTR"), "PTR") == [
        "db-0.db.default.svc.cluster.local."
    ]


def test_dns_version_and_soa(zone: ClusterRecords) -> None:
    assert values(ask(zone, "dns-version.cluster.local.", "TXT"), "TXT") == ['"1.1.0"']
    assert len(values(ask(zone, "cluster.local.", "SOA"), "SOA")) == 1


def test_deleted_objects_leave_the_index(zone: ClusterRecords) -> None:
    zone.delete_slice(endpoint_slice("db"))
    found = ask(zone, "db.default.svc.cluster.local.")
    assert found is not None and found.rcode == dns.rcode.NXDOMAIN
    zone.delete_service(service("web"))
    found = ask(zone, "web.default.svc.cluster.local.")
    assert found is not None and found.rcode == dns.rcode.NXDOMAIN


def test_another_domain() -> None:
    records = ClusterRecords("example.internal")
    records.set_service(service("web", clusterIP="10.96.0.10"))
    assert values(ask(records, "web.default.svc.example.internal.")) == ["10.96.0.10"]
    assert ask(records, "web.default.svc.cluster.local.") is None
