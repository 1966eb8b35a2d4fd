"""Which endpoints a subscription may have: a record system's rest-hook must not become a way
to make the service call into its own network (SSRF).

An endpoint is https to an address on the public internet. The setting
SIP_SUBSCRIPTION_ENDPOINTS widens it, space-separated: `loopback` allows http and https to
the loopback interface (a receiver on the same machine, the tests), `private` allows https to
private, link-local and unique-local addresses (a receiver on the region's own network).
The host is resolved when the subscription is made and again before every delivery, so a
name that later points inside is refused then too; and the addresses a delivery connects to
are checked by the same rule as they are resolved for the connection (`checked_addresses`,
the sender's resolver), so a name that points elsewhere only between the check and the
connection (DNS rebinding) is refused as well.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

ALLOWANCES = ("loopback", "private")
MAX_ENDPOINT_LENGTH = 2048


class EndpointRefused(ValueError):
    pass


def parse_allowances(value: str | None) -> frozenset[str]:
    allowed = frozenset((value or "").replace(",", " ").split())
    unknown = allowed - set(ALLOWANCES)
    if unknown:
        raise ValueError(
            f"SIP_SUBSCRIPTION_ENDPOINTS holds {', '.join(ALLOWANCES)}, not {', '.join(unknown)}"
        )
    return allowed


def check_endpoint(endpoint: str, allowances: Iterable[str]) -> None:
    """Raises EndpointRefused, saying why, unless the service may deliver to `endpoint`."""
    allowed = frozenset(allowances)
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise EndpointRefused(f"the endpoint is longer than {MAX_ENDPOINT_LENGTH} characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise EndpointRefused("the endpoint is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EndpointRefused("the endpoint is an https URL")
    if parts.username or parts.password:
        raise EndpointRefused("the endpoint carries no user name or password")
    addresses = _resolved(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    for address in addresses:
        _check_address(address, parts.scheme, allowed)


def _resolved(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise EndpointRefused("the endpoint's host name does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]


def checked_addresses(addresses: Iterable[str], scheme: str, allowances: Iterable[str]) -> None:
    """Raises EndpointRefused unless every address a name resolved to may be delivered to
    over `scheme`."""
    allowed = frozenset(allowances)
    for address in addresses:
        _check_address(ipaddress.ip_address(address.split("%")[0]), scheme, allowed)


def _check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, scheme: str, allowed: frozenset[str]
) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        if "loopback" not in allowed:
            raise EndpointRefused("the endpoint is on the loopback interface")
        return  # http is allowed to loopback only, and only with the setting
    if scheme != "https":
        raise EndpointRefused("the endpoint is an https URL (http only to loopback, by setting)")
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        raise EndpointRefused("the endpoint's address is not one a receiver can have")
    if (address.is_private or address.is_link_local) and "private" not in allowed:
        raise EndpointRefused("the endpoint is on a private or link-local network")
