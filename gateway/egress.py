"""Where agency callbacks may go: public addresses, and the networks the
operator names in GATEWAY_CALLBACK_NETWORKS (an agency's receiver on the
city's own network, say).

An agency chooses its callback URL, and the gateway POSTs to it from inside
the city's network: without this, a URL could reach the gateway's Redis, a
cloud metadata service or an intranet host (server-side request forgery).
The URL is checked when it is registered, to tell the agency at once, and
every connection is checked again at the socket, so a name that resolves
elsewhere later (DNS rebinding) still reaches nothing it may not.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NOT_PUBLIC = "not a public address (GATEWAY_CALLBACK_NETWORKS lists the private networks allowed)"


class Egress:
    def __init__(self, networks: Iterable[str] = ()):
        # strict=False takes "10.1.2.3/16" for 10.1.0.0/16, as an operator means it.
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def allows(self, address: str) -> bool:
        """Whether a callback may connect to this IP address."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of the address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in n for n in self.networks) or (ip.is_global and not ip.is_multicast)

    async def url_problem(self, url: str) -> str | None:
        """None if every address the URL's host has now may be reached, else why not."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError, UnicodeError):
            return f"{host} does not resolve"
        for *_, sockaddr in infos:
            ip = sockaddr[0]
            if not self.allows(ip):
                return f"{ip} is {NOT_PUBLIC}" if ip == host else f"{host} resolves to {ip}, {NOT_PUBLIC}"
        return None

    def session(self, timeout_s: float) -> aiohttp.ClientSession:
        """A client whose every connection, whatever name it came from, is checked first."""
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                     connector=aiohttp.TCPConnector(socket_factory=self._socket))

    def _socket(self, addr_info) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if not self.allows(sockaddr[0]):
            # With an errno, the text survives into aiohttp's ClientConnectorError (and the dead letter).
            raise OSError(errno.EACCES, f"{sockaddr[0]} is {NOT_PUBLIC}")
        return socket.socket(family=family, type=type_, proto=proto)
