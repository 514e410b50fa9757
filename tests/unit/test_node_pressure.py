"""Node pressure conditions: the kubelet's hard eviction thresholds over measured signals,
and the conditions' reasons and messages."""

from __future__ import annotations

from pathlib import Path

from setpoint.agent.pressure import HostSignals, measure_host, node_pressure
from setpoint.client.nodes import NodePressure, node_conditions
from setpoint.meta.timestamps import rfc3339

MI = 1024 * 1024
GI = 1024 * MI
HEALTHY = HostSignals(
    memory_available=8 * GI,
    nodefs_available=50 * GI,
    nodefs_capacity=100 * GI,
    nodefs_inodes_free=5_000_000,
    nodefs_inodes=6_000_000,
    pid_max=4_194_304,
    pids_used=300,
)


def _with(**changes: int | None) -> HostSignals:
    return HostSignals(**{**HEALTHY.__dict__, **changes})


def test_healthy_host_has_no_pressure() -> None:
    assert node_pressure(HEALTHY) == NodePressure()


def test_memory_available_below_100mi_is_memory_pressure() -> None:
    assert node_pressure(_with(memory_available=99 * MI)) == NodePressure(memory=True)
    assert node_pressure(_with(memory_available=100 * MI)) == NodePressure()


def test_nodefs_available_below_10_percent_is_disk_pressure() -> None:
    assert node_pressure(_with(nodefs_available=9 * GI)) == NodePressure(disk=True)
    assert node_pressure(_with(nodefs_available=10 * GI)) == NodePressure()


def test_nodefs_inodes_free_below_5_percent_is_disk_pressure() -> None:
    assert node_pressure(_with(nodefs_inodes_free=200_000)) == NodePressure(disk=True)


def test_filesystem_without_inode_counts_is_no_pressure() -> None:
    assert node_pressure(_with(nodefs_inodes_free=0, nodefs_inodes=0)) == NodePressure()


def test_few_process_ids_left_is_pid_pressure() -> None:
    assert node_pressure(_with(pid_max=1000, pids_used=950)) == NodePressure(pid=True)
    assert node_pressure(_with(pid_max=1000, pids_used=800)) == NodePressure()


def test_unknown_signals_are_no_pressure() -> None:
    assert node_pressure(HostSignals()) == NodePressure()


def test_pressure_conditions_carry_the_kubelet_reasons() -> None:
    conditions = {
        c["type"]: c
        for c in node_conditions(0.0, None, NodePressure(memory=True, disk=True, pid=True))
    }
    assert conditions["MemoryPressure"]["status"] == "True"
    assert conditions["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert conditions["MemoryPressure"]["message"] == "kubelet has insufficient memory available"
    assert conditions["DiskPressure"]["reason"] == "KubeletHasDiskPressure"
    assert conditions["DiskPressure"]["message"] == "kubelet has disk pressure"
    assert conditions["PIDPressure"]["reason"] == "KubeletHasInsufficientPID"
    assert conditions["PIDPressure"]["message"] == "kubelet has insufficient PID available"
    assert conditions["Ready"]["status"] == "True"


def test_pressure_starting_moves_the_transition_time() -> None:
    calm = node_conditions(0.0)
    tense = {c["type"]: c for c in node_conditions(100.0, calm, NodePressure(memory=True))}
    assert tense["MemoryPressure"]["lastTransitionTime"] == rfc3339(100.0)
    assert tense["DiskPressure"]["lastTransitionTime"] == rfc3339(0.0)


def test_measure_host_reads_meminfo_loadavg_and_pid_limits(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 2048000 kB\nMemAvailable:    51200 kB\n")
    (proc / "loadavg").write_text("0.10 0.20 0.30 2/345 6789\n")
    (proc / "sys" / "kernel" / "pid_max").write_text("32768\n")
    (proc / "sys" / "kernel" / "threads-max").write_text("1000\n")
    signals = measure_host(tmp_path, proc=proc)
    assert signals.memory_available == 51200 * 1024
    assert signals.pids_used == 345
    assert signals.pid_max == 1000
    assert signals.nodefs_capacity and signals.nodefs_available is not None
    assert node_pressure(signals).memory
