"""Refuse URLs that could turn the crawler against its own network.

A crawler running inside a cluster can reach the cloud metadata service and internal
services; a link in a feed must not be able to make it do so. Every URL (and every
redirect hop) is checked: allowed scheme, and every address its host resolves to is public.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from twin_lib.crawl.errors import CrawlError

HTTP_SCHEMES = frozenset({"http", "https"})
GIT_SCHEMES = frozenset({"http", "https", "git"})

# Resolve to link-local or private ranges anyway, but named so the error is explicit.
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_addresses(host: str, port: int) -> list[str]:
    """All addresses the host resolves to; an unresolvable host is a crawl error."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise CrawlError(host, f"cannot resolve host ({exc}); check the URL") from exc
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, schemes: frozenset[str], allow_private: bool) -> str:
    """Return the URL if it may be fetched, else raise ``CrawlError`` saying why."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise CrawlError(
            url, f"scheme {parts.scheme!r} is not allowed; use one of {sorted(schemes)}"
        )
    host = parts.hostname
    if not host:
        raise CrawlError(url, "URL has no host")
    if allow_private:
        return url
    if host.lower() in _METADATA_HOSTS:
        raise CrawlError(url, "cloud metadata hosts are never crawled")
    default_port = {"http": 80, "https": 443, "git": 9418}.get(parts.scheme, 443)
    blocked = [a for a in resolve_addresses(host, parts.port or default_port) if not _is_public(a)]
    if blocked:
        raise CrawlError(
            url,
            f"host resolves to non-public address(es) {blocked}; set "
            "features.crawl.allow_private_addresses=true only for trusted networks",
        )
    return url
