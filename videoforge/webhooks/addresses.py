"""Which webhook URLs and addresses the server may contact (a guard against request forgery).

A webhook URL is chosen by a user, and the server POSTs to it from inside the deployment's
network. Left unchecked, that lets a user reach the loopback interface, the LAN, or the cloud
metadata service and read what it answers. Two checks stand between a URL and a connection:

- `check_url` at registration and again before each delivery: the URL's form, and its host when
  the host is an IP literal;
- `CheckedResolver` at connection time: every address the host name resolves to, handed to
  aiohttp as the very addresses to connect to, so a second lookup cannot answer differently
  (DNS rebinding).

A refusal reaches the caller of `ClientSession.request` as `RefusedAddress` itself, not wrapped:
aiohttp wraps only `OSError`s from a resolver (in `ClientConnectorDNSError`) and lets any other
exception through, so `RefusedAddress` is deliberately not an `OSError`. Network failures stay
`aiohttp.ClientError`s; the two never mix.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp.abc
import yarl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

# Instance metadata and credential services. They sit on link-local or otherwise unremarkable
# addresses, and answering them is the classic prize of request forgery: always refused.
CLOUD_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (older instances); ipaddress calls it global
        "168.63.129.16",  # Azure WireServer; a public address, only reachable inside Azure
    )
)

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT; not global, not private
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Deprecated, yet still routed inside some networks; ipaddress counts it as global.
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


class RefusedAddress(ValueError):
    """A URL or address webhooks may not reach; str() is a user-facing reason."""


@dataclass(frozen=True)
class Reach:
    """What a deployment allows webhooks to reach."""

    allow_http: bool = False
    # Lifts loopback, private and other non-public addresses; never link-local or metadata.
    allow_private_networks: bool = False


def check_url(url: str, reach: Reach) -> yarl.URL:
    """The URL, parsed, if its form allows delivery; no DNS lookup is made."""
    parsed = _parse(url)
    if not parsed.scheme:
        raise RefusedAddress("url: must be an absolute URL (https://host/path)")
    if parsed.scheme not in ("https", "http"):
        raise RefusedAddress("url: only https URLs are allowed")
    if parsed.scheme == "http" and not reach.allow_http:
        raise RefusedAddress("url: only https URLs are allowed (webhooks.allow_http is off)")
    if not parsed.absolute or not parsed.host:
        raise RefusedAddress("url: must name a host")
    if parsed.user is not None or parsed.password is not None:
        raise RefusedAddress("url: must not carry credentials")
    # aiohttp's TCPConnector connects to an IP-literal host without asking the resolver, so
    # CheckedResolver never sees it: literals are judged here, at every delivery.
    literal = _ip_literal(parsed.host)
    if literal is not None:
        check_address(literal, reach)
    return parsed


def _parse(url: str) -> yarl.URL:
    if len(url) > MAX_URL_LENGTH:
        raise RefusedAddress(f"url: must be at most {MAX_URL_LENGTH} characters")
    # yarl drops tabs and line breaks silently; refusing them keeps the URL that is posted to
    # the URL that was registered.
    if any(char.isspace() or not char.isprintable() for char in url):
        raise RefusedAddress("url: must not contain spaces or control characters")
    if "#" in url:
        raise RefusedAddress("url: must not carry a fragment")
    try:
        parsed = yarl.URL(url)
    except ValueError as exc:
        raise RefusedAddress(f"url: is not a valid URL ({exc})") from exc
    return parsed


def _ip_literal(host: str) -> IPAddress | None:
    """The host as an address if it is an IP literal; refuses legacy numeric IPv4 forms."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # "127.1", "2130706433" and "0x7f.0.0.1" all mean 127.0.0.1 to the C resolver: refused
    # outright, since they serve only to hide an address.
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    raise RefusedAddress(f"url: {host} is not a canonical IPv4 address")


def check_address(ip: IPAddress, reach: Reach) -> None:
    """Refuse the address unless webhooks may connect to it under `reach`."""
    reason = refusal_reason(ip, reach)
    if reason is not None:
        raise RefusedAddress(f"url: {ip} is {reason}")


def refusal_reason(ip: IPAddress, reach: Reach) -> str | None:
    """Why webhooks may not connect to the address ("a loopback address"), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = refusal_reason(embedded, reach)
            if reason is not None:
                return f"{reason} (it embeds {embedded})"
            if not _is_tunnel(ip):
                # Mapped, compatible and NAT64 forms reach the embedded address and no other.
                return None
        elif ip.teredo is not None:
            for part in ip.teredo:
                reason = refusal_reason(part, reach)
                if reason is not None:
                    return f"{reason} (it embeds {part})"
    reason = _always_refused(ip)
    if reason is None:
        reason = _refused_unless_private_allowed(ip)
        if reach.allow_private_networks:
            return None
    return reason


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, where it stands for one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_tunnel(ip: ipaddress.IPv6Address) -> bool:
    """6to4: the packet goes to a relay first, so the IPv6 address is judged as well."""
    return ip.sixtofour is not None


# In order: the first that matches names the class. Loopback comes before reserved because
# ipaddress counts ::1 as reserved (it lies in ::/8), and ::1 may be allowed.
_ALWAYS: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda ip: ip in CLOUD_METADATA_ADDRESSES, "a cloud metadata address"),
    (lambda ip: ip.is_unspecified, "an unspecified address"),
    (lambda ip: ip in _THIS_NETWORK, 'a "this network" address (0.0.0.0/8)'),
    (lambda ip: ip.is_link_local, "a link-local address"),
    (lambda ip: ip.is_multicast, "a multicast address"),
    (lambda ip: ip == _BROADCAST, "a broadcast address"),
)
_UNLESS_PRIVATE_ALLOWED: tuple[tuple[Callable[[IPAddress], bool], str], ...] = (
    (lambda ip: ip.is_loopback, "a loopback address"),
    (lambda ip: ip in _SHARED, "a shared (carrier-grade NAT) address"),
    (lambda ip: ip in _SITE_LOCAL, "a site-local address"),
    (lambda ip: ip.is_private, "a private address"),
    (lambda ip: not ip.is_global, "a non-public address"),
)


def _always_refused(ip: IPAddress) -> str | None:
    for matches, reason in _ALWAYS:
        if matches(ip):
            return reason
    if ip.is_reserved and not ip.is_loopback:
        return "a reserved address"
    return None


def _refused_unless_private_allowed(ip: IPAddress) -> str | None:
    for matches, reason in _UNLESS_PRIVATE_ALLOWED:
        if matches(ip):
            return reason
    return None


async def resolve_checked(
    host: str, port: int, reach: Reach, *, family: int = socket.AF_UNSPEC
) -> list[str]:
    """The host's addresses, in resolver order, once every one of them is allowed."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedAddress(f"url: cannot resolve {host}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address in addresses:
            continue
        # One refused address refuses the host: a name that also points inward could be
        # answered either way by the next lookup, or by the connection attempt order.
        reason = refusal_reason(ipaddress.ip_address(address), reach)
        if reason is not None:
            raise RefusedAddress(f"url: {host} resolves to {address}, {reason}")
        addresses.append(address)
    if not addresses:
        raise RefusedAddress(f"url: cannot resolve {host}")
    return addresses


class CheckedResolver(aiohttp.abc.AbstractResolver):
    """An aiohttp resolver that hands out only addresses `resolve_checked` allowed.

    `RefusedAddress` raised here reaches the caller of the request unwrapped (see the module's
    docstring); a name that does not resolve is a `RefusedAddress` too.
    """

    def __init__(self, reach: Reach) -> None:
        self.reach = reach

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        addresses = await resolve_checked(host, port, self.reach, family=family)
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        pass


def _result(host: str, address: str, port: int) -> aiohttp.abc.ResolveResult:
    ip = ipaddress.ip_address(address)
    return aiohttp.abc.ResolveResult(
        hostname=host,
        host=address,
        port=port,
        family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
        proto=socket.IPPROTO_TCP,
        # Numeric: aiohttp must not look the address up again.
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
