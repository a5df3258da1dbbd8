"""Simulated clients: real `ChatClient`s (socket loop, timers, `ClientConnection`, channel and link),
several hundred per worker process, driven by the parent over a pipe.

A sender stamps each message with `time.monotonic()` (CLOCK_MONOTONIC, one clock for every process on
the machine) and a unique id (step, sender, number). A receiver records the latency when the client
core hands it the `MessageReceived` event, counts every id it sees, and flags a duplicate when the
room sequence number does not increase. The parent adds the counts up: a message the server confirmed
to its sender must reach every other member exactly once.

`BenchClient` differs from `ChatClient` in one place: its event hook records in place instead of
queueing events for a reader task. With 1000 clients every login is announced to every member (≈500 000
`UserJoined` events), which a queue nobody reads would keep; and one reader task per client would add
a task switch per event that no real UI pays. Everything below the hook is the unmodified client core.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ..client.core import ChatClient
from ..protocol import events as ev
from ..protocol.client import ClientConfig
from .stats import Histogram

PASSWORD = "bench-password"
#: Room text padded to this many characters: a typical chat line, not a tiny probe.
TEXT_CHARS = 80
PREFIX = "b|"
_TAG = PREFIX[:-1]
#: Logins in progress at once per worker process.
LOGIN_WINDOW = 16
#: The bench measures steady state, not first contact: a login may wait this long for a busy server.
CLIENT_CONFIG = ClientConfig(connect_timeout_s=30.0)


def user_name(index: int) -> str:
    return f"bench{index:05d}"


def room_of(index: int, rooms: int) -> int:
    """Which of the bench's rooms client `index` is in (0 for every client with one room)."""
    return index % rooms if rooms > 1 else 0


def room_name(number: int) -> str:
    """The name of bench room `number` (the room rule: lowercase, digits, '-')."""
    return f"bench-{number:03d}"


# Fixed-width fields, so a receiver reads them by slicing instead of splitting (it does so once per
# delivery, in the processes it measures): "b|" step(4) "|" sender(6) "|" number(9) "|" stamp(20) "|".
_STEP = slice(2, 6)
_ID = slice(7, 23)  # "sender|number": the message's identity, used as is as a dict key
_STAMP = slice(24, 44)


def make_text(step: int, sender: int, number: int, stamp: float) -> str:
    head = f"{PREFIX}{step % 10000:04d}|{sender:06d}|{number:09d}|{stamp:20.6f}|"
    return head + "x" * max(0, TEXT_CHARS - len(head))


def id_key(message_id: str) -> int:
    """The "sender|number" field as `message_key` numbers it."""
    sender, number = message_id.split("|")
    return message_key(int(sender), int(number))


def message_key(sender: int, number: int) -> int:
    return (sender << 32) | number


class Recorder:
    """What one worker saw during the current step (shared by its clients)."""

    def __init__(self) -> None:
        self.step = -1
        self.reset(-1)

    def reset(self, step: int) -> None:
        self.step = step
        self.step_tag = f"{step % 10000:04d}"  # as make_text writes it
        self.hist = Histogram()
        self.counts: dict[str, int] = {}  # by "sender|number" (see make_text)
        self.duplicates = 0
        self.stale = 0  # messages of an earlier step still arriving
        self.foreign = 0  # room messages that are not the bench's
        self.last_recv = 0.0
        self.last_confirm = 0.0
        self.confirmed = 0
        self.failed = 0
        self.resumed_logins = 0  # reconnects during the step (the server went quiet for a client)

    def received(self, text: str, now: float) -> bool:
        """Record one room message; True if it belongs to the current step.

        Runs once per delivery in the same processes as the clients it measures, so it is kept
        cheap (slices of fixed-width fields, the id kept as a string): the bench's own bookkeeping
        must not be what the figures show.
        """
        if not text.startswith(PREFIX) or len(text) < _STAMP.stop:
            self.foreign += 1
            return False
        if text[_STEP] != self.step_tag:
            self.stale += 1
            return False
        try:
            stamp = float(text[_STAMP])
        except ValueError:
            self.foreign += 1
            return False
        self.hist.add(now - stamp)
        key = text[_ID]
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self.last_recv = now
        return True


class BenchClient(ChatClient):
    """A `ChatClient` whose event hook records into a `Recorder` (see the module docstring)."""

    def __init__(self, host: str, port: int, index: int, recorder: Recorder, rooms: int = 1) -> None:
        #: With several rooms, each client joins one of them after logging in and talks there only.
        self.bench_room = room_name(room_of(index, rooms)) if rooms > 1 else None
        joins = (self.bench_room,) if self.bench_room else ()
        super().__init__(host, port, user_name(index), PASSWORD, config=CLIENT_CONFIG, rooms=joins)
        self.index = index
        self.room_index = room_of(index, rooms)
        self.recorder = recorder
        self.login: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.last_seq: dict[str, int] = {}  # per room: seq numbers are per room
        self.sent = 0
        self.step_received = 0
        self.sent_before = 0
        self.error: str | None = None

    def _on_event(self, event: ev.Event) -> None:  # the one override; see the module docstring
        if isinstance(event, ev.MessageReceived):
            last = self.last_seq.get(event.room, 0)
            if event.seq <= last:
                self.recorder.duplicates += 1
            self.last_seq[event.room] = max(last, event.seq)
            if not event.history and self.recorder.received(event.text, time.monotonic()):
                self.step_received += 1
        elif isinstance(event, ev.MessageDelivered):
            self.last_seq[event.room] = max(self.last_seq.get(event.room, 0), event.seq)
            self.recorder.confirmed += 1
            self.recorder.last_confirm = time.monotonic()
            self._progress.set()
        elif isinstance(event, ev.MessageFailed):
            self.recorder.failed += 1
            self._progress.set()
        elif isinstance(event, ev.LoggedIn):
            self.logged_in = True
            if event.resumed:
                self.recorder.resumed_logins += 1
            if self.bench_room is None and not self.login.done():
                self.login.set_result(None)
        elif isinstance(event, ev.RoomState):
            # In its own room (and that room current): only now may it send there.
            if event.joined and event.room == self.bench_room and not self.login.done():
                self.login.set_result(None)
        elif isinstance(event, ev.RequestFailed) and not self.login.done():
            self.error = self.error or f"{self.user}: cannot join {event.room}: {event.text}"
            self.login.set_result(self.error)
        elif isinstance(event, (ev.LoginRefused, ev.ConnectFailed, ev.Closed)):
            reason = getattr(event, "reason", type(event).__name__)
            self.error = self.error or f"{self.user}: {type(event).__name__}: {reason}"
            if not self.login.done():
                self.login.set_result(self.error)
            if isinstance(event, ev.Closed):
                self._progress.set()
                self.closed.set()


@dataclass
class WorkerSpec:
    host: str
    port: int
    indices: list[int]
    uvloop: bool = False
    max_s: float = 600.0
    profile: bool = False
    #: Clients are spread over this many rooms (`room_of`); 1: all in `lobby`, as before rooms.
    rooms: int = 1
    #: `--relays`: the relays' addresses; client `index` uses `addresses[index % len]` (round-robin).
    #: Empty: every client uses host:port.
    addresses: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class StepResult:
    """One worker's share of one step; `merge_step` adds them up."""

    sent: dict[int, tuple[int, int]] = field(default_factory=dict)  # sender -> (first, last) number
    confirmed: int = 0
    failed: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    hist: Any = None
    duplicates: int = 0
    stale: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    last_confirm: float = 0.0
    last_recv: float = 0.0
    cpu_s: float = 0.0
    closed_clients: int = 0
    drained: bool = True
    reconnecting: int = 0
    resumed_logins: int = 0
    per_client: list[tuple[int, int, int]] = field(default_factory=list)  # (index, sent, received)


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Worker:
    def __init__(self, conn: Connection, spec: WorkerSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.recorder = Recorder()
        self.clients: list[BenchClient] = []

    async def login(self, pace_per_s: float, timeout_s: float) -> dict[str, Any]:
        start = time.monotonic()
        deadline = start + timeout_s
        # Paced, and at most LOGIN_WINDOW logins in progress: every login is announced to every
        # member (O(N) each, O(N²) for the room), so a fixed pace would outrun the server at 1000.
        window = asyncio.Semaphore(LOGIN_WINDOW)

        def release(_: object) -> None:
            window.release()

        for i, index in enumerate(self.spec.indices):
            due = start + i / pace_per_s
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            try:
                await asyncio.wait_for(window.acquire(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            host, port = (self.spec.addresses[index % len(self.spec.addresses)] if self.spec.addresses
                          else (self.spec.host, self.spec.port))
            client = BenchClient(host, port, index, self.recorder, self.spec.rooms)
            client.login.add_done_callback(release)
            self.clients.append(client)
            await client.start()
        errors: list[str] = []
        if len(self.clients) < len(self.spec.indices):
            errors.append(f"only {len(self.clients)} of {len(self.spec.indices)} logins started "
                          f"within {timeout_s:g} s")
        for client in self.clients:
            try:
                outcome = await asyncio.wait_for(asyncio.shield(client.login),
                                                 max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                outcome = f"{client.user}: no login within {timeout_s:g} s"
            if outcome is not None:
                errors.append(outcome)
        return {"logged_in": len(self.clients) - len(errors), "errors": errors[:5],
                "error_count": len(errors), "elapsed_s": time.monotonic() - start}

    async def run(self, step: int, rate: float, start_at: float, duration: float,
                  drain_max_s: float, sender_below: int | None = None) -> StepResult:
        """Send `rate` msg/s for `duration` s from this worker's clients (those with an index below
        `sender_below`, or all), then drain; every client receives."""
        rec = self.recorder
        rec.reset(step)
        cpu0 = _cpu_self()
        senders = [c for c in self.clients if not c.closed.is_set()
                   and (sender_below is None or c.index < sender_below)]
        result = StepResult()
        for c in self.clients:
            c.step_received = 0
            c.sent_before = c.sent
        if start_at > time.monotonic():
            await asyncio.sleep(start_at - time.monotonic())
        end = start_at + duration
        sent = 0
        rr = 0
        first: dict[int, int] = {}
        result.first_send = time.monotonic()
        while senders and rate > 0:
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - start_at) * rate) + 1 - sent
            for _ in range(max(0, due)):
                client = senders[rr % len(senders)]
                rr += 1
                client.sent += 1
                first.setdefault(client.index, client.sent)
                client.submit(make_text(step, client.index, client.sent, time.monotonic()))
                sent += 1
            # Sleep until the next message is due (at least one loop pass, at most 5 ms).
            next_due = start_at + sent / rate
            await asyncio.sleep(min(0.005, max(0.0, next_due - time.monotonic())))
        result.last_send = time.monotonic()
        for client in senders:
            if client.index in first:
                result.sent[client.index] = (first[client.index], client.sent)
        # Drain: every message confirmed by the server, then no new receipt for a while.
        drain_end = time.monotonic() + drain_max_s
        for client in senders:
            left = drain_end - time.monotonic()
            if left <= 0:
                result.drained = False
                break
            try:
                await asyncio.wait_for(client.wait_drained(), left)
            except TimeoutError:
                result.drained = False
                break
        # Then wait until every client has every message the others sent: the parent adds up what
        # all workers sent and tells us (bounded by drain_max_s; what is missing then counts as lost).
        loop = asyncio.get_running_loop()
        sent_by_room: Counter[int] = Counter()
        for c in self.clients:
            sent_by_room[c.room_index] += c.sent - c.sent_before
        self.conn.send(("sent", dict(sent_by_room)))
        totals: dict[int, int] = (await loop.run_in_executor(None, self.conn.recv))[1]
        sent_now = {c.index: c.sent - c.sent_before for c in self.clients}
        while time.monotonic() < drain_end:
            if all(c.step_received >= totals.get(c.room_index, 0) - sent_now[c.index]
                   for c in self.clients if not c.closed.is_set()):
                break
            await asyncio.sleep(0.02)
        else:
            result.drained = False
        result.reconnecting = sum(1 for c in self.clients
                                  if not c.closed.is_set() and c.state is not ev.ConnectionState.CONNECTED)
        result.resumed_logins = rec.resumed_logins
        result.confirmed, result.failed = rec.confirmed, rec.failed
        result.counts = {id_key(k): v for k, v in rec.counts.items()}
        result.hist = rec.hist.to_state()
        result.duplicates, result.stale = rec.duplicates, rec.stale
        result.last_confirm, result.last_recv = rec.last_confirm, rec.last_recv
        result.cpu_s = _cpu_self() - cpu0
        result.closed_clients = sum(1 for c in self.clients if c.closed.is_set())
        result.per_client = [(c.index, c.sent - c.sent_before, c.step_received)
                             for c in self.clients]
        rec.reset(-1)
        return result

    async def stop(self) -> None:
        for client in self.clients:
            client.quit()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.closed.wait() for c in self.clients)), 3.0)
        for client in self.clients:
            client._shutdown()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.conn.send(("ready", len(self.spec.indices)))
        while True:
            try:
                command = await loop.run_in_executor(None, self.conn.recv)
            except (EOFError, OSError):
                return  # the parent is gone
            op = command[0]
            if op == "login":
                self.conn.send(("login", await self.login(*command[1:])))
            elif op == "run":
                self.conn.send(("run", await self.run(*command[1:])))
            elif op == "cpu":
                self.conn.send(("cpu", _cpu_self()))
            elif op == "stop":
                await self.stop()
                self.conn.send(("stopped",))
                return


def _worker_main(conn: Connection, spec: WorkerSpec) -> None:
    async def main() -> None:
        worker = Worker(conn, spec)
        try:
            await asyncio.wait_for(worker.serve(), spec.max_s)
        finally:
            for client in worker.clients:
                client._shutdown()

    profiler = None
    if spec.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with contextlib.suppress(asyncio.TimeoutError, KeyboardInterrupt):
        if spec.uvloop:
            import uvloop  # type: ignore[import-not-found]

            uvloop.run(main())
        else:
            asyncio.run(main())
    if profiler is not None:
        import pstats
        import sys

        profiler.disable()
        print(f"--- client worker profile (clients {spec.indices[0]}...) ---", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)


class WorkerPool:
    """Parent-side handle of the worker processes; every wait is bounded."""

    def __init__(self, host: str, port: int, clients: int, processes: int, *, uvloop: bool = False,
                 max_s: float = 600.0, first_index: int = 0, profile: bool = False,
                 rooms: int = 1, addresses: list[tuple[str, int]] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        processes = max(1, min(processes, clients))
        self.clients = clients
        self.first_index = first_index
        self.rooms = rooms
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for p in range(processes):
            indices = list(range(first_index + p, first_index + clients, processes))
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, name=f"labchat-bench-worker-{p}", daemon=True,
                               args=(child, WorkerSpec(host, port, indices, uvloop, max_s, profile,
                                                       rooms, list(addresses or []))))
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.pids = [p.pid for p in self._procs]
        self._gather("ready", 60.0)

    def _gather(self, kind: str, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        out = []
        for conn in self._conns:
            left = deadline - time.monotonic()
            if left <= 0 or not conn.poll(left):
                raise TimeoutError(f"a bench worker did not answer {kind!r} within {timeout:g} s")
            reply = conn.recv()
            if reply[0] != kind:
                raise RuntimeError(f"bench worker answered {reply[0]!r} to {kind!r}")
            out.append(reply[1] if len(reply) > 1 else None)
        return out

    def _send(self, command: tuple[Any, ...]) -> None:
        for conn in self._conns:
            conn.send(command)

    def login(self, pace_per_s: float, timeout_s: float) -> dict[str, Any]:
        # Each worker paces its share, so the whole pool logs in at `pace_per_s`.
        self._send(("login", pace_per_s / len(self._conns), timeout_s))
        replies = self._gather("login", timeout_s + 30.0)
        errors = [e for r in replies for e in r["errors"]]
        return {"logged_in": sum(r["logged_in"] for r in replies),
                "error_count": sum(r["error_count"] for r in replies), "errors": errors[:5],
                "elapsed_s": max(r["elapsed_s"] for r in replies)}

    def run(self, step: int, rate: float, duration: float, drain_max_s: float,
            senders: int | None = None) -> list[StepResult]:
        """One step: `senders` clients (default all) send `rate` msg/s in total; all receive."""
        senders = self.clients if senders is None else max(1, min(senders, self.clients))
        start_at = time.monotonic() + 0.2
        n = len(self._conns)
        for p, conn in enumerate(self._conns):
            share = len(range(p, senders, n)) / senders
            conn.send(("run", step, rate * share, start_at, duration, drain_max_s,
                       self.first_index + senders))
        totals: Counter[int] = Counter()
        for by_room in self._gather("sent", duration + drain_max_s + 30.0):
            totals.update(by_room)
        self._send(("expect", dict(totals)))
        return self._gather("run", drain_max_s + 30.0)

    def cpu(self) -> float:
        self._send(("cpu",))
        return float(sum(self._gather("cpu", 10.0)))

    def stop(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, RuntimeError, EOFError):
            self._send(("stop",))
            self._gather("stopped", 15.0)
        for proc in self._procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for conn in self._conns:
            conn.close()


def merge_step(results: list[StepResult], members: int, rooms: int = 1) -> dict[str, Any]:
    """Add the workers' shares up: rates, latency percentiles, lost and duplicated deliveries.

    `members`: clients during the step, spread over `rooms` rooms by `room_of` (clients 0..members-1);
    each message should reach every other member of its sender's room.
    """
    room_size = Counter(room_of(i, rooms) for i in range(members))
    counts: Counter[int] = Counter()
    sent_in_room: Counter[int] = Counter()
    hist = Histogram()
    sent = 0
    expected = 0
    lost = 0
    dup = 0
    for r in results:
        counts.update(r.counts)
        if r.hist is not None:
            hist.merge(Histogram.from_state(r.hist))
        dup += r.duplicates
    for r in results:
        for sender, (first, last) in r.sent.items():
            others = room_size[room_of(sender, rooms)] - 1
            for number in range(first, last + 1):
                sent += 1
                sent_in_room[room_of(sender, rooms)] += 1
                expected += others
                got = counts.pop(message_key(sender, number), 0)
                lost += max(0, others - got)
                dup += max(0, got - others)
    dup += sum(counts.values())  # ids nobody sent in this step: cannot happen, but would be a bug
    start = min((r.first_send for r in results), default=0.0)
    send_end = max((r.last_send for r in results), default=start)
    confirm_end = max((r.last_confirm for r in results), default=start)
    recv_end = max((r.last_recv for r in results), default=start)
    send_window = max(1e-9, send_end - start)
    confirmed = sum(r.confirmed for r in results)
    # Who is missing messages: clients that sent in this step, or clients that only listened?
    per_client = [pc for r in results for pc in r.per_client]
    lost_at_senders = lost_at_listeners = 0
    if members > 0:
        for index, own_sent, got in per_client:
            missing = max(0, sent_in_room[room_of(index, rooms)] - own_sent - got)
            if own_sent:
                lost_at_senders += missing
            else:
                lost_at_listeners += missing
    return {
        "lost_at_senders": lost_at_senders,
        "lost_at_listeners": lost_at_listeners,
        "messages_sent": sent,
        "messages_confirmed": confirmed,
        "messages_failed": sum(r.failed for r in results),
        "offered_msg_s": sent / send_window,
        "delivered_msg_s": confirmed / max(send_window, confirm_end - start),
        "deliveries": expected - lost,
        "deliveries_expected": expected,
        "deliveries_s": (expected - lost) / max(send_window, recv_end - start),
        "lost": lost,
        "duplicated": dup,
        "stale": sum(r.stale for r in results),
        "latency_ms": hist.summary_ms(),
        "clients_cpu_s": sum(r.cpu_s for r in results),
        "send_window_s": send_window,
        "drained": all(r.drained for r in results),
        "closed_clients": sum(r.closed_clients for r in results),
        "reconnecting_at_end": sum(r.reconnecting for r in results),
        "reconnects": sum(r.resumed_logins for r in results),
    }
