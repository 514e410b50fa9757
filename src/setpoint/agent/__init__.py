"""The node agent and the process runtime beneath it.

A workload must outlive its agent, so the agent does not own container processes itself:
``supervisor`` is one small per-node daemon that starts them, restarts them by policy,
writes their logs in CRI format and records every exit durably; ``runtime`` is the async
client the agent talks to it through. Restarting the agent (or the supervisor) restarts
no workload, and an exit that happens while either is down is not lost.
"""
