"""The resource quota controller (see :mod:`.controller`)."""

from setpoint.controllers.resourcequota.controller import ResourceQuotaController

__all__ = ["ResourceQuotaController"]
