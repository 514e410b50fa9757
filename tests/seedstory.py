"""The seed story: the promise setpoint makes, played out on a cluster of real nodes.

A web server Deployment of 3 replicas (``python3 -m http.server`` on hostPort 8080, so one
per node; each node must be in a network namespace of its own, see :mod:`tests.cluster`)
with readiness and liveness probes runs on a cluster with one node to spare. A poller asks
every Ready replica for ``/`` ten times a second and records how many answered.
Then, one after another, each waiting until 3 replicas answer again:

1. the process of one replica is killed -> the node's supervisor restarts it;
2. one replica hangs (SIGSTOP) -> its liveness probe fails and it is restarted;
3. a pod is deleted -> the ReplicaSet replaces it;
4. a node dies (agent and processes) -> its replica is rescheduled onto the spare node.

For each fault the story reports how long fewer than 3 replicas answered and the fewest that
did. The e2e test ``tests/e2e/test_seed_story.py`` runs it with short node-loss timings;
``bench/seedstory.py`` runs it at setpoint's defaults and records the figures.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tests import objects
from tests.cluster import Cluster, manifest
from tests.support import wait_for

Obj = dict[str, Any]
REPLICAS = 3
PORT = 8080
POLL_INTERVAL = 0.1


def web_deployment() -> Obj:
    probe = {
        "httpGet": {"path": "/", "port": PORT},
        "periodSeconds": 1,
        "timeoutSeconds": 1,
        "failureThreshold": 2,
    }
    server = objects.container(
        "web",
        "python",
        command=["python3", "-m", "http.server", str(PORT), "--directory", "/tmp"],
        ports=[{"containerPort": PORT, "hostPort": PORT}],
        readinessProbe=probe,
        livenessProbe={**probe, "failureThreshold": 3},
    )
    body = objects.deployment("web", replicas=REPLICAS, containers=[server])
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    return body


@dataclass
class Outage:
    """What the clients saw during one fault."""

    fault: str
    seconds_degraded: float  # time with fewer than REPLICAS answering
    fewest_healthy: int
    recovered_after: float  # fault injected -> REPLICAS answering again


class Poller:
    """Asks every Ready replica for ``/`` every ``POLL_INTERVAL`` and records the count."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(8)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                healthy = self.healthy()
            except Exception:  # the API server itself is what failed: count none
                healthy = 0
            self.samples.append((began, healthy))
            self._stop.wait(max(0.0, POLL_INTERVAL - (time.monotonic() - began)))

    def healthy(self) -> int:
        addresses = [
            p["status"]["podIP"]
            for p in self.cluster.pods(self.namespace, "app=web")
            if not p["metadata"].get("deletionTimestamp")
            and p["status"].get("podIP")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
        ]
        return sum(self._pool.map(answers, addresses))

    def latest(self, since: float = 0.0) -> int:
        """The last count, of a poll begun at ``since`` or later (0 if none was yet)."""
        return self.samples[-1][1] if self.samples and self.samples[-1][0] >= since else 0

    def outage(self, fault: str, since: float) -> Outage:
        window = [(t, n) for t, n in self.samples if t >= since]
        degraded = 0.0
        for (t, n), (t_next, _) in itertools.pairwise(window):
            if n < REPLICAS:
                degraded += t_next - t
        bad = [t for t, n in window if n < REPLICAS]
        recovered = next((t for t, n in window if bad and t > bad[-1] and n == REPLICAS), since)
        return Outage(fault, degraded, min(n for _, n in window), recovered - since)


def answers(address: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{address}:{PORT}/", timeout=0.5) as response:
            return 1 if response.status == 200 else 0
    except OSError:
        return 0


def pod_of_web(cluster: Cluster, namespace: str) -> Obj:
    pods = [
        p
        for p in cluster.pods(namespace, "app=web")
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
    ]
    return sorted(pods, key=lambda p: p["metadata"]["name"])[0]


def main_process(cluster: Cluster, pod: Obj) -> int:
    node = cluster.node(pod["spec"]["nodeName"])
    processes = node.container_processes(pod["metadata"]["uid"])
    assert len(processes) == 1, processes
    return next(iter(processes))[0]


def run_seed_story(
    cluster: Cluster, namespace: str, *, recover_within: float = 60.0
) -> list[Outage]:
    """Play the story on ``cluster`` (at least REPLICAS + 1 nodes) in ``namespace``."""
    k = cluster.kubectl(namespace)
    k("apply", "-f", "-", input=manifest(web_deployment()))
    k("rollout", "status", "deployment/web", "--timeout=90s")

    def restarted(pod: Obj) -> Callable[[], bool]:
        name, before = pod["metadata"]["name"], restarts(pod)
        return lambda: any(
            p["metadata"]["name"] == name and restarts(p) > before
            for p in cluster.pods(namespace, "app=web")
        )

    def replaced(pod: Obj) -> Callable[[], bool]:
        return lambda: (
            pod["metadata"]["uid"]
            not in {p["metadata"]["uid"] for p in cluster.pods(namespace, "app=web")}
        )

    def kill_process() -> Callable[[], bool]:
        pod = pod_of_web(cluster, namespace)
        os.kill(main_process(cluster, pod), signal.SIGKILL)
        return restarted(pod)

    def hang_process() -> Callable[[], bool]:
        pod = pod_of_web(cluster, namespace)
        os.kill(main_process(cluster, pod), signal.SIGSTOP)
        return restarted(pod)

    def delete_pod() -> Callable[[], bool]:
        pod = pod_of_web(cluster, namespace)
        k("delete", "pod", pod["metadata"]["name"], "--wait=false")
        return replaced(pod)

    def kill_node() -> Callable[[], bool]:
        pod = pod_of_web(cluster, namespace)
        cluster.node(pod["spec"]["nodeName"]).crash()
        return replaced(pod)

    faults: list[tuple[str, Callable[[], Callable[[], bool]]]] = [
        ("process killed", kill_process),
        ("process hung (liveness)", hang_process),
        ("pod deleted", delete_pod),
        ("node killed", kill_node),
    ]
    outages = []
    with Poller(cluster, namespace) as poller:
        wait_for(lambda: poller.latest() == REPLICAS, timeout=30, what="3 replicas answering")
        for fault, inject in faults:
            since = time.monotonic()
            reacted = inject()
            wait_for(reacted, timeout=recover_within, what=f"the cluster to react to: {fault}")
            seen = time.monotonic()  # samples from here on show the reaction
            wait_for(
                lambda: (
                    poller.latest(since=seen) == REPLICAS  # noqa: B023
                    and live_replicas(cluster, namespace)
                ),
                timeout=recover_within,
                what=f"3 replicas answering again after: {fault}",
            )
            time.sleep(2 * POLL_INTERVAL)  # one more sample at full strength closes the window
            outages.append(poller.outage(fault, since))
    return outages


def restarts(pod: Obj) -> int:
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses") or [])


def live_replicas(cluster: Cluster, namespace: str) -> bool:
    live = [
        p for p in cluster.pods(namespace, "app=web") if not p["metadata"].get("deletionTimestamp")
    ]
    return len(live) == REPLICAS
