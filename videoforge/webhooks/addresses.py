"""Where webhooks may point: URL rules, address classes, and a resolver that hands aiohttp only
checked addresses (server-side request forgery).

A URL is checked when it is registered and again at every delivery, because what a name
resolves to can change. The delivery's connection goes to the very addresses checked: the
resolver below is aiohttp's only lookup, so a name cannot be rebound between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# Instance metadata services (AWS, ECS tasks, GCP and Azure share 169.254.169.254; AWS's IPv6
# one sits in fc00::/7; Alibaba's in the shared range): refused even where private networks
# are allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddress(ValueError):
    """A URL or address webhooks may not reach; the message says why, for the user.

    A ValueError, not an OSError: raised by the resolver, it reaches the caller as it is
    (aiohttp wraps only OSErrors), so a refusal is never mistaken for a network failure.
    """


@dataclass(frozen=True)
class Reach:
    """What a deployment lets webhooks reach (`[webhooks]` in the config)."""

    allow_http: bool = False
    allow_private_networks: bool = False


def check_url(url: str, reach: Reach) -> URL:
    """The URL, if its form is allowed; an IP-literal host is checked here too (aiohttp never
    asks the resolver about literals)."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedAddress(f"url: at most {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
    except ValueError:
        raise RefusedAddress("url: not a valid URL") from None
    schemes = ("https", "http") if reach.allow_http else ("https",)
    if parsed.scheme not in schemes:
        off = "" if reach.allow_http else " (webhooks.allow_http is off)"
        raise RefusedAddress(f"url: only {' and '.join(schemes)} URLs are allowed{off}")
    if not parsed.host:
        raise RefusedAddress("url: must name a host")
    if parsed.user is not None or parsed.password is not None:
        raise RefusedAddress("url: must not carry credentials")
    if parsed.fragment:
        raise RefusedAddress("url: must not have a fragment")
    literal = _literal(parsed.host)
    if literal is not None:
        check_address(literal, reach)
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(ip: IPAddress, reach: Reach) -> None:
    """Refuse an address webhooks may not reach, naming its class."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:  # what the connection reaches in the end
        check_address(embedded, reach)
        return
    kind = _always_refused(ip)
    if kind is None and not reach.allow_private_networks:
        kind = _private(ip)
    if kind is not None:
        raise RefusedAddress(f"url: {ip} is {kind}")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped, NAT64, 6to4 or Teredo (client)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def _always_refused(ip: IPAddress) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in THIS_NETWORK):
        return "an unspecified address"
    # IPv6's reserved ::/8 holds the loopback ::1, which only the private rule refuses.
    if (ip.is_reserved and not ip.is_loopback) or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "a reserved address"
    return None


def _private(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


async def resolve_checked(host: str, port: int, reach: Reach) -> list[str]:
    """Every address `host` resolves to, once each in the resolver's order, all of them
    allowed: one refused address refuses the host (`RefusedAddress`). A name that does not
    resolve raises the lookup's `socket.gaierror`."""
    literal = _literal(host)
    if literal is not None:
        check_address(literal, reach)
        return [str(literal)]
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        try:
            check_address(ipaddress.ip_address(address.split("%")[0]), reach)
        except RefusedAddress as exc:
            raise RefusedAddress(f"{exc} (what {host} resolves to)") from None
    return addresses


class CheckedResolver(AbstractResolver):
    """aiohttp's lookups, through `resolve_checked`: connections go only to checked addresses."""

    def __init__(self, reach: Reach) -> None:
        self.reach = reach

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(host, port, self.reach)
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host,
        host=address,
        port=port,
        family=family,
        proto=socket.IPPROTO_TCP,
        flags=socket.AI_NUMERICHOST,
    )
