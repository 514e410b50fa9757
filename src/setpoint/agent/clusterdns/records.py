"""The names of the cluster domain: which records a query under ``<domain>`` gets.

:class:`ClusterRecords` is an index of the Services and EndpointSlices of the cluster, kept
small (the fields DNS needs, not the objects: the agent's informers hold those), fed by the
agent's informer handlers and read by :meth:`ClusterRecords.resolve`, a pure function of
that index and the question. It follows Kubernetes' DNS specification
(``kubernetes/dns`` ``docs/specification.md``, schema 1.1.0) the way CoreDNS's
``kubernetes`` plugin answers it:

- ``<svc>.<ns>.svc.<domain>``: ``A``/``AAAA`` the Service's cluster IPs; for a headless
  Service (``clusterIP: None``) the addresses of its *ready* endpoints (``NXDOMAIN`` when it
  has none, as the specification says); for ``type: ExternalName`` a ``CNAME`` to the
  external name (the server follows it: :mod:`.server`).
- ``<hostname>.<svc>.<ns>.svc.<domain>``: a headless Service's ready endpoint, by its
  ``hostname`` or, without one, by its address with dashes (``10-244-0-5``), the
  system-assigned name CoreDNS uses.
- ``_<port>._<proto>.<svc>.<ns>.svc.<domain>`` ``SRV``: one per named port (per ready
  endpoint for a headless Service), the targets' addresses in the additional section.
- ``<a>-<b>-<c>-<d>.<ns>.pod.<domain>``: ``A`` ``a.b.c.d``, unverified (the specification's
  deprecated pod record; CoreDNS's ``pods insecure``, the mode kubeadm configures).
- ``dns-version.<domain>`` ``TXT``; ``SOA`` and ``NS`` at ``<domain>``.
- ``PTR`` under ``in-addr.arpa``/``ip6.arpa`` for cluster IPs and for headless Services'
  ready endpoints; an address the cluster does not know is not ours (forwarded).

A name inside the domain that has no records is ``NXDOMAIN``; one that exists with no record
of the asked type is ``NOERROR`` with no answer (NODATA), both with the zone's ``SOA`` in the
authority section, so resolvers cache the negative answer for ``TTL`` seconds. Comparison is
case-insensitive. Names outside the domain are :data:`NOT_OURS`: the server forwards them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from dns.rdatatype import RdataType

Obj = dict[str, Any]

TTL = 5  # seconds, CoreDNS's default: Services change, answers must not stick
SCHEMA_VERSION = "1.1.0"
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400  # CoreDNS's values
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
A, AAAA, SRV, PTR, CNAME, TXT, SOA, NS, ANY = (
    dns.rdatatype.A,
    dns.rdatatype.AAAA,
    dns.rdatatype.SRV,
    dns.rdatatype.PTR,
    dns.rdatatype.CNAME,
    dns.rdatatype.TXT,
    dns.rdatatype.SOA,
    dns.rdatatype.NS,
    dns.rdatatype.ANY,
)
MAX_CNAME_CHAIN = 8  # ExternalName Services naming each other: stop, do not loop
REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str  # lower case: tcp, udp, sctp
    port: int


@dataclass(frozen=True)
class Service:
    cluster_ips: tuple[str, ...]  # empty for a headless or ExternalName Service
    headless: bool
    external_name: str
    ports: tuple[Port, ...]


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    hostname: str  # the endpoint's hostname, else its first address with dashes


@dataclass(frozen=True)
class Slice:
    namespace: str
    service: str
    endpoints: tuple[Endpoint, ...]  # ready ones only
    ports: tuple[Port, ...]


@dataclass
class Resolution:
    """The answer to one question, or what the server must still do for it."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    # an ExternalName's target outside the cluster: the server asks upstream for it
    follow: dns.name.Name | None = None


NOT_OURS: None = None


def service_record(obj: Obj) -> Service:
    spec = obj.get("spec") or {}
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    external = str(spec.get("externalName") or "") if spec.get("type") == "ExternalName" else ""
    return Service(
        cluster_ips=tuple(ips),
        headless=not ips and not external,
        external_name=external,
        ports=_ports(spec.get("ports") or []),
    )


def slice_record(obj: Obj) -> Slice | None:
    meta = obj.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    endpoints = []
    for endpoint in obj.get("endpoints") or []:
        if (endpoint.get("conditions") or {}).get("ready") is False:  # unset means ready
            continue
        addresses = tuple(str(a) for a in endpoint.get("addresses") or [])
        if addresses:
            hostname = endpoint.get("hostname") or dashed(addresses[0])
            endpoints.append(Endpoint(addresses, str(hostname).lower()))
    return Slice(
        str(meta.get("namespace") or ""), service, tuple(endpoints), _ports(obj.get("ports") or [])
    )


def _ports(ports: list[Obj]) -> tuple[Port, ...]:
    return tuple(
        Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(), int(p["port"]))
        for p in ports
        if p.get("port") is not None
    )


def dashed(address: str) -> str:
    """``10.244.0.5`` as a DNS label: ``10-244-0-5`` (``::1`` as ``--1``)."""
    return address.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    """The address a pod record's first label names, None if it names none."""
    for text in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


class ClusterRecords:
    """Services and EndpointSlices of the cluster, as DNS sees them, for ``domain``."""

    def __init__(self, domain: str = "cluster.local", *, ttl: int = TTL) -> None:
        self.zone = dns.name.from_text(domain.strip(".") + ".")
        self.ttl = ttl
        self.services: dict[tuple[str, str], Service] = {}
        self.slices: dict[str, Slice] = {}  # "<ns>/<name>" -> slice
        self._slices_of: dict[tuple[str, str], set[str]] = {}  # (ns, service) -> slice keys
        self._namespaces: dict[str, int] = {}  # namespace -> how many Services it has
        self.serial = 1  # the SOA serial: changes with every change of the index
        self._depth = 0  # of the CNAME chain being followed

    # ------------------------------------------------------------- feeding

    def set_service(self, obj: Obj) -> None:
        key = (str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]).lower())
        if key not in self.services:
            self._namespaces[key[0]] = self._namespaces.get(key[0], 0) + 1
        self.services[key] = service_record(obj)
        self.serial += 1

    def delete_service(self, obj: Obj) -> None:
        key = (str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]).lower())
        if self.services.pop(key, None) is not None:
            left = self._namespaces.get(key[0], 1) - 1
            if left:
                self._namespaces[key[0]] = left
            else:
                self._namespaces.pop(key[0], None)
        self.serial += 1

    def set_slice(self, obj: Obj) -> None:
        key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        self.delete_slice(obj)
        record = slice_record(obj)
        if record is not None:
            self.slices[key] = record
            self._slices_of.setdefault((record.namespace, record.service.lower()), set()).add(key)
        self.serial += 1

    def delete_slice(self, obj: Obj) -> None:
        key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        old = self.slices.pop(key, None)
        if old is not None:
            owner = (old.namespace, old.service.lower())
            keys = self._slices_of.get(owner, set())
            keys.discard(key)
            if not keys:
                self._slices_of.pop(owner, None)
        self.serial += 1

    def ready_endpoints(self, namespace: str, service: str) -> list[tuple[Endpoint, Slice]]:
        keys = sorted(self._slices_of.get((namespace, service), ()))
        return [(e, self.slices[k]) for k in keys for e in self.slices[k].endpoints]

    # ------------------------------------------------------------- answering

    def resolve(
        self, qname: dns.name.Name, qtype: RdataType, *, depth: int = 0
    ) -> Resolution | None:
        """The answer to ``qname``/``qtype`` (class IN), :data:`NOT_OURS` to forward it."""
        self._depth = depth
        if qname.is_subdomain(self.zone):
            relative = qname.relativize(self.zone).labels
            labels = [label.decode(errors="replace").lower() for label in relative]
            return self._in_zone(qname, qtype, labels)
        if any(qname.is_subdomain(z) for z in REVERSE_ZONES) and qtype in (PTR, ANY):
            return self._reverse(qname)
        return NOT_OURS

    def _in_zone(self, qname: dns.name.Name, qtype: RdataType, labels: list[str]) -> Resolution:
        if not labels:
            records = {SOA: [self.soa()], NS: [self._rrset(qname, NS, f"ns.dns.{self.zone}")]}
            return self._found(qname, qtype, records)
        if labels == ["dns-version"]:
            return self._found(
                qname, qtype, {TXT: [self._rrset(qname, TXT, f'"{SCHEMA_VERSION}"')]}
            )
        kind, rest = labels[-1], labels[:-1]
        if kind == "svc":
            return self._service_names(qname, qtype, rest)
        if kind == "pod" and len(rest) == 2:
            address = undashed(rest[0])
            if address is not None:
                return self._found(qname, qtype, self._addresses(qname, [address]))
        if kind in ("svc", "pod") and len(rest) <= 1 and (not rest or rest[0] in self._namespaces):
            return self._found(qname, qtype, {})  # an empty non-terminal: NODATA
        return self._missing()

    def _service_names(self, qname: dns.name.Name, qtype: RdataType, rest: list[str]) -> Resolution:
        if len(rest) < 2:
            exists = not rest or rest[0] in self._namespaces
            return self._found(qname, qtype, {}) if exists else self._missing()
        namespace, name = rest[-1], rest[-2]
        service = self.services.get((namespace, name))
        if service is None:
            return self._missing()
        target = dns.name.from_text(f"{name}.{namespace}.svc", origin=self.zone)
        if len(rest) == 2:
            return self._service(qname, qtype, service, namespace, name)
        if len(rest) == 3 and service.headless:  # <hostname>.<svc>.<ns>.svc
            addresses = [
                a
                for endpoint, _ in self.ready_endpoints(namespace, name)
                if endpoint.hostname == rest[0]
                for a in endpoint.addresses
            ]
            if addresses:
                return self._found(qname, qtype, self._addresses(qname, addresses))
        if len(rest) == 4 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(
                qname, qtype, service, namespace, name, rest[0][1:], rest[1][1:], target
            )
        return self._missing()

    def _service(
        self, qname: dns.name.Name, qtype: RdataType, service: Service, namespace: str, name: str
    ) -> Resolution:
        if service.external_name:
            target = dns.name.from_text(service.external_name.strip(".") + ".")
            cname = self._rrset(qname, CNAME, target.to_text())
            if qtype == CNAME:
                return Resolution(answer=[cname])
            if not target.is_subdomain(self.zone):
                return Resolution(answer=[cname], follow=target)
            depth = self._depth + 1
            inner = self.resolve(target, qtype, depth=depth) if depth < MAX_CNAME_CHAIN else None
            if inner is None or inner.rcode != dns.rcode.NOERROR:
                return Resolution(answer=[cname])
            inner.answer.insert(0, cname)
            return inner
        if service.headless:
            addresses = [a for e, _ in self.ready_endpoints(namespace, name) for a in e.addresses]
            if not addresses:
                return self._missing()
            records = self._addresses(qname, list(dict.fromkeys(addresses)))
        else:
            records = self._addresses(qname, list(service.cluster_ips))
        srv = self._srv(qname, SRV, service, namespace, name, "", "", qname)
        if srv.answer:
            records[SRV] = srv.answer
        result = self._found(qname, qtype, records)
        if qtype == SRV:
            result.additional = srv.additional
        return result

    def _srv(
        self,
        qname: dns.name.Name,
        qtype: RdataType,
        service: Service,
        namespace: str,
        name: str,
        port_name: str,
        protocol: str,
        target: dns.name.Name,
    ) -> Resolution:
        """SRV records of the Service's named ports matching ``port_name``/``protocol``
        (both empty: every named port, for an SRV question about the Service itself)."""
        ports = [
            p
            for p in service.ports
            if p.name
            and (not port_name or p.name.lower() == port_name)
            and (not protocol or p.protocol == protocol)
        ]
        if not ports:
            return self._missing()
        rdatas: list[str] = []
        additional: list[dns.rrset.RRset] = []
        svc_name = dns.name.from_text(f"{name}.{namespace}.svc", origin=self.zone)
        if service.headless:
            endpoints = self.ready_endpoints(namespace, name)
            seen: set[str] = set()
            for endpoint, _ in endpoints:
                host = dns.name.from_text(endpoint.hostname, origin=svc_name)
                if host.to_text() in seen:
                    continue
                seen.add(host.to_text())
                weight = max(1, 100 // max(1, len(endpoints)))
                rdatas += [f"0 {weight} {p.port} {host}" for p in ports]
                additional += self._addresses(host, list(endpoint.addresses)).get(A, [])
                additional += self._addresses(host, list(endpoint.addresses)).get(AAAA, [])
        elif service.cluster_ips:
            rdatas = [f"0 100 {p.port} {svc_name}" for p in ports]
            found = self._addresses(svc_name, list(service.cluster_ips))
            additional = [*found.get(A, []), *found.get(AAAA, [])]
        if not rdatas:
            return self._missing()
        srv = dns.rrset.from_text_list(qname, self.ttl, "IN", "SRV", rdatas)
        result = self._found(qname, qtype, {SRV: [srv]})
        if qtype == SRV:
            result.additional = additional
        return result

    def _reverse(self, qname: dns.name.Name) -> Resolution | None:
        try:
            address = str(dns.reversename.to_address(qname))
        except (dns.exception.SyntaxError, ValueError):
            return NOT_OURS
        names: list[str] = []
        for (namespace, name), service in sorted(self.services.items()):
            if address in service.cluster_ips:
                names.append(f"{name}.{namespace}.svc.{self.zone}")
            elif service.headless:
                names += [
                    f"{endpoint.hostname}.{name}.{namespace}.svc.{self.zone}"
                    for endpoint, _ in self.ready_endpoints(namespace, name)
                    if address in endpoint.addresses
                ]
        if not names:
            return NOT_OURS
        return Resolution(answer=[dns.rrset.from_text_list(qname, self.ttl, "IN", "PTR", names)])

    # ------------------------------------------------------------- building

    def _addresses(
        self, owner: dns.name.Name, addresses: list[str]
    ) -> dict[RdataType, list[dns.rrset.RRset]]:
        v4 = [a for a in addresses if ":" not in a]
        v6 = [a for a in addresses if ":" in a]
        records: dict[RdataType, list[dns.rrset.RRset]] = {}
        if v4:
            records[A] = [dns.rrset.from_text_list(owner, self.ttl, "IN", "A", v4)]
        if v6:
            records[AAAA] = [dns.rrset.from_text_list(owner, self.ttl, "IN", "AAAA", v6)]
        return records

    def _rrset(self, owner: dns.name.Name, rdtype: RdataType, text: str) -> dns.rrset.RRset:
        return dns.rrset.from_text(owner, self.ttl, "IN", dns.rdatatype.to_text(rdtype), text)

    def soa(self) -> dns.rrset.RRset:
        text = (
            f"ns.dns.{self.zone} hostmaster.{self.zone} {self.serial % 2**32} "
            f"{SOA_REFRESH} {SOA_RETRY} {SOA_EXPIRE} {self.ttl}"
        )
        return self._rrset(self.zone, SOA, text)

    def _found(
        self,
        qname: dns.name.Name,
        qtype: RdataType,
        records: dict[RdataType, list[dns.rrset.RRset]],
    ) -> Resolution:
        """The name exists: its records of ``qtype`` (all of them for ANY), else NODATA."""
        if qtype == ANY:
            answer = [r for rrsets in records.values() for r in rrsets]
        else:
            answer = list(records.get(qtype, []))
        if answer:
            return Resolution(answer=answer)
        return Resolution(authority=[self.soa()])

    def _missing(self) -> Resolution:
        return Resolution(rcode=dns.rcode.NXDOMAIN, authority=[self.soa()])
