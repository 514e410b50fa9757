"""The Endpoints controller (``pkg/controller/endpoint``): core/v1 Endpoints, for clients
older than EndpointSlices, of every Service with a selector."""

from setpoint.controllers.endpoints.controller import EndpointsController

__all__ = ["EndpointsController"]
