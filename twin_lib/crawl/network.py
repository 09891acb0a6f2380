"""The fetcher's network layer: connections pinned to vetted addresses, under a deadline.

httpx resolves host names itself, so checking a URL's addresses beforehand leaves a gap:
a name can answer with a public address to the check and a private one to the connection
(DNS rebinding). Here the httpcore network backend is the one place that resolves: it
vets the addresses and connects to exactly those, while TLS still verifies and sends SNI
for the name in the URL. Every connect, read and write is also bounded by the deadline
of the fetch in progress, so a server that trickles a byte a second is cut off on time.
"""

from __future__ import annotations

import time
import typing

import httpcore
import httpx

from twin_lib.crawl.safety import vetted_addresses


class DeadlineBackend(httpcore.NetworkBackend):
    """Resolves and vets each host once per connection; bounds all I/O by ``deadline``."""

    def __init__(self, *, allow_private: bool) -> None:
        self._backend = httpcore.SyncBackend()
        self._allow_private = allow_private
        self.deadline: float | None = None

    def bounded(self, timeout: float | None) -> float | None:
        """The smaller of an I/O timeout and the time left; a timeout once it has passed."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch deadline has passed")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        label = f"{host}:{port}"
        addresses = vetted_addresses(host, port, allow_private=self._allow_private, label=label)
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                stream = self._backend.connect_tcp(
                    address, port, self.bounded(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self)
        raise error or httpcore.ConnectError(f"{label}: no address to connect to")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, backend: DeadlineBackend) -> None:
        self._stream = stream
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._backend.bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._backend.bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._backend.bounded(timeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, bounded), self._backend
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


def pinned_transport(backend: DeadlineBackend) -> httpx.HTTPTransport:
    """An httpx transport whose connection pool uses ``backend`` for every connection.

    httpx exposes no network-backend option, so the transport's pool is replaced by one
    built the same way (default TLS verification, HTTP/1.1) with the backend plugged in.
    """
    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        network_backend=backend,
    )
    return transport
