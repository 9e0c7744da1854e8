"""Which URLs and addresses webhooks may reach, and the resolver that holds deliveries to them."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from videoforge.webhooks.addresses import (
    CLOUD_METADATA_ADDRESSES,
    CheckedResolver,
    Reach,
    RefusedAddress,
    check_address,
    check_url,
    resolve_checked,
)

ServerFactory = Callable[..., Awaitable[TestServer]]


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32) carrying `server` and the obfuscated `client`."""
    obfuscated = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | obfuscated
    return str(ipaddress.IPv6Address(value))


STRICT = Reach()
LAX = Reach(allow_http=True, allow_private_networks=True)

# Refused whatever the deployment allows.
ALWAYS_REFUSED = [
    ("169.254.169.254", "a cloud metadata address"),
    ("169.254.170.2", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("0.1.2.3", '"this network" address'),
    ("255.255.255.255", "a broadcast address"),
    ("240.0.0.1", "a reserved address"),
    ("100::1", "a reserved address"),
    # Embedded IPv4 judged: mapped, compatible, NAT64, 6to4, Teredo (obfuscated client).
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("::ffff:169.254.1.1", "a link-local address"),
    ("::ffff:224.0.0.1", "a multicast address"),
    ("::169.254.169.254", "a cloud metadata address"),
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
    ("2002:a9fe:a9fe::1", "a cloud metadata address"),
    (teredo("65.54.227.120", "169.254.169.254"), "a cloud metadata address"),
]
# Refused unless allow_private_networks.
PRIVATE = [
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("fec0::1", "a site-local address"),
    ("192.0.2.1", "a private address"),  # documentation range
    ("2001:db8::1", "a private address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("::ffff:10.0.0.1", "a private address"),
    ("::127.0.0.1", "a loopback address"),
    ("64:ff9b::7f00:1", "a loopback address"),
    ("64:ff9b::a00:1", "a private address"),
    ("2002:7f00:1::1", "a loopback address"),
    ("2002:c0a8:101::1", "a private address"),
    (teredo("65.54.227.120", "127.0.0.1"), "a loopback address"),
    (teredo("65.54.227.120", "8.8.8.8"), "a private address"),  # 2001::/32 itself
]
GLOBAL = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34", "64:ff9b::808:808"]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(("address", "kind"), ALWAYS_REFUSED + PRIVATE)
def test_refused_address_is_refused_by_default_naming_its_class(address: str, kind: str) -> None:
    with pytest.raises(RefusedAddress, match=r"^url: ") as refused:
        check_address(ip(address), STRICT)
    assert kind in str(refused.value)
    assert str(ip(address)) in str(refused.value)


@pytest.mark.parametrize(("address", "kind"), ALWAYS_REFUSED)
def test_always_refused_address_stays_refused_with_private_networks(
    address: str, kind: str
) -> None:
    with pytest.raises(RefusedAddress) as refused:
        check_address(ip(address), LAX)
    assert kind in str(refused.value)


@pytest.mark.parametrize(("address", "kind"), PRIVATE)
def test_private_address_is_allowed_with_private_networks(address: str, kind: str) -> None:
    check_address(ip(address), LAX)


@pytest.mark.parametrize("address", GLOBAL)
def test_global_address_is_allowed(address: str) -> None:
    check_address(ip(address), STRICT)


def test_embedded_address_is_named_in_the_refusal() -> None:
    with pytest.raises(RefusedAddress, match=r"loopback address \(it embeds 127\.0\.0\.1\)"):
        check_address(ip("::ffff:127.0.0.1"), STRICT)


def test_every_metadata_address_is_refused_with_private_networks() -> None:
    for address in CLOUD_METADATA_ADDRESSES:
        with pytest.raises(RefusedAddress, match="cloud metadata"):
            check_address(address, LAX)


# check_url


def test_https_url_with_a_name_and_any_port_is_allowed() -> None:
    url = check_url("https://hooks.example.com:8443/in?x=1", STRICT)
    assert url.host == "hooks.example.com" and url.port == 8443 and url.query["x"] == "1"


def test_http_url_is_refused_unless_http_is_allowed() -> None:
    with pytest.raises(RefusedAddress, match=r"only https URLs .*allow_http is off"):
        check_url("http://hooks.example.com/", STRICT)
    assert check_url("http://hooks.example.com/", Reach(allow_http=True)).scheme == "http"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/", "only https URLs"),
        ("file:///etc/passwd", "only https URLs"),
        ("mailto:hooks@example.com", "only https URLs"),
        ("hooks.example.com/in", "absolute"),
        ("//hooks.example.com/in", "absolute"),
        ("https:///in", "host"),
        ("https://user:secret@hooks.example.com/", "credentials"),
        ("https://user@hooks.example.com/", "credentials"),
        ("https://hooks.example.com/in#part", "fragment"),
        ("https://hooks.example.com/in#", "fragment"),
        ("https://hooks.example.com/a\r\nHost: x", "control characters"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),
        ("https://hooks.example.com/" + "a" * 2048, "at most 2048 characters"),
    ],
)
def test_malformed_url_is_refused(url: str, reason: str) -> None:
    with pytest.raises(RefusedAddress, match=r"^url: ") as refused:
        check_url(url, LAX)
    assert reason in str(refused.value)


def test_url_of_exactly_the_length_limit_is_allowed() -> None:
    prefix = "https://hooks.example.com/"
    check_url(prefix + "a" * (2048 - len(prefix)), STRICT)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://127.0.0.1/", "url: 127.0.0.1 is a loopback address"),
        ("https://[::1]:8443/", "url: ::1 is a loopback address"),
        ("https://10.0.0.1/", "url: 10.0.0.1 is a private address"),
        ("https://[::ffff:127.0.0.1]/", "a loopback address (it embeds 127.0.0.1)"),
        ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("https://[fe80::1%25eth0]/", "a link-local address"),
    ],
)
def test_ip_literal_host_is_checked_by_check_url(url: str, kind: str) -> None:
    with pytest.raises(RefusedAddress) as refused:
        check_url(url, STRICT)
    assert kind in str(refused.value)


def test_ip_literal_loopback_is_allowed_with_private_networks() -> None:
    assert check_url("http://127.0.0.1:8080/hooks", LAX).host == "127.0.0.1"
    with pytest.raises(RefusedAddress, match="cloud metadata"):
        check_url("http://169.254.169.254/", LAX)


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"])
def test_legacy_numeric_ipv4_host_is_refused(host: str) -> None:
    with pytest.raises(RefusedAddress, match="not a canonical IPv4 address"):
        check_url(f"http://{host}/", LAX)


# resolve_checked


async def test_localhost_is_refused_as_loopback_by_default() -> None:
    with pytest.raises(RefusedAddress, match=r"^url: localhost resolves to .*a loopback address"):
        await resolve_checked("localhost", 80, STRICT)


async def test_localhost_is_allowed_with_private_networks() -> None:
    addresses = await resolve_checked("localhost", 80, LAX)
    assert addresses and set(addresses) <= {"127.0.0.1", "::1"}
    assert len(addresses) == len(set(addresses))


async def test_ip_literal_resolves_to_itself_after_the_check() -> None:
    assert await resolve_checked("127.0.0.1", 80, LAX) == ["127.0.0.1"]
    with pytest.raises(RefusedAddress, match="cloud metadata"):
        await resolve_checked("169.254.169.254", 80, LAX)


async def test_name_that_does_not_resolve_is_refused() -> None:
    # .invalid never resolves (RFC 6761), and needs no network to say so.
    with pytest.raises(RefusedAddress, match=r"^url: cannot resolve nothing\.invalid$"):
        await resolve_checked("nothing.invalid", 443, LAX)


# CheckedResolver, end to end through aiohttp


@pytest.fixture
async def receiver(aiohttp_server: ServerFactory) -> tuple[TestServer, list[str]]:
    seen: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    server = await aiohttp_server(app, host="127.0.0.1")
    return server, seen


def checked_session(reach: Reach) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=CheckedResolver(reach), use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


async def test_resolver_refuses_localhost_by_default_and_the_receiver_sees_nothing(
    receiver: tuple[TestServer, list[str]],
) -> None:
    server, seen = receiver
    async with checked_session(STRICT) as session:
        # The caller sees RefusedAddress itself, not wrapped: it is not an OSError, and aiohttp
        # wraps only OSErrors from a resolver.
        with pytest.raises(RefusedAddress, match=r"localhost resolves to 127\.0\.0\.1") as refused:
            await session.get(f"http://localhost:{server.port}/")
    assert type(refused.value) is RefusedAddress
    assert not isinstance(refused.value, (OSError, aiohttp.ClientError))
    assert seen == []


async def test_resolver_with_private_networks_reaches_localhost(
    receiver: tuple[TestServer, list[str]],
) -> None:
    server, seen = receiver
    async with (
        checked_session(LAX) as session,
        session.get(f"http://localhost:{server.port}/") as response,
    ):
        assert response.status == 200 and await response.text() == "hello"
    assert seen == ["/"]


async def test_name_that_does_not_resolve_is_refused_through_the_session() -> None:
    async with checked_session(LAX) as session:
        with pytest.raises(RefusedAddress, match=r"cannot resolve nothing\.invalid"):
            await session.get("http://nothing.invalid/")


async def test_connection_failure_is_a_client_error_not_a_refusal() -> None:
    """An allowed address that does not answer is a network error, which callers retry."""
    with socket.socket() as bound:  # bound, never listening: the connection is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        async with checked_session(LAX) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as failed:
                await session.get(f"http://localhost:{port}/")
    assert not isinstance(failed.value, RefusedAddress)
    assert not isinstance(failed.value.os_error, RefusedAddress)
