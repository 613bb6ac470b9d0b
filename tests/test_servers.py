"""The test servers start on another port when theirs is taken between free_port() and
their bind (another process on the machine took it)."""
import socket

import pytest

import servers


@pytest.fixture
def taken_port(monkeypatch):
    """A listening socket's port, given by the first free_port() call only."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        ports = iter([port])
        real = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: next(ports, None) or real())
        yield port


@pytest.mark.parametrize("kind", [servers.RedisServer, servers.PostgresServer])
def test_a_server_whose_port_is_taken_starts_on_another(taken_port, kind):
    server = kind()
    try:
        assert server.port != taken_port
        socket.create_connection(("127.0.0.1", server.port), 5).close()
    finally:
        server.stop()
