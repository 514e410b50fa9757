"""What every node agent shares: the real one (:mod:`setpoint.agent`, which runs processes)
and the hollow ones (:mod:`setpoint.sim`, which run nothing) report pods the same way.

The two agents are independent components (neither imports the other), so what they share
lives here, below both: it imports :mod:`setpoint.meta` and :mod:`setpoint.client` at most.
"""
