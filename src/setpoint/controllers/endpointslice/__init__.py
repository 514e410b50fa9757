"""The EndpointSlice controller (``pkg/controller/endpointslice``): the slices of every
Service with a selector, from the pods it selects. ``reconciler`` decides, ``controller``
acts."""

from setpoint.controllers.endpointslice.controller import EndpointSliceController

__all__ = ["EndpointSliceController"]
