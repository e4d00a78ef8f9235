"""What kind of client a lock was given, with no I/O: flavour, cluster, socket timeout.

Everything that depends only on the client's class is decided once per class
and kept (:func:`client_facts`), so that building a lock per use (``with
redis_lock.Lock(conn, name):``) costs about what redis-py's ``lock()`` does.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._exceptions import InvalidArgument, InvalidArgumentType
from .typing import AsyncRedisClient, RedisClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

__all__ = [
    "UNKNOWN",
    "AsyncClusterClient",
    "AsyncCommandPipeline",
    "AsyncPipeliningClient",
    "ClusterClient",
    "CommandPipeline",
    "PipeliningClient",
    "accepted_types",
    "check_client",
    "client_socket_timeout",
    "cluster_client_types",
    "is_cluster_client",
    "public_name",
]

#: Marker for "the client's socket timeout is not known".
UNKNOWN: Final = object()


def accepted_types(flavour: str) -> tuple[type, ...]:
    """The client classes ``strict=True`` accepts for ``flavour``: redis-py's, and valkey-py's when in use.

    Only modules already imported are looked at: a valkey client implies valkey was imported.
    """
    types: list[type] = []
    names = ("redis.asyncio", "valkey.asyncio") if flavour == "async" else ("redis", "valkey")
    for module, name in zip(names, ("Redis", "Valkey"), strict=True):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            types.append(cls)
    types.extend(cluster_client_types(flavour))
    return tuple(types)


#: The (client class, strict, flavour, needs_commands) combinations already checked and found good.
_CHECKED: Final[set[tuple[type, bool, str, bool]]] = set()


def check_client(client: object, *, strict: bool, flavour: str, needs_commands: bool = False) -> None:
    """Reject what cannot be this flavour's client. Under ``strict`` (the default) only known client classes pass.

    With ``strict=False`` any object passes, as in 4.x (whose own tests build
    ``Lock(object(), ...)``), except the other flavour's client; ``needs_commands``
    (for ``reset_all``, which has no ``strict``) also requires ``evalsha`` and ``scan``.
    The answer depends on the client's class only, so a class that passed once
    passes again without a look (construction is on the hot path).
    """
    key = (type(client), strict, flavour, needs_commands)
    if key in _CHECKED:
        return
    _check_client(client, strict=strict, flavour=flavour, needs_commands=needs_commands)
    _CHECKED.add(key)


def _check_client(client: object, *, strict: bool, flavour: str, needs_commands: bool) -> None:
    # The other flavour's client is named first, even under strict: the fix is the other class.
    is_async = inspect.iscoroutinefunction(getattr(client, "execute_command", None))
    if is_async != (flavour == "async") and callable(getattr(client, "evalsha", None)):
        other = "AsyncLock" if is_async else "Lock"
        kind = "an asyncio" if is_async else "a synchronous"
        raise InvalidArgumentType(
            f"redis_client is {kind} client ({type(client).__qualname__}); use redis_lock.{other} with it",
            argument="redis_client",
        )
    accepted = accepted_types(flavour)
    if strict and not isinstance(client, accepted):
        names = ", ".join(f"{t.__module__}.{t.__qualname__}" for t in accepted)
        expected = (
            "redis.asyncio.Redis or valkey.asyncio.Valkey"
            if flavour == "async"
            else "redis.Redis or valkey.Valkey"
        )
        raise InvalidArgument(
            f"redis_client must be a {expected} (or cluster) client. Use strict=False if you know what "
            f"you're doing. Expected one of: {names}; got {type(client).__module__}.{type(client).__qualname__}.",
            argument="redis_client",
        )
    if needs_commands and not all(callable(getattr(client, name, None)) for name in ("evalsha", "scan")):
        raise InvalidArgumentType(
            f"redis_client must be a Redis client with evalsha() and scan() methods, got {type(client).__qualname__}",
            argument="redis_client",
        )


#: Cluster client classes, as (module, class name): looked up in ``sys.modules``
#: only, so checking a client never imports a library the caller does not use.
_CLUSTER_CLASSES: Final = (
    ("redis.cluster", "RedisCluster"),
    ("redis.asyncio.cluster", "RedisCluster"),
    ("valkey.cluster", "ValkeyCluster"),
    ("valkey.asyncio.cluster", "ValkeyCluster"),
)


def cluster_client_types(flavour: str | None = None) -> tuple[type, ...]:
    """The Redis Cluster client classes of redis-py and valkey-py that are imported.

    ``flavour`` ``"sync"`` or ``"async"`` keeps only that flavour's classes.
    """
    found: list[type] = []
    for module, name in _CLUSTER_CLASSES:
        if flavour is not None and (".asyncio." in module) != (flavour == "async"):
            continue
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


#: Whether each client class seen so far is a cluster client.
_CLUSTER_BY_CLASS: Final[dict[type, bool]] = {}


def is_cluster_client(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster (so a lock's keys need a hash tag); decided once per class."""
    cls = type(client)
    known = _CLUSTER_BY_CLASS.get(cls)
    if known is None:
        # An instance of a cluster class implies its module is imported, so the answer cannot change.
        known = _CLUSTER_BY_CLASS[cls] = isinstance(client, cluster_client_types())
    return known


class ClusterClient(RedisClient, Protocol):
    """A synchronous cluster client: SCAN runs on every primary through ``scan_iter``.

    A missing script is sent with EVAL, which runs and caches it on the one node
    that serves the keys: SCRIPT LOAD would go to every primary, and fail while
    any of them is down.
    """

    def scan_iter(self, match: Any = None, count: Any = None) -> Iterator[Any]: ...

    def eval(self, script: str, numkeys: int, /, *keys_and_args: str) -> object: ...


class AsyncClusterClient(AsyncRedisClient, Protocol):
    """An asyncio cluster client: as :class:`ClusterClient`."""

    def scan_iter(self, match: Any = None, count: Any = None) -> AsyncIterator[Any]: ...

    def eval(self, script: str, numkeys: int, /, *keys_and_args: str) -> Awaitable[object] | Any: ...


@functools.lru_cache(maxsize=16)
def _default_socket_timeout(connection_class: type) -> object:
    # The first __init__ up the MRO that declares socket_timeout has its default;
    # classes whose __init__ only forwards **kwargs (redis-py's asyncio and TCP
    # connections) are walked past.
    for cls in connection_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters
        except (TypeError, ValueError):
            return UNKNOWN
        parameter = parameters.get("socket_timeout")
        if parameter is not None:
            return UNKNOWN if parameter.default is inspect.Parameter.empty else parameter.default
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return UNKNOWN
    return UNKNOWN


def client_socket_timeout(client: object) -> object:
    """The socket timeout a client's connections use; :data:`UNKNOWN` if it cannot be told.

    Reads the client's settings only (no I/O), the same way for the sync and
    asyncio clients of redis-py and valkey-py: the connection pool's, or on a
    cluster client the keyword arguments it passes to every node's connections.
    """
    if is_cluster_client(client):
        return _cluster_socket_timeout(client)
    pool = getattr(client, "connection_pool", None)
    kwargs: dict[str, object] | None = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict) and "socket_timeout" in kwargs:
        return kwargs["socket_timeout"]
    connection_class = getattr(pool, "connection_class", None)
    if isinstance(connection_class, type):
        return _default_socket_timeout(connection_class)
    return UNKNOWN


def _cluster_socket_timeout(client: object) -> object:
    # What the client passes to every node's connections, else a known node's own
    # settings: the sync client's per-node Redis, or the asyncio node's
    # connection class (asyncio nodes are known once the client has initialised).
    nodes = getattr(client, "nodes_manager", None)
    kwargs: dict[str, object] | None
    kwargs = getattr(nodes, "connection_kwargs", None) or getattr(client, "connection_kwargs", None)
    if isinstance(kwargs, dict) and "socket_timeout" in kwargs:
        return kwargs["socket_timeout"]
    get_nodes: Callable[[], Iterable[object]] | None = getattr(client, "get_nodes", None)
    for node in get_nodes() if callable(get_nodes) else ():
        inner = getattr(node, "redis_connection", None) or getattr(node, "valkey_connection", None)
        if inner is not None:
            return client_socket_timeout(inner)
        connection_class = getattr(node, "connection_class", None)
        if isinstance(connection_class, type):
            return _default_socket_timeout(connection_class)
    return UNKNOWN


class CommandPipeline(Protocol):
    """The non-transactional pipeline of a synchronous client (redis-py's or valkey-py's ``Pipeline``)."""

    def execute_command(self, *args: Any, **options: Any) -> object: ...

    def execute(self, raise_on_error: bool = ...) -> list[Any]: ...


class PipeliningClient(RedisClient, Protocol):
    """A synchronous client that also makes pipelines: what ``wait_replicas`` needs.

    Private on purpose: :class:`~redis_lock.typing.RedisClient` does not grow a
    ``pipeline`` method for everyone.
    """

    def pipeline(self, transaction: bool = ..., shard_hint: Any = ...) -> CommandPipeline: ...


class AsyncCommandPipeline(Protocol):
    """The non-transactional pipeline of an asyncio client."""

    def execute_command(self, *args: Any, **options: Any) -> object: ...

    def execute(self, raise_on_error: bool = ...) -> Awaitable[list[Any]]: ...


class AsyncPipeliningClient(AsyncRedisClient, Protocol):
    """An asyncio client that also makes pipelines: what ``wait_replicas`` needs."""

    def pipeline(self, transaction: bool = ..., shard_hint: Any = ...) -> AsyncCommandPipeline: ...


def public_name(cls: type) -> str:
    """A class's name for ``repr()``: ``redis_lock.Lock``, not the private module it is defined in."""
    module = cls.__module__
    if module.startswith("redis_lock._"):
        module = "redis_lock"
    return f"{module}.{cls.__qualname__}"
