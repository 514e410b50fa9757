"""Learning the API servers from the ``default/kubernetes`` Endpoints, as k3s's agent does
(``pkg/agent/tunnel``: it watches that Endpoints object and hands every address to its load
balancer). Each API server keeps itself listed there while it lives (see
``api.services.kubernetes``), so an agent told of one server finds the others and can fail
over to them (:class:`~setpoint.client.servers.ServerList`)."""

from __future__ import annotations

from collections.abc import Sequence

from setpoint.client.api import ENDPOINTS, ApiClient, Obj
from setpoint.client.informer import EventHandler, Informer
from setpoint.client.servers import ServerList, endpoint_urls


async def follow_endpoints(client: ApiClient, servers: ServerList, given: Sequence[str]) -> None:
    """Keep ``servers`` equal to the API servers the ``default/kubernetes`` Endpoints list
    plus the ``given`` ones (the command line's: a way back in should all listed ones go),
    until cancelled."""
    informer = Informer(
        client, ENDPOINTS, namespace="default", field_selector="metadata.name=kubernetes"
    )

    def changed(endpoints: Obj) -> None:
        servers.update([*endpoint_urls(endpoints), *given])

    informer.add_handler(EventHandler(on_add=changed, on_update=lambda old, new: changed(new)))
    await informer.run()
