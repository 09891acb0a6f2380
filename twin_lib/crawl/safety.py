"""Refuse URLs that could turn the crawler against its own network.

A crawler running inside a cluster can reach the cloud metadata service and internal
services; a link in a feed must not be able to make it do so. Every URL (and every
redirect hop) is checked: allowed scheme, and every address its host resolves to is public
(or, with private addresses allowed for development, at least not a metadata service).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from twin_lib.crawl.errors import CrawlError

HTTP_SCHEMES = frozenset({"http", "https"})
GIT_SCHEMES = frozenset({"http", "https", "git"})

# Named so the error is explicit; their addresses are refused below in any case.
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
# Cloud instance-metadata services (AWS, GCP, Azure, Oracle, OpenStack on link-local
# 169.254.0.0/16; AWS over IPv6; Alibaba Cloud): refused even when private addresses are
# allowed for development, since they hand out the machine's credentials.
_METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)


def _address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def _is_public(address: str) -> bool:
    ip = _address(address)
    return ip.is_global and not ip.is_multicast


def _is_metadata(address: str) -> bool:
    ip = _address(address)
    return any(ip in network for network in _METADATA_NETWORKS if ip.version == network.version)


def resolve_addresses(host: str, port: int) -> list[str]:
    """All addresses the host resolves to; an unresolvable host is a crawl error."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise CrawlError(host, f"cannot resolve host ({exc}); check the URL") from exc
    return sorted({str(info[4][0]) for info in infos})


def vetted_addresses(host: str, port: int, *, allow_private: bool, label: str) -> list[str]:
    """The addresses ``host`` may be reached at, resolved once; ``CrawlError`` if any is not.

    Connecting to exactly these addresses (not resolving the name again) is what keeps a
    name that changes its answer between check and connection (DNS rebinding) out.
    """
    if host.lower().rstrip(".") in _METADATA_HOSTS:
        raise CrawlError(label, "cloud metadata hosts are never crawled")
    addresses = resolve_addresses(host, port)
    metadata = [a for a in addresses if _is_metadata(a)]
    if metadata:
        raise CrawlError(
            label, f"host resolves to cloud metadata address(es) {metadata}; never crawled"
        )
    blocked = [] if allow_private else [a for a in addresses if not _is_public(a)]
    if blocked:
        raise CrawlError(
            label,
            f"host resolves to non-public address(es) {blocked}; set "
            "features.crawl.allow_private_addresses=true only for trusted networks",
        )
    return addresses


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
    default_port = {"http": 80, "https": 443, "git": 9418}.get(parts.scheme, 443)
    vetted_addresses(host, parts.port or default_port, allow_private=allow_private, label=url)
    return url
