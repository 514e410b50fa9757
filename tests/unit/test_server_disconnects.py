"""A client that goes away while its answer is being written is not a server error."""

from __future__ import annotations

from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from setpoint.api.server import APIServer


def _server_whose_handlers_fail() -> APIServer:
    server = APIServer.__new__(APIServer)  # only _serve's error handling is exercised

    async def write_to_a_closed_connection(request: web.Request) -> web.StreamResponse:
        raise ConnectionResetError("Cannot write to closing transport")

    server._dispatch = write_to_a_closed_connection  # type: ignore[method-assign]
    return server


def _request(*, closing: bool) -> web.BaseRequest:
    transport = mock.Mock()
    transport.is_closing.return_value = closing
    return make_mocked_request("GET", "/readyz", transport=transport)  # no token needed


async def test_a_vanished_client_gets_no_answer_and_no_error() -> None:
    response = await _server_whose_handlers_fail()._serve(_request(closing=True))
    assert response.status == 499  # logged as nginx does; nobody receives it


async def test_a_reset_while_the_client_is_still_there_is_an_error() -> None:
    with pytest.raises(ConnectionResetError):
        await _server_whose_handlers_fail()._serve(_request(closing=False))
