"""The silent-loss proxy: it forwards, then goes silent without closing anything, then
comes back. Only 127.0.0.1; no timing is asserted, only what arrives and what stays open."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bench.blackhole import BlackholeProxy
from bench.netloss_bench import tcp_state

QUIET = 0.5  # how long "nothing arrives" is watched: a harness check, not a measurement


class Upstream:
    """A TCP server that records what each connection sent and can answer on it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.received = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                self.received += data

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[BlackholeProxy]:
    p = BlackholeProxy(upstream.port)
    p.start()
    yield p
    p.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """True as soon as `predicate` holds (bounded, so a broken proxy fails, not hangs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_it_forwards_both_ways_and_spots_the_websocket(upstream, proxy):
    with connect(proxy.port) as client:
        client.sendall(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
        assert wait_for(lambda: b"Upgrade: websocket" in upstream.received)
        upstream.conns[0].sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 101")
        (pair,) = proxy.pairs()
        assert pair.websocket and pair.client_port == client.getsockname()[1]
        assert tcp_state(pair.client_port, proxy.port) == "ESTABLISHED"
        assert tcp_state(upstream.port, pair.upstream_port) == "ESTABLISHED"


def test_silent_means_nothing_passes_and_nothing_closes(upstream, proxy):
    with connect(proxy.port) as client:
        client.sendall(b"hello")
        assert wait_for(lambda: upstream.received == b"hello")
        proxy.blackhole()
        client.sendall(b" lost")
        upstream.conns[0].sendall(b"lost too")
        client.settimeout(QUIET)
        with pytest.raises(TimeoutError):  # no data, and no EOF or reset either
            client.recv(100)
        assert upstream.received == b"hello"
        (pair,) = proxy.pairs()
        assert tcp_state(pair.client_port, proxy.port) == "ESTABLISHED"
        assert tcp_state(upstream.port, pair.upstream_port) == "ESTABLISHED"

        # A connection made during the silence is accepted and goes nowhere.
        with connect(proxy.port) as late:
            late.sendall(b"anyone?")
            late.settimeout(QUIET)
            with pytest.raises(TimeoutError):
                late.recv(100)
            assert len(upstream.conns) == 1


def test_restore_aborts_the_silent_connections_and_forwards_new_ones(upstream, proxy):
    with connect(proxy.port) as client:
        client.sendall(b"a")
        assert wait_for(lambda: upstream.received == b"a")
        proxy.blackhole()
        proxy.restore()
        client.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(100) == b""
    with connect(proxy.port) as again:
        again.sendall(b"b")
        assert wait_for(lambda: upstream.received == b"ab")


def test_tcp_state_reads_the_kernel_table():
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000\n"
        "   1: 0100007F:D431 0100007F:1F90 04 00000000:00000000\n"
    )
    assert tcp_state(0x1F90, 0xD431, table) == "ESTABLISHED"
    assert tcp_state(0xD431, 0x1F90, table) == "FIN_WAIT1"
    assert tcp_state(1, 2, table) is None
