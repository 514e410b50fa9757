"""Scheduler filters, scores and messages on small node and pod dicts."""

from __future__ import annotations

import random
from typing import Any

import pytest

from setpoint.scheduler.plugins import (
    REASON_NODE_PORTS,
    ClusterSnapshot,
    NodeInfo,
    PodInfo,
    Status,
    filter_node,
    fit_error_message,
    num_feasible_nodes_to_find,
    pod_requests,
    prepare,
    schedule_pod,
    score_nodes,
)
from setpoint.scheduler.queue import SchedulingQueue
from tests import objects
from tests.objects import container

Obj = dict[str, Any]


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    ready: str = "True",
) -> Obj:
    """A node offering ``cpu``, ``memory`` and ``pods``, with its taints, whether it is
    cordoned and its Ready status."""
    return objects.node(
        name,
        labels=labels,
        allocatable={"cpu": cpu, "memory": memory, "pods": pods},
        conditions=[{"type": "Ready", "status": ready}],
        taints=taints or [],
        unschedulable=unschedulable,
    )


def pod(
    name: str,
    *,
    cpu: str | None = None,
    memory: str | None = None,
    labels: dict[str, str] | None = None,
    node_name: str = "",
    owner: str = "",
    **spec: Any,
) -> Obj:
    """A pod in ``ns`` whose one container requests ``cpu`` and ``memory``, on
    ``node_name`` if given, controlled by the ReplicaSet with uid ``owner`` if given."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    meta: Obj = {}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet"}]
    if node_name:
        spec = {"nodeName": node_name, **spec}
    return objects.pod(
        name,
        namespace="ns",
        labels=labels or {},
        metadata=meta,
        containers=[container("c", resources={"requests": requests})],
        **spec,
    )


def cluster(*nodes: Obj, pods: tuple[Obj, ...] = ()) -> ClusterSnapshot:
    snapshot = ClusterSnapshot()
    for n in nodes:
        snapshot.set_node(n)
    for p in pods:
        snapshot.add_pod(PodInfo.from_pod(p))
    return snapshot


def check(p: Obj, snapshot: ClusterSnapshot, name: str) -> Status | None:
    return filter_node(prepare(p, snapshot), snapshot.nodes[name])


# ---------------------------------------------------------------- requests


def test_effective_requests_sum_containers_and_take_the_largest_init_container() -> None:
    p = pod("p")
    p["spec"]["containers"] = [
        {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "200m"}}},
    ]
    p["spec"]["initContainers"] = [
        {"name": "i1", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
        {"name": "i2", "resources": {"requests": {"memory": "500Mi"}}},
    ]
    r = pod_requests(p)
    assert r.milli_cpu == 1000
    assert r.memory == 500 * 1024 * 1024


def test_sidecar_init_containers_add_to_the_pod_and_to_later_init_containers() -> None:
    p = pod("p", cpu="100m")
    p["spec"]["initContainers"] = [
        {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
        {"name": "init", "resources": {"requests": {"cpu": "500m"}}},
    ]
    # containers 100m + sidecar 300m = 400m; the init container runs beside the
    # sidecar: 500m + 300m = 800m, which is larger.
    assert pod_requests(p).milli_cpu == 800


def test_overhead_is_added_and_non_zero_defaults_apply_only_for_scoring() -> None:
    p = pod("p")
    p["spec"]["overhead"] = {"cpu": "50m"}
    assert pod_requests(p).milli_cpu == 50
    assert pod_requests(p, non_zero=True).milli_cpu == 150
    assert pod_requests(p, non_zero=True).memory == 200 * 1024 * 1024


# ---------------------------------------------------------------- filters


def test_cordoned_node_is_unschedulable_unless_tolerated() -> None:
    s = cluster(node("n1", unschedulable=True))
    assert check(pod("p"), s, "n1") == Status("NodeUnschedulable", ("node(s) were unschedulable",))
    tolerant = pod(
        "p",
        tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}],
    )
    assert check(tolerant, s, "n1") is None


def test_not_ready_node_counts_as_tainted() -> None:
    s = cluster(node("n1", ready="False"))
    assert check(pod("p"), s, "n1") == Status(
        "TaintToleration", ("node(s) had untolerated taint(s)",)
    )
    tolerant = pod("p", tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert check(tolerant, s, "n1") is None


@pytest.mark.parametrize(
    ("toleration", "fits"),
    [
        (None, False),
        ({"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}, True),
        ({"key": "gpu", "operator": "Equal", "value": "no"}, False),
        ({"key": "gpu", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),
        ({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, False),
    ],
)
def test_taints_need_matching_tolerations(toleration: Obj | None, fits: bool) -> None:
    s = cluster(node("n1", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]))
    p = pod("p", tolerations=[toleration] if toleration else [])
    assert (check(p, s, "n1") is None) == fits


def test_prefer_no_schedule_taint_only_lowers_the_score() -> None:
    s = cluster(
        node("soft", taints=[{"key": "a", "effect": "PreferNoSchedule"}]),
        node("plain"),
    )
    p = pod("p")
    assert check(p, s, "soft") is None
    state = prepare(p, s)
    scores = score_nodes(state, [s.nodes["soft"], s.nodes["plain"]], s)
    assert scores[1] > scores[0]


def test_node_selector_must_match_labels() -> None:
    s = cluster(node("a", labels={"disk": "ssd"}), node("b"))
    p = pod("p", nodeSelector={"disk": "ssd"})
    assert check(p, s, "a") is None
    assert check(p, s, "b") == Status(
        "NodeAffinity", ("node(s) didn't match Pod's node affinity/selector",)
    )


def required_affinity(*terms: Obj) -> Obj:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


@pytest.mark.parametrize(
    ("expression", "matching"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, {"a", "b"}),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"b", "none"}),
        ({"key": "zone", "operator": "Exists"}, {"a", "b"}),
        ({"key": "zone", "operator": "DoesNotExist"}, {"none"}),
        ({"key": "cores", "operator": "Gt", "values": ["4"]}, {"b"}),
        ({"key": "cores", "operator": "Lt", "values": ["8"]}, {"a"}),
    ],
)
def test_required_node_affinity_operators(expression: Obj, matching: set[str]) -> None:
    s = cluster(
        node("a", labels={"zone": "a", "cores": "4"}),
        node("b", labels={"zone": "b", "cores": "16"}),
        node("none"),
    )
    p = pod("p", affinity=required_affinity({"matchExpressions": [expression]}))
    assert {n for n in ("a", "b", "none") if check(p, s, n) is None} == matching


def test_node_affinity_terms_are_ored_and_match_fields_select_by_name() -> None:
    s = cluster(node("a", labels={"zone": "a"}), node("b"), node("c"))
    p = pod(
        "p",
        affinity=required_affinity(
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]},
        ),
    )
    assert {n for n in "abc" if check(p, s, n) is None} == {"a", "c"}


def test_resources_fit_counts_bound_pods_and_reports_every_shortage() -> None:
    used = pod("used", cpu="3", memory="7Gi", node_name="n1")
    s = cluster(node("n1"), pods=(used,))
    assert check(pod("small", cpu="1", memory="1Gi"), s, "n1") is None
    assert check(pod("big", cpu="2", memory="2Gi"), s, "n1") == Status(
        "NodeResourcesFit", ("Insufficient cpu", "Insufficient memory"), resolvable=True
    )


def test_pod_count_limit() -> None:
    s = cluster(node("n1", pods="1"), pods=(pod("x", node_name="n1"),))
    assert check(pod("p"), s, "n1") == Status(
        "NodeResourcesFit", ("Too many pods",), resolvable=True
    )


def with_host_port(p: Obj, port: int, *, ip: str = "", protocol: str = "") -> Obj:
    entry: Obj = {"containerPort": port, "hostPort": port}
    entry.update({k: v for k, v in (("hostIP", ip), ("protocol", protocol)) if v})
    p["spec"]["containers"][0]["ports"] = [entry]
    return p


def test_host_ports_conflict_by_protocol_port_and_address() -> None:
    taken = with_host_port(pod("web", node_name="n1"), 8080)
    on_one_ip = with_host_port(pod("dns", node_name="n2"), 53, ip="10.0.0.1", protocol="UDP")
    s = cluster(node("n1"), node("n2"), pods=(taken, on_one_ip))
    refused = Status("NodePorts", (REASON_NODE_PORTS,))
    assert check(with_host_port(pod("again"), 8080), s, "n1") == refused
    assert check(with_host_port(pod("again"), 8080), s, "n2") is None
    assert check(with_host_port(pod("udp"), 8080, protocol="UDP"), s, "n1") is None
    assert check(with_host_port(pod("other"), 8081), s, "n1") is None
    # a wildcard conflicts with any address, a specific address only with itself or a wildcard
    assert check(with_host_port(pod("any"), 53, protocol="UDP"), s, "n2") == refused
    assert check(with_host_port(pod("b"), 53, ip="10.0.0.2", protocol="UDP"), s, "n2") is None
    assert check(with_host_port(pod("a"), 53, ip="10.0.0.1", protocol="UDP"), s, "n2") == refused
    assert check(with_host_port(pod("one"), 8080, ip="10.0.0.9"), s, "n1") == refused


def test_host_ports_are_freed_with_their_pod() -> None:
    s = cluster(node("n1"), pods=(with_host_port(pod("web", node_name="n1"), 8080),))
    s.remove_pod("ns/web")
    assert check(with_host_port(pod("next"), 8080), s, "n1") is None
    assert not s.nodes["n1"].used_ports


def test_extended_resources_are_checked() -> None:
    s = cluster(node("n1"))
    p = pod("p")
    p["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = "1"
    assert check(p, s, "n1") == Status(
        "NodeResourcesFit", ("Insufficient example.com/gpu",), resolvable=True
    )


def test_pod_anti_affinity_keeps_pods_apart_by_hostname() -> None:
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    existing = pod("db-0", labels={"app": "db"}, node_name="n1")
    s = cluster(node("n1"), node("n2"), pods=(existing,))
    p = pod("db-1", labels={"app": "db"}, affinity=anti)
    assert check(p, s, "n1") == Status(
        "InterPodAffinity", ("node(s) didn't match pod anti-affinity rules",), resolvable=True
    )
    assert check(p, s, "n2") is None


def test_existing_pods_anti_affinity_is_respected() -> None:
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}
            ]
        }
    }
    loner = pod("loner", node_name="n1", affinity=anti)
    s = cluster(
        node("n1", labels={"zone": "a"}),
        node("n2", labels={"zone": "a"}),
        node("n3", labels={"zone": "b"}),
        pods=(loner,),
    )
    p = pod("web", labels={"app": "web"})
    reason = Status(
        "InterPodAffinity",
        ("node(s) didn't satisfy existing pods anti-affinity rules",),
        resolvable=True,
    )
    assert check(p, s, "n2") == reason
    assert check(p, s, "n3") is None


def test_pod_affinity_follows_matching_pods_and_lets_the_first_one_in() -> None:
    affinity = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}
            ]
        }
    }
    s = cluster(node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"}))
    first = pod("c0", labels={"app": "cache"}, affinity=affinity)
    assert check(first, s, "n1") is None and check(first, s, "n2") is None
    s.add_pod(PodInfo.from_pod(first, "n2"))
    follower = pod("web", affinity=affinity)
    assert check(follower, s, "n1") == Status(
        "InterPodAffinity", ("node(s) didn't match pod affinity rules",)
    )
    assert check(follower, s, "n2") is None


def spread(max_skew: int = 1, key: str = "zone") -> list[Obj]:
    return [
        {
            "maxSkew": max_skew,
            "topologyKey": key,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
        }
    ]


def test_topology_spread_skew_is_bounded_by_max_skew() -> None:
    web = [pod(f"w{i}", labels={"app": "web"}, node_name=n) for i, n in enumerate(["a1", "a2"])]
    s = cluster(
        node("a1", labels={"zone": "a"}),
        node("a2", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
        node("nolabel"),
        pods=tuple(web),
    )
    p = pod("w", labels={"app": "web"}, topologySpreadConstraints=spread(1))
    # zone a has 2, zone b has 0: a third in zone a would make the skew 3 - 0 = 3 > 1.
    assert check(p, s, "a1") == Status(
        "PodTopologySpread", ("node(s) didn't match pod topology spread constraints",), True
    )
    assert check(p, s, "b1") is None
    assert check(p, s, "nolabel") == Status(
        "PodTopologySpread",
        ("node(s) didn't match pod topology spread constraints (missing required label)",),
    )
    relaxed = pod("w", labels={"app": "web"}, topologySpreadConstraints=spread(3))
    assert check(relaxed, s, "a1") is None


def test_topology_spread_by_hostname() -> None:
    s = cluster(node("n1"), node("n2"), pods=(pod("w0", labels={"app": "web"}, node_name="n1"),))
    p = pod(
        "w", labels={"app": "web"}, topologySpreadConstraints=spread(1, "kubernetes.io/hostname")
    )
    assert check(p, s, "n1") is not None
    assert check(p, s, "n2") is None


# ---------------------------------------------------------------- scores


def test_least_allocated_prefers_the_emptier_node() -> None:
    s = cluster(
        node("busy"), node("idle"), pods=(pod("x", cpu="3", memory="6Gi", node_name="busy"),)
    )
    decision = schedule_pod(pod("p", cpu="100m", memory="100Mi"), s, rng=random.Random(1))
    assert decision.node == "idle"


def test_remembered_scores_follow_the_pods_on_each_node() -> None:
    s = cluster(node("a"), node("b"))
    replica = pod("r", cpu="2", memory="4Gi")

    def scores() -> list[int]:
        return score_nodes(prepare(replica, s), s.node_list(), s)

    empty = scores()
    assert empty[0] == empty[1]
    s.add_pod(PodInfo.from_pod(replica, "a"))
    busy = scores()
    assert busy[0] < busy[1] == empty[1]  # the same requests, scored again where pods changed
    s.remove_pod("ns/r")
    assert scores() == empty


def test_node_list_follows_added_updated_and_removed_nodes() -> None:
    s = cluster(node("a"), node("b"))
    assert [n.name for n in s.node_list()] == ["a", "b"]
    s.set_node(node("c"))
    s.set_node(node("a", cpu="8"))
    assert [n.name for n in s.node_list()] == ["a", "b", "c"]
    assert s.node_list()[0].allocatable.milli_cpu == 8000
    s.remove_node("b")
    assert [n.name for n in s.node_list()] == ["a", "c"]


def test_preferred_node_affinity_weights_win() -> None:
    s = cluster(node("a", labels={"disk": "ssd"}), node("b"))
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]
                    },
                }
            ]
        }
    }
    for seed in range(5):
        decision = schedule_pod(pod("p", affinity=preferred), s, rng=random.Random(seed))
        assert decision.node == "a"


def test_pods_of_one_owner_spread_across_nodes() -> None:
    s = cluster(node("n1"), node("n2"), node("n3"))
    placed = []
    for i in range(3):
        p = pod(f"r{i}", owner="rs-1")
        decision = schedule_pod(p, s, rng=random.Random(i))
        assert decision.node is not None
        s.add_pod(PodInfo.from_pod(p, decision.node))
        placed.append(decision.node)
    assert sorted(placed) == ["n1", "n2", "n3"]


def test_ties_are_broken_randomly() -> None:
    s = cluster(node("n1"), node("n2"), node("n3"))
    chosen = {schedule_pod(pod("p"), s, rng=random.Random(seed)).node for seed in range(30)}
    assert chosen == {"n1", "n2", "n3"}


# ---------------------------------------------------------------- messages


def test_failed_scheduling_message_for_a_mix_of_reasons() -> None:
    s = cluster(
        node("cordoned", unschedulable=True), node("small1", cpu="1"), node("small2", cpu="1")
    )
    decision = schedule_pod(pod("p", cpu="2"), s)
    assert decision.node is None
    assert fit_error_message(decision.num_nodes, decision.statuses) == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )


def test_failed_scheduling_message_sorts_reasons_as_strings() -> None:
    statuses = {
        "a": Status("NodeResourcesFit", ("Insufficient cpu", "Insufficient memory"), True),
        "b": Status("NodeResourcesFit", ("Insufficient cpu",), True),
        "c": Status("NodeAffinity", ("node(s) didn't match Pod's node affinity/selector",)),
        "d": Status("TaintToleration", ("node(s) had untolerated taint(s)",)),
        "e": Status("TaintToleration", ("node(s) had untolerated taint(s)",)),
    }
    assert fit_error_message(5, statuses) == (
        "0/5 nodes are available: 1 Insufficient memory, "
        "1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu, "
        "2 node(s) had untolerated taint(s). "
        "preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, "
        "3 Preemption is not helpful for scheduling."
    )


def test_failed_scheduling_message_without_preemption_and_without_nodes() -> None:
    statuses = {"a": Status("NodeResourcesFit", ("Insufficient cpu",), True)}
    assert fit_error_message(1, statuses, preemption_policy="Never") == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: not eligible due to preemptionPolicy=Never."
    )
    assert fit_error_message(0, {}) == "no nodes available to schedule pods"


def test_only_a_share_of_large_clusters_is_searched() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(500) == 230
    assert num_feasible_nodes_to_find(5000) == 500
    assert num_feasible_nodes_to_find(150) == 100


def test_assumed_pod_is_seen_by_the_next_decision() -> None:
    s = cluster(node("n1", cpu="1"))
    first = pod("a", cpu="800m")
    decision = schedule_pod(first, s)
    assert decision.node == "n1"
    s.add_pod(PodInfo.from_pod(first, "n1"))
    assert schedule_pod(pod("b", cpu="800m"), s).node is None
    s.remove_pod("ns/a")
    assert schedule_pod(pod("b", cpu="800m"), s).node == "n1"


def test_node_info_survives_node_updates_and_orphans_wait_for_their_node() -> None:
    s = ClusterSnapshot()
    s.add_pod(PodInfo.from_pod(pod("early", cpu="1", node_name="late")))
    info = s.set_node(node("late"))
    assert info.requested.milli_cpu == 1000
    info = s.set_node(node("late", cpu="8"))
    assert info.requested.milli_cpu == 1000 and info.allocatable.milli_cpu == 8000
    assert isinstance(s.nodes["late"], NodeInfo)


# ---------------------------------------------------------------- queue


async def test_queue_pops_by_priority_then_arrival() -> None:
    q = SchedulingQueue()
    q.add("ns/low", pod("low"))
    q.add("ns/high", pod("high", priority=10))
    q.add("ns/low2", pod("low2"))
    assert [(await q.pop()).key for _ in range(3)] == ["ns/high", "ns/low", "ns/low2"]


async def test_unschedulable_pods_wait_for_a_helpful_event() -> None:
    now = [0.0]
    q = SchedulingQueue(clock=lambda: now[0], initial_backoff=1.0)
    q.add("ns/p", pod("p"))
    queued = await q.pop()
    q.add_unschedulable(queued, {"NodeAffinity"})
    assert q.pending_counts()["unschedulable"] == 1
    q.move_all(frozenset({"NodeResourcesFit"}))  # a deleted pod cannot fix a selector
    assert q.pending_counts()["unschedulable"] == 1
    q.move_all()
    assert q.pending_counts() == {"active": 0, "backoff": 1, "unschedulable": 0}
    now[0] = 1.5
    assert (await q.pop()).key == "ns/p"


async def test_event_during_the_cycle_sends_the_pod_to_backoff() -> None:
    q = SchedulingQueue()
    q.add("ns/p", pod("p"))
    queued = await q.pop()
    q.move_all()  # e.g. a node was added while the pod was being decided
    q.add_unschedulable(queued, {"NodeResourcesFit"})
    assert q.pending_counts()["backoff"] == 1


async def test_long_unschedulable_pods_are_flushed() -> None:
    now = [0.0]
    q = SchedulingQueue(clock=lambda: now[0], flush_after=30.0)
    q.add("ns/p", pod("p"))
    q.add_unschedulable(await q.pop(), {"NodeAffinity"})
    now[0] = 31.0
    q.flush()
    assert (await q.pop()).key == "ns/p"


async def test_pop_moves_due_backoff_pods_but_leaves_the_unschedulable_pool_to_flush() -> None:
    # pop runs once per scheduling cycle: it must not walk thousands of parked pods
    now = [0.0]
    q = SchedulingQueue(clock=lambda: now[0], flush_after=30.0)
    q.add("ns/parked", pod("parked"))
    q.add_unschedulable(await q.pop(), {"NodeAffinity"})
    q.add("ns/retry", pod("retry"))
    q.add_backoff(await q.pop())
    now[0] = 31.0
    assert (await q.pop()).key == "ns/retry"
    assert q.pending_counts() == {"active": 0, "backoff": 0, "unschedulable": 1}
    q.flush()
    assert (await q.pop()).key == "ns/parked"
