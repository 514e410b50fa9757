"""Cluster DNS, served by every node agent for the pods of its node (see docs/dns.md).

- :mod:`.records`: what a name of the cluster domain means (Kubernetes' DNS specification,
  as CoreDNS's ``kubernetes`` plugin answers it), a pure index fed Services and
  EndpointSlices;
- :mod:`.server`: the asyncio UDP and TCP server on the node bridge's address that answers
  from that index and forwards every other name to the node's upstream resolvers;
- :mod:`.resolvconf`: the ``/etc/resolv.conf`` each pod gets, built as the kubelet builds it
  from the pod's ``dnsPolicy`` and ``dnsConfig``; :mod:`.hostsfile`: its ``/etc/hosts``.
"""
