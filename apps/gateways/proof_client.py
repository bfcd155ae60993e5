"""The equivalence proof's HTTP client: keep-alive connections to the proxy under proof, one per
client address and thread (the proof sends from several threads).

A large proof sends over a hundred thousand requests. A new connection for each made most of the
cost: each one binds its source address first (the proof picks the client's network), which makes
the kernel search for a free port among the ones the previous connections left in TIME_WAIT. Each
request is judged on its own by both proxies, so reusing a connection changes nothing the proof
checks; a connection the proxy closes (after a refusal, say) is simply opened again.

"""

import http.client
import threading

from apps.gateways.probe import unverified_tls_context

TIMEOUT_SECONDS = 10
# New connections tried for one request. An idle connection the proxy closed as the request went out
# is the usual case; with four client threads over TLS, HAProxy 2.6 also closed a fresh connection
# without an answer in about one proof run of three (its log: "CR--", the request half read).
FRESH_ATTEMPTS = 3


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
            return http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=TIMEOUT_SECONDS, source_address=(client_ip, 0)
            )
        return http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            timeout=TIMEOUT_SECONDS,
            source_address=(client_ip, 0),
            context=unverified_tls_context(),
        )

    def send(
        self, client_ip: str, method: str, target: str, headers: dict[str, str]
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        """(status, body, response headers) of one request from ``client_ip``."""
        idle = self._open()
        connection = idle.pop(client_ip, None)
        fresh_attempts = 0
        while True:
            if connection is None:
                connection, fresh_attempts = self._connect(client_ip), fresh_attempts + 1
            try:
                connection.request(method, target, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # closed before an answer: nothing was judged, so the request goes again on a new connection
                connection.close()
                if fresh_attempts >= FRESH_ATTEMPTS:
                    raise
                connection = None
                continue
            break
        if response.will_close:
            connection.close()
        else:
            idle[client_ip] = connection
        return response.status, body, response.headers

    def close(self) -> None:
        for idle in self._every_thread:
            for connection in idle.values():
                connection.close()
            idle.clear()
