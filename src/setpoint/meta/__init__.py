"""Value types and helpers shared by every part of setpoint; they import nothing else of it.

One home each: label and field selectors (:mod:`~setpoint.meta.labels`,
:mod:`~setpoint.meta.fields`), name and label validation (:mod:`~setpoint.meta.validation`),
resource quantities (:mod:`~setpoint.meta.quantity`), int-or-percent counts
(:mod:`~setpoint.meta.intstr`), taints and tolerations (:mod:`~setpoint.meta.taints`), required
node affinity (:mod:`~setpoint.meta.nodeaffinity`), cron schedules (:mod:`~setpoint.meta.cron`),
timestamps (:mod:`~setpoint.meta.timestamps`) and the clock (:mod:`~setpoint.meta.clock`), JSON
values (:mod:`~setpoint.meta.jsonvalue`), values as Go prints them (:mod:`~setpoint.meta.gofmt`)
and private files (:mod:`~setpoint.meta.privatefiles`).
"""
