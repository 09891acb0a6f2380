"""Which sockets a process listens on, and an address to reach them "from outside".

Local servers must answer this machine only: tests list a server's listeners with psutil and
connect to a non-loopback address of this machine to prove nothing else is reachable.
"""

from __future__ import annotations

import socket

import psutil


def sockets(pid: int) -> list:
    """Internet sockets of a process and its children (psutil renamed the call in 6.0)."""
    process = psutil.Process(pid)
    found = []
    for member in (process, *process.children(recursive=True)):
        list_sockets = getattr(member, "net_connections", None) or member.connections
        found.extend(list_sockets(kind="inet"))
    return found


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP listener and every unconnected UDP socket."""
    return {
        (conn.laddr.ip, conn.laddr.port)
        for pid in pids
        for conn in sockets(pid)
        if conn.status == psutil.CONN_LISTEN or (conn.type == socket.SOCK_DGRAM and not conn.raddr)
    }


def outside_address() -> str:
    """An address of this machine that is not loopback: connections to it come "from outside"
    as far as a loopback-only listener is concerned; loopback if the machine has none."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return "127.0.0.1"
