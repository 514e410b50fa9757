"""PodGC (``pkg/controller/podgc``): the decisions and the controller in
:mod:`~setpoint.controllers.podgc.controller`."""

from setpoint.controllers.podgc.controller import PodGCController

__all__ = ["PodGCController"]
