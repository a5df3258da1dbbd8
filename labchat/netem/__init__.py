"""labchat-netem: a UDP proxy that loses, duplicates, reorders and delays datagrams on purpose.

labchat has to survive the network it runs on; this tool makes that network visibly worse, at rates
you choose and reproducibly from a seed, so users can watch the protocol cope and tests can prove it
does. See docs/netem.md.

The package is split the way the rest of labchat is: `model` is the pure, clock-free decision of
each datagram's fate; `proxy` is the thin asyncio shell with real sockets; `cli` is the command
line.

Programmatic use (other test suites)::

    proxy = await start_proxy(("127.0.0.1", 0), server_addr, up=ImpairmentConfig(loss=0.2), seed=1)
    try:
        ...  # point clients at proxy.address; read proxy.stats.up.dropped
    finally:
        await proxy.close()
"""

from .cli import main
from .model import PERFECT_PIPE, Direction, Fate, Impairment, ImpairmentConfig, direction_rng
from .proxy import DatagramEvent, DirectionStats, NetemProxy, ProxyStats, start_proxy

__all__ = [
    "PERFECT_PIPE",
    "DatagramEvent",
    "Direction",
    "DirectionStats",
    "Fate",
    "Impairment",
    "ImpairmentConfig",
    "NetemProxy",
    "ProxyStats",
    "direction_rng",
    "main",
    "start_proxy",
]
