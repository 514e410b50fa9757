"""Benchmarks for the setpoint API server: ``python -m bench [NAME ...] [--record]``.

Every benchmark starts its own ``setpoint server`` on a fresh temporary data directory,
talks to it only over HTTPS on 127.0.0.1 with the admin bearer token, and stops it again.
See ``docs/benchmarks.md`` for the method, the targets and the recorded results.
"""

BENCHMARKS = (
    "write",
    "watch",
    "list",
    "scheduler",
    "deployment",
    "job",
    "crash",
    "logflood",
    "podstartup",
    "agentoverhead",
    "memory",
    "stuckwatchers",
    "flood",
    "biglist",
    "patchstorm",
    "nodefailure",
    "seedstory",
    "supervisorloss",
    "podnet",
    "exec",
    "servicepath",
    "clusterdns",
    "nodeauth",
    "rbac",
    "leaderfailover",
    "agentfailover",
)
