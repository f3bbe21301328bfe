"""Client addresses and address lists. Pure: the server passes in the peer and the header."""

from __future__ import annotations

import ipaddress
from typing import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    # An IPv4 client seen through a dual-stack socket arrives as ::ffff:a.b.c.d; match it as IPv4.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(addr: Address | None, networks: Iterable[Network]) -> bool:
    if addr is None:
        return False
    return any(addr.version == net.version and addr in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: Iterable[Network]) -> str:
    """The client's address: the TCP peer, unless that peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read right to left, skipping trusted hops; the first
    untrusted address is the client. A spoofed leftmost entry is therefore never believed.
    """
    trusted = tuple(trusted_proxies)
    peer_addr = parse_address(peer or "")
    if peer_addr is None:
        return peer or ""
    if not forwarded_for or not in_networks(peer_addr, trusted):
        return str(peer_addr)
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    client = peer_addr
    for hop in reversed(hops):
        addr = parse_address(hop)
        if addr is None:
            break  # a garbage hop: stop at the last address we could trust
        client = addr
        if not in_networks(addr, trusted):
            break
    return str(client)


def parse_allowlist(entries: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) to networks; IPv4-mapped IPv6 ranges are folded to IPv4."""
    out = []
    for entry in entries:
        net = ipaddress.ip_network(entry.strip(), strict=False)
        if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None \
                and net.prefixlen >= 96:
            net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
        out.append(net)
    return tuple(out)


def address_allowed(address: str, allowlist: Iterable[Network]) -> bool:
    """An empty list means no restriction (SPEC 3); otherwise the address must fall in a range."""
    networks = tuple(allowlist)
    return not networks or in_networks(parse_address(address), networks)
