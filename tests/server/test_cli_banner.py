"""What the server's banner tells users to type."""

from __future__ import annotations

import ipaddress

from labchat.server.cli import addresses_for_clients


def test_a_specific_address_is_repeated() -> None:
    assert addresses_for_clients("10.1.2.3") == ["10.1.2.3"]
    assert addresses_for_clients("127.0.0.1") == ["127.0.0.1"]


def test_the_wildcard_is_replaced_by_this_machines_addresses() -> None:
    for wildcard in ("0.0.0.0", "::"):
        hosts = addresses_for_clients(wildcard)
        assert hosts and wildcard not in hosts
        for host in hosts:  # real addresses users can type (loopback only when there is no other)
            assert not ipaddress.ip_address(host).is_unspecified
