"""Whether every executor of the flow answers: what ``GET /`` and ``GET /health`` report.

Jina's gateway answers ``GET /`` while the executors behind it are dead, and its ``/dry_run``
sends nothing through them. Here each executor's gRPC address is asked for its health (the
standard gRPC health service every Jina executor runs), and where the indexer is sharded, a
``/stats`` request through the flow says which shards answered: a shard's head stays up when
the shard dies, and would otherwise answer with the other shards' part alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from jina.serve.runtimes.servers.grpc import GRPCServer

__all__ = ["FlowHealth", "HealthReport"]

#: Seconds one executor has to answer a health check.
CHECK_TIMEOUT_SECONDS = 1.0
#: Seconds the sharded flow's ``/stats`` probe may take; a busy indexer may take longer, which
#: says nothing about its health.
PROBE_TIMEOUT_SECONDS = 2.0
#: A report younger than this is reused.
MAX_AGE_SECONDS = 1.0
UP = "up"

#: Sends ``/stats`` through the flow; returns how many indexer shards the flow has and the
#: names of those that did not answer.
ShardProbe = Callable[[], Awaitable[tuple[int, Sequence[str]]]]


@dataclass(frozen=True)
class HealthReport:
    """Each executor's state: ``"up"``, or ``"down: ..."`` saying what failed."""

    executors: Mapping[str, str]
    checked_at: float

    @property
    def healthy(self) -> bool:
        """Whether every executor answers."""
        return all(state == UP for state in self.executors.values())

    def detail(self) -> str:
        """What is wrong and what to do, for a 503's ``detail``."""
        down = [f"{name} ({state.removeprefix('down: ')})" for name, state in
                self.executors.items() if state != UP]  # fmt: skip
        return (
            f"the service cannot answer: executor {', '.join(down)} is not answering. "
            "Nothing acknowledged is lost; it answers again once the executor is restarted: "
            "`app.py serve` exits by itself for its supervisor (Docker, systemd) to restart it, "
            "exported deployments restart their containers (restart policy, Kubernetes)"
        )

    def as_json(self) -> dict[str, object]:
        """The body of ``GET /health``."""
        body: dict[str, object] = {"status": "ok" if self.healthy else "unavailable"}
        if not self.healthy:
            body["detail"] = self.detail()
        return body | {"executors": dict(self.executors)}


class FlowHealth:
    """Asks the flow's executors whether they answer; keeps the last report for a second."""

    def __init__(self, addresses: Mapping[str, Sequence[str]], probe_shards: ShardProbe) -> None:
        self.addresses = {name: list(addrs) for name, addrs in addresses.items()}
        self.probe_shards = probe_shards
        self.sharded: bool | None = None  # learnt from the first probe's answer
        self.last: HealthReport | None = None
        self._lock = asyncio.Lock()

    async def report(self, *, max_age: float = MAX_AGE_SECONDS) -> HealthReport:
        """The executors' states, checked afresh unless the last report is younger than
        ``max_age`` seconds."""
        async with self._lock:
            if self.last is None or time.monotonic() - self.last.checked_at > max_age:
                self.last = await self._check()
            return self.last

    async def _check(self) -> HealthReport:
        names = list(self.addresses)
        states = dict(zip(names, await asyncio.gather(*map(self._check_one, names)), strict=True))
        if all(state == UP for state in states.values()) and self.sharded is not False:
            missing = await self._probe()
            if missing:
                states["indexer"] = f"down: {', '.join(missing)} did not answer"
        return HealthReport(states, time.monotonic())

    async def _check_one(self, name: str) -> str:
        for address in self.addresses[name]:
            address = address.removeprefix("grpc://")
            if not await GRPCServer.async_is_ready(address, timeout=CHECK_TIMEOUT_SECONDS):
                return f"down: no answer at {address}"
        return UP

    async def _probe(self) -> Sequence[str]:
        """The indexer shards that did not answer a ``/stats`` request through the flow."""
        try:
            shards, missing = await asyncio.wait_for(self.probe_shards(), PROBE_TIMEOUT_SECONDS)
        except Exception:  # busy (timed out) or failing: the gRPC checks judge alone
            return ()
        self.sharded = shards > 1  # one shard: its gRPC check says all, no need to ask again
        return missing
