"""The relay in cluster mode, sans-I/O, on the simulated network: it numbers nothing itself, confirms
only what the cluster stored, and refuses with "not now" while the cluster is away (protocol.md 22.6).

`ClusterSimNet` plays the cluster's part by its contract (JetStream's, as cluster/bridge.py uses it):
each published message gets the next seq of its room's stream unless its (user, msg_id) is there
already, and every stored message is fed back to the relay in stream order. The real cluster is in
tests/cluster/."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.protocol.errors import ErrorCode
from labchat.server.backplane import ClusterBackplane
from labchat.server.relay import Relay
from labchat.server.store import Store, StoredMessage
from labchat.server.tickets import TicketBook

from ..protocol.sim import SimNet

ROOM = m.DEFAULT_ROOM


class ClusterSimNet(SimNet):
    """SimNet whose relay is one relay of a cluster; `cluster_up` False holds every publish."""

    def __init__(self, tmp_path: Path) -> None:
        self.stream: list[StoredMessage] = []
        self.cluster_up = True
        super().__init__(tmp_path)

    def start_relay(self) -> None:
        store = Store(self.tmp_path / "server.db", scrypt_n=2**10)
        channel = ServerChannel(self.key)
        tickets = TicketBook(bytes(range(32)), channel.public_key)
        self.relay = Relay(store, channel, self.relay_config, tickets, ClusterBackplane())

    @property
    def backplane(self) -> ClusterBackplane:
        assert self.relay is not None and self.relay.backplane is not None
        return self.relay.backplane

    def step(self) -> bool:
        self._drain()  # what a test made the relay queue, before the clock moves on
        moved = super().step()
        self._drain()
        return moved

    def _drain(self) -> None:
        """Publish the relay's outbox (cluster up), then flush: as the bridge does after a flush, and
        as the transport flushes after anything is fed to the relay."""
        if self.cluster_up and self.backplane.outbox:
            self.publish(self.backplane.take_outbox())
        self._flush()

    def publish(self, outgoing: list) -> None:  # type: ignore[type-arg]
        relay = self.relay
        assert relay is not None
        for out in outgoing:
            key = (m.name_key(out.user), out.msg_id)
            known = [s for s in self.stream if (m.name_key(s.user), s.msg_id) == key]
            if known:
                relay.room_message_published(out.room, out.user, out.msg_id, known[0].seq, self.now)
                continue
            stored = StoredMessage(out.room, len(self.stream) + 1, out.ts_ms, out.user, out.text, out.flags,
                                   out.msg_id)  # fmt: skip
            self.stream.append(stored)
            relay.room_message_published(out.room, out.user, out.msg_id, stored.seq, self.now)
            relay.room_message_stored(stored, self.now)


def test_a_message_is_confirmed_only_once_the_cluster_stored_it(tmp_path: Path) -> None:
    net = ClusterSimNet(tmp_path)
    ana, bob = net.add_client("ana"), net.add_client("bob")
    net.run_until(lambda: net.logged_in("ana", "bob"))
    net.cluster_up = False
    ana.conn.say("hello", net.now)
    net.run_until(lambda: bool(net.backplane.outbox), limit_s=2)
    net.run_for(1.0)
    assert not ana.of(ev.MessageDelivered) and not bob.of(ev.MessageReceived)
    assert net.relay is not None and net.relay.store.last_seq(ROOM) == 0  # nothing numbered here
    net.cluster_up = True
    net.run_until(lambda: bool(bob.of(ev.MessageReceived)), limit_s=2)
    assert [(e.seq, e.text) for e in ana.of(ev.MessageDelivered)] == [(1, "hello")]
    assert [(e.seq, e.user, e.text) for e in bob.of(ev.MessageReceived)] == [(1, "ana", "hello")]
    assert [s.text for s in net.relay.store.messages_after(ROOM, 0, 10)] == ["hello"]


def test_lines_from_other_relays_reach_everyone_here_once(tmp_path: Path) -> None:
    net = ClusterSimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    relay = net.relay
    assert relay is not None
    remote = StoredMessage(ROOM, 1, 1_700_000_000_000, "zed", "from afar", 0, 77)
    net.stream.append(remote)  # another relay published it
    relay.room_message_stored(remote, net.now)
    relay.room_message_stored(remote, net.now)  # the stream read again after a reconnection
    net.run_until(lambda: bool(ana.of(ev.MessageReceived)), limit_s=2)
    net.run_for(0.5)
    assert [(e.seq, e.user, e.text) for e in ana.of(ev.MessageReceived)] == [(1, "zed", "from afar")]
    assert relay.store.find_message("zed", 77) == remote
    ana.conn.say("and here", net.now)
    net.run_until(lambda: bool(ana.of(ev.MessageDelivered)), limit_s=2)
    assert ana.of(ev.MessageDelivered)[0].seq == 2  # the stream numbers it, after the remote one


def test_while_the_cluster_is_unreachable_lines_are_refused_and_kept(tmp_path: Path) -> None:
    net = ClusterSimNet(tmp_path)
    ana = net.add_client("ana")  # announces CAP_FAILOVER: CLUSTER_UNAVAILABLE
    old = ClientConfig().capabilities & ~m.CAP_FAILOVER
    bob = net.add_client("bob", config=ClientConfig(capabilities=old))  # RATE_LIMITED
    net.run_until(lambda: net.logged_in("ana", "bob"))
    relay = net.relay
    assert relay is not None
    relay.set_cluster_reachable(False, net.now)
    ana.conn.say("one", net.now)
    ana.conn.say("two", net.now)
    bob.conn.say("three", net.now)
    net.run_until(lambda: bool(ana.of(ev.ServerNotice) and bob.of(ev.ServerNotice)), limit_s=2)
    assert ana.of(ev.ServerNotice)[0].code == ErrorCode.CLUSTER_UNAVAILABLE
    assert bob.of(ev.ServerNotice)[0].code == ErrorCode.RATE_LIMITED
    assert net.backplane.refused == 3 and not net.stream
    net.run_for(3.0)  # the clients try again after retry_after_ms; still refused, still kept
    assert not net.stream and not ana.of(ev.MessageFailed) and not bob.of(ev.MessageFailed)
    assert len(ana.of(ev.ServerNotice)) == 1  # said once, not per line
    relay.set_cluster_reachable(True, net.now)
    net.run_until(lambda: len(ana.of(ev.MessageDelivered)) == 2 and bool(bob.of(ev.MessageDelivered)), 5)
    assert [s.text for s in net.stream if s.user == "ana"] == ["one", "two"]  # in the order typed
    assert len(net.stream) == 3


def test_a_refused_publish_refuses_what_the_sender_sent_behind_it(tmp_path: Path) -> None:
    """The cluster did not store a line in time: it and the sender's next lines are refused, so the
    resent line cannot land after a later one."""
    net = ClusterSimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    relay = net.relay
    assert relay is not None
    net.cluster_up = False
    ana.conn.say("first", net.now)
    net.run_until(lambda: bool(net.backplane.outbox), limit_s=2)
    first = net.backplane.take_outbox()[0]
    relay.room_message_refused(first.room, first.user, first.msg_id, "not stored in time", net.now)
    ana.conn.say("second", net.now)  # sent before the refusal reached the client
    net.run_for(0.05)
    assert not net.backplane.outbox  # refused too: the window of retry_after_ms
    net.cluster_up = True
    net.run_until(lambda: len(ana.of(ev.MessageDelivered)) == 2, limit_s=5)
    assert [s.text for s in net.stream] == ["first", "second"]


def test_a_resend_the_cluster_knew_long_ago_is_confirmed_from_the_replica(tmp_path: Path) -> None:
    """The cluster answers "duplicate" for a line this relay has in its replica but no longer in
    memory: the sender is confirmed with the original seq, nothing is stored again."""
    net = ClusterSimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    relay = net.relay
    assert relay is not None
    counter = ana.conn._msg_counter
    ana.conn.say("long ago", net.now)
    net.run_until(lambda: bool(ana.of(ev.MessageDelivered)), limit_s=2)
    relay._recent_ids.clear()  # forgotten in memory (a restart, or 100 000 lines since)
    relay.online_by_key["ana"].fresh_says = 0  # and no longer checked against the store at once
    ana.conn._msg_counter = counter  # the same msg_id again
    ana.conn.say("long ago", net.now)
    net.run_until(lambda: len(ana.of(ev.MessageDelivered)) == 2, limit_s=2)
    first, again = ana.of(ev.MessageDelivered)
    assert (again.local_id, again.seq) == (first.local_id, first.seq) == (first.local_id, 1)
    assert len(net.stream) == 1 and not net.backplane.awaiting


def test_logins_wait_while_the_relay_catches_up(tmp_path: Path) -> None:
    """A starting relay answers LOGIN "busy, try again" until its replica has caught up (the bridge
    says when); the client tries again by itself and gets in."""
    net = ClusterSimNet(tmp_path)
    relay = net.relay
    assert relay is not None
    net.backplane.ready = False
    ana = net.add_client("ana")
    net.run_until(lambda: bool(ana.of(ev.LoginQueued)), limit_s=2)
    for _ in range(10):  # 20 s of catching up: longer than the client's connect timeout
        net.run_for(2.0)
        relay.cluster_starting(net.now)
    assert not ana.of(ev.LoggedIn) and not ana.of(ev.LoginRefused)
    relay.cluster_ready(net.now)
    net.run_until(lambda: net.logged_in("ana"), limit_s=5)
