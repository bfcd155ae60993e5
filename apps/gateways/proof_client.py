"""The equivalence proof's HTTP client: keep-alive connections to the proxy under proof, one per
client address and thread (the proof sends from several threads).

A large proof sends over a hundred thousand requests. A new connection for each made most of the
cost: each one binds its source address first (the proof picks the client's network), which makes
the kernel search for a free port among the ones the previous connections left in TIME_WAIT. Each
request is judged on its own by both proxies, so reusing a connection changes nothing the proof
checks; a connection the proxy closes (after a refusal, say) is simply opened again.
"""

import http.client
import socket
import threading

from apps.gateways.probe import unverified_tls_context

TIMEOUT_SECONDS = 10
# Linux: bind() picks the address only, connect() the port (so a bound client port is no scarcer
# than an unbound one). Not in the socket module's constants on every Python.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class _Bound:
    """Connect from ``source_address`` without reserving a port at bind time."""

    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            self.sock.settimeout(self.timeout)
            self.sock.bind(self.source_address)
            self.sock.connect((self.host, self.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self.sock.close()
            raise
        if isinstance(self, http.client.HTTPSConnection):
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class _HTTP(_Bound, http.client.HTTPConnection):
    pass


class _HTTPS(_Bound, http.client.HTTPSConnection):
    pass


class ProofClient:
    def __init__(self, port: int, *, tls: bool):
        self.port, self.tls = port, tls
        self._local = threading.local()
        self._every_thread: list[dict[str, http.client.HTTPConnection]] = []

    def _open(self) -> dict[str, http.client.HTTPConnection]:
        """This thread's idle connections by client address."""
        if not hasattr(self._local, "open"):
            self._local.open = {}
            self._every_thread.append(self._local.open)
        return self._local.open

    def _connect(self, client_ip: str) -> http.client.HTTPConnection:
        if not self.tls:
            return _HTTP("127.0.0.1", self.port, timeout=TIMEOUT_SECONDS, source_address=(client_ip, 0))
        return _HTTPS(
            "127.0.0.1",
            self.port,
            timeout=TIMEOUT_SECONDS,
            source_address=(client_ip, 0),
            context=unverified_tls_context(),
        )

    def send(self, client_ip: str, method: str, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of one request from ``client_ip``."""
        idle = self._open()
        connection = idle.pop(client_ip, None)
        reused = connection is not None
        while True:
            connection = connection or self._connect(client_ip)
            try:
                connection.request(method, target, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if not reused:
                    raise
                # the proxy closed the idle connection as the request went out: nothing was answered
                connection, reused = None, False
                continue
            break
        if response.will_close:
            connection.close()
        else:
            idle[client_ip] = connection
        return response.status, body

    def close(self) -> None:
        for idle in self._every_thread:
            for connection in idle.values():
                connection.close()
            idle.clear()
