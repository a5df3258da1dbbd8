"""The client core: a `ClientConnection` driven by an asyncio UDP socket.

This is the only client module that touches a socket. Line mode (plain.py), the Textual app (tui/) and
the benchmark all use `ChatClient` and see the same events (protocol/events.py), so typed commands,
reconnects and key pinning behave the same everywhere.

The loop is aioquic's: feed the datagram, drain events, transmit, re-arm one timer.

Where the event loop can watch a socket (`add_reader`: every POSIX loop, uvloop) the client reads its
own non-blocking socket dry on each wake-up. Windows' proactor loop cannot; there the socket is handed
to `create_datagram_endpoint` instead and each datagram arrives by callback, with the sends, events and
timer still batched once per pass of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import mimetypes
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..deadline_timer import DeadlineTimer
from ..i18n import N_, _, ngettext, room_rule
from ..protocol import events as ev
from ..protocol import messages as m
from ..protocol.classroom import NO_CLASSROOM, seat_label
from ..protocol.client import ONE_ROOM, ClientConfig, ClientConnection, Phase
from ..protocol.errors import ErrorCode, LocalProtocolError
from . import commands, room_news
from .downloads import Incoming, SaveError, Source, default_downloads_dir, open_source, safe_name
from .ignore_list import IgnoreListError, load_ignored, save_ignored
from .known_servers import KnownServers
from .refusals import in_users_language


class ClientError(Exception):
    """A problem the user must fix (bad address, port in use); the message is one line for them."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """What `ChatClient.submit` did with a typed line, for the UI to show locally."""

    #: Lines to show the user right away (help text, usage errors); empty if the line was sent.
    local_lines: tuple[str, ...] = ()
    #: True when the line was a quit command.
    quit: bool = False
    #: True when the line was refused (unknown command, bad name): nothing was sent.
    error: bool = False
    #: The `local_id` of every message the line queued (several when a long line was split), so
    #: that the caller can tie the later MessageDelivered / MessageFailed events to the line.
    local_ids: tuple[int, ...] = ()
    #: True when the line sent a /who: a `PresenceUpdated(requested=True)` will answer it, in
    #: order with any other /who sent before it.
    who: bool = False
    #: The room the line was about (the current room, or the one it named), None for lines about
    #: no room (help, /msg, /ignore).
    room: str | None = None
    #: The id of the room request the line sent (/join, /part, /list, /topic, /kick ...), 0 for
    #: none: its `RequestFailed` or `RoomList` carries the same id.
    request_id: int = 0
    #: `/queue`: the help queue the lines show, for a UI that shows it otherwise (--json, a panel).
    queue: ev.QueueUpdated | None = None
    #: The transfer the line started: ("up", the upload's local id) for /send, ("down", the file
    #: id) for /accept; None for none. Its FileProgress/FileDone/FileFailed events carry that id.
    transfer: tuple[str, int] | None = None


def default_seat() -> str:
    """Where this user sits, when `--seat` does not say: the machine's host name (20.2), which is
    what lab PCs are labelled with, cut to 40 bytes."""
    try:
        return seat_label(socket.gethostname())
    except OSError:
        return ""


def check_seat(seat: str) -> str:
    """`--seat LABEL` as LOGIN carries it.

    Raises:
        LocalProtocolError: longer than 40 bytes, or empty once control characters are dropped.
    """
    size = len(seat.encode("utf-8", "surrogatepass"))
    if size > m.MAX_SEAT_BYTES:
        raise LocalProtocolError(
            _("seat {seat!r} is {size} bytes: at most {max}").format(
                seat=seat, size=size, max=m.MAX_SEAT_BYTES
            )
        )
    label = seat_label(seat)
    if not label:
        raise LocalProtocolError(_("seat {seat!r} is empty: give a label such as PC-14").format(seat=seat))
    return label


def start_rooms(rooms: tuple[str, ...]) -> tuple[str, ...]:
    """`--room` values as the wire spells them ('#CS101' is cs101), each once, in order.

    Raises:
        LocalProtocolError: a name that breaks the room rule (the message states the rule).
    """
    out: list[str] = []
    for typed in rooms:
        room = m.room_from_user(typed)
        if not m.is_valid_room(room):
            raise LocalProtocolError(
                _("invalid room name {name!r}: room names are {rule}").format(name=typed, rule=room_rule()),
                ErrorCode.INVALID_ROOM,
            )
        if room in out:
            out.remove(room)  # `--room a --room b --room a`: a is joined once, and is current
        out.append(room)
    return tuple(out)


#: A transfer's state words (ChatClient.files), as /files shows them.
_FILE_STATES = {
    "offered": N_("offered"),
    "receiving": N_("receiving"),
    "done": N_("done"),
    "declined": N_("declined"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
}


def human_size(size: int) -> str:
    """`4.2 KB`, `1.5 MB`: a size as people read it (1 KB = 1024 bytes, as file managers show)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            if unit == "bytes":
                return ngettext("{count} byte", "{count} bytes", size).format(count=size)
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def resolve(host: str, port: int) -> tuple[str, int, socket.AddressFamily]:
    """Resolve the server address once, up front, so a typo fails now in one clear line."""
    if not 0 < port < 65536:
        raise ClientError(_("invalid server port {port}: use 1-65535").format(port=port))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        text = _("cannot resolve server address {host!r}: {reason}").format(host=host, reason=exc)
        raise ClientError(text) from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return str(sockaddr[0]), int(sockaddr[1]), socket.AddressFamily(family)


def parse_host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` for an IPv6 address) as `--fallback` takes it.

    Raises:
        ClientError: not of that form, or the port is not 1-65535; the message is one line.
    """
    address = m.parse_relay_address(text)
    if address is None:
        raise ClientError(
            _("invalid address {text!r}: use HOST:PORT, e.g. 10.0.0.2:8080 ([::1]:8080 for IPv6)").format(
                text=text
            )
        )
    return address


#: Lines said "to the operators" in quiet mode kept per room for /export.
MAX_TO_OPS_KEPT = 5000

#: Datagrams read per wake-up before answering: a burst is acknowledged once.
MAX_READ_BATCH = 64
_RECV_BYTES = 2048


class _DatagramFeed(asyncio.DatagramProtocol):
    """The client's socket on a loop without `add_reader` (Windows): asyncio reads, we feed the core."""

    def __init__(self, client: ChatClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._client._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP "port unreachable" while the server is down: timers handle silence


class ChatClient:
    """One user's chat connection. Create, `await start()`, read `events()`, call `submit()`."""

    def __init__(
        self,
        server_host: str,
        server_port: int,
        user: str,
        password: str,
        *,
        local_port: int = 0,
        config: ClientConfig | None = None,
        known_servers: KnownServers | None = None,
        clock: Callable[[], float] = time.time,
        ignore_path: Path | None = None,
        register: bool = True,
        rooms: tuple[str, ...] = (),
        seat: str | None = None,
        downloads_dir: Path | None = None,
        fallbacks: tuple[tuple[str, int], ...] = (),
    ) -> None:
        """Raises LocalProtocolError for an invalid user name or room name (message says the rule).

        `seat` (`--seat`): where the user sits, shown to the room's operators (20.2); None: the
        machine's host name.
        `ignore_path`: the file that keeps /ignore across runs (ignore_list.py); None keeps it in memory.
        `register=False`: an unknown name is refused with NO_SUCH_ACCOUNT instead of registered, so
        that the app can ask the user first (docs/protocol.md 17.1).
        `rooms` (`--room`): joined right after the first login (as typed: '#CS101' is cs101); the
        last one joined becomes the current room. `ready` is set once every one is answered.
        `downloads_dir` (`--downloads`): where accepted files are saved; default
        $LABCHAT_DOWNLOADS, else the platform's downloads folder + `labchat`.
        `fallbacks` (`--fallback`): other relays of the same server, tried in order when the one
        we are on stops answering; the server may name more (docs/protocol.md 22.3).
        """
        self.server_host = server_host
        self.server_port = server_port
        self.local_port = local_port
        self.known_servers = known_servers
        self._clock = clock
        pinned = known_servers.lookup(server_host, server_port) if known_servers else None
        self.seat = default_seat() if seat is None else seat_label(seat)
        self.conn = ClientConnection(
            user, password, server_key=pinned, config=config, register=register, seat=self.seat,
            address=(server_host, server_port), fallbacks=fallbacks,
        )  # fmt: skip
        # `--room`: queued now, sent right after the first LOGIN_OK (refused then by a one-room server).
        self._start_joins = [self.conn.join(room, "", clock()) for room in start_rooms(rooms)]
        #: Set once logged in and every `--room` join is answered (or the client closed): line mode
        #: takes input from then on, so that lines go to the room the user asked for.
        self.ready = asyncio.Event()
        #: Room -> messages received there while another room was current (reset on switching to it).
        self.unread: dict[str, int] = {}
        self._sock: socket.socket | None = None
        # Set on a loop without add_reader (Windows): asyncio then owns the socket's reads and sends.
        self._transport: asyncio.DatagramTransport | None = None
        self._pump_scheduled = False
        self._server_addr: tuple[str, int] | None = None
        # The relay address `_server_addr` was resolved from (the connection's current one), and
        # the socket's family: a relay of the other family cannot be reached from this socket.
        self._server_addr_of: tuple[str, int] | None = None
        self._family = socket.AF_INET
        self._queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._timer: DeadlineTimer | None = None  # made on first use, on the running loop
        self.closed = asyncio.Event()
        self._progress = asyncio.Event()  # set whenever a message is confirmed or refused
        #: True once the server has accepted our login (it stays true across reconnects).
        self.logged_in = False
        # /export (export.py): its history pages, the session starts and seats seen, and the lines
        # said "to the operators" in quiet mode, which no history holds.
        self._history_waiters: dict[int, asyncio.Future[ev.HistoryPage]] = {}
        self._export_tasks: set[asyncio.Task[None]] = set()
        #: Per room: when the class session started and the room's last seq shown at that moment. The
        #: seq draws the line exactly: the server sends SESSION_STARTED after every earlier message on
        #: the same ordered link, while two times can fall in the same millisecond.
        self._session_start: dict[str, tuple[float, int]] = {}
        self._seats: dict[str, dict[str, str]] = {}
        self._to_ops: dict[str, list[tuple[float, str, str, bool]]] = {}
        self.ignore_path = ignore_path
        #: Where accepted files are saved (created when the first one is).
        self.downloads_dir = downloads_dir if downloads_dir is not None else default_downloads_dir()
        self._sources: dict[int, Source] = {}  # upload local id -> what it reads
        self._upload_paths: dict[int, Path] = {}  # upload local id -> the path offered
        self._incoming: dict[int, Incoming] = {}  # file id -> the download being written
        self._saved: dict[int, Path] = {}  # file id -> where it was saved
        self._tasks: set[asyncio.Task[None]] = set()
        self._unpacking = 0  # received folders being unpacked (in a worker thread)
        if ignore_path is not None:
            try:
                for name in load_ignored(ignore_path):
                    self.conn.ignore(name)
            except IgnoreListError as exc:
                self._queue.put_nowait(ev.ServerNotice(str(exc), local=True))

    @property
    def user(self) -> str:
        return self.conn.user

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms we are in, in the order we joined them."""
        return self.conn.rooms

    @property
    def current_room(self) -> str:
        """Where typed lines go: the last room joined or switched to."""
        return self.conn.current_room

    def set_current_room(self, room: str) -> None:
        """Send typed lines to `room` (one we are in) from now on; its unread count starts over.

        Raises:
            LocalProtocolError: we are not in `room`.
        """
        self.conn.set_current_room(room)
        self.unread.pop(room, None)

    def announcement_seen(self, room: str, announcement_id: int) -> None:
        """The UI has shown `room`'s announcement to the user: the operators' tally counts us."""
        self.conn.announcement_seen(room, announcement_id, self._clock())
        self._pump()

    @property
    def state(self) -> ev.ConnectionState:
        return self.conn.state

    @property
    def local_address(self) -> tuple[str, int] | None:
        if self._sock is None:
            return None
        sockname = self._sock.getsockname()
        return (sockname[0], sockname[1])

    async def start(self) -> None:
        """Bind the local UDP port and start connecting.

        Raises:
            ClientError: the server address does not resolve or the local port cannot be bound.
        """
        host, port, family = resolve(self.server_host, self.server_port)
        self._server_addr = (host, port)
        self._server_addr_of = self.conn.address
        self._family = family
        local_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
        if host in ("127.0.0.1", "::1"):
            local_host = host  # a loopback server: stay on loopback
        if not 0 <= self.local_port < 65536:
            raise ClientError(
                _("invalid client port {port}: use 0-65535 (0 picks a free one)").format(port=self.local_port)
            )
        loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((local_host, self.local_port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ClientError(
                    _(
                        "client port {port} is already in use: choose another "
                        "(labs open 5000-5010) or 0 for any free port"
                    ).format(port=self.local_port)
                ) from None
            if exc.errno == errno.EACCES:
                raise ClientError(
                    _("no permission to use client port {port}: use 1024 or above").format(
                        port=self.local_port
                    )
                ) from None
            raise ClientError(
                _("cannot bind client port {port}: {reason}").format(
                    port=self.local_port, reason=exc.strerror
                )
            ) from None
        # Our own non-blocking socket, read dry on each wake-up: one pass of the event loop and
        # one answer for a burst, instead of a callback and a flush per datagram.
        sock.setblocking(False)
        if hasattr(socket, "SIO_UDP_CONNRESET"):
            # Windows: an ICMP "port unreachable" while the server is down must not become an error
            # on every later receive; the timers notice a silent server anyway.
            with contextlib.suppress(OSError):
                sock.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]
        self._sock = sock
        try:
            loop.add_reader(sock.fileno(), self._on_readable)
        except NotImplementedError:
            # Windows' proactor loop cannot watch a socket: let asyncio read it for us.
            transport, _protocol = await loop.create_datagram_endpoint(lambda: _DatagramFeed(self), sock=sock)
            self._transport = transport
        self.conn.connect(self._clock())
        self._pump()

    # ------------------------------------------------------------ user actions

    def submit(self, line: str) -> Submitted:
        """Handle one typed line: a chat message or a command (commands.py)."""
        cmd = commands.parse(line)
        now = self._clock()
        try:
            if cmd is None:
                return Submitted()
            ids: list[int] = []
            room_answer = self._room_command(cmd, now)
            if room_answer is None:
                room_answer = self._class_command(cmd, now)
            if room_answer is None:
                room_answer = self._file_command(cmd, now)
            if room_answer is not None:
                self._pump()
                return room_answer
            if isinstance(cmd, commands.Say):
                ids = self.conn.say(cmd.text, now)
            elif isinstance(cmd, commands.Me):
                ids = self.conn.say(cmd.text, now, action=True)
            elif isinstance(cmd, commands.Private):
                ids = self.conn.whisper(cmd.to, cmd.text, now)
            elif isinstance(cmd, commands.Who):
                if self.conn.phase is not Phase.ONLINE:
                    # Asked now it would be lost with the old session: say so rather than stay silent.
                    return Submitted((_("not connected: /who works again once reconnected"),), error=True)
                self.conn.who(now)
                self._pump()
                return Submitted(who=True)
            elif isinstance(cmd, commands.Search):
                self.conn.search(cmd.query, now)
            elif isinstance(cmd, commands.History):
                self.conn.fetch_history(self.conn.oldest_seq, now, cmd.count)
            elif isinstance(cmd, commands.Away):
                if cmd.reason is None and self.conn.away_reason is None:
                    return Submitted((_("you are not marked as away"),))
                self.conn.set_away(cmd.reason, now)
            elif isinstance(cmd, commands.Ignore):
                return self._ignore(cmd.name)
            elif isinstance(cmd, commands.Unignore):
                return self._unignore(cmd.name)
            elif isinstance(cmd, commands.Help):
                return Submitted(commands.help_lines())
            elif isinstance(cmd, commands.Quit):
                self.conn.quit(now)
                self._pump()
                return Submitted(quit=True)
            elif isinstance(cmd, commands.Invalid):
                return Submitted((cmd.error,), error=True, room=self.current_room)
        except LocalProtocolError as exc:
            return Submitted((str(exc),), error=True, room=self._about(cmd))
        self._pump()
        return Submitted(local_ids=tuple(ids), room=self._about(cmd))

    def _about(self, cmd: commands.Command | None) -> str | None:
        """The room a typed line concerns, for the answer's `room`: none for private ones."""
        if isinstance(cmd, (commands.Private, commands.Ignore, commands.Unignore, commands.Help,
                            commands.Away, commands.Quit)):  # fmt: skip
            return None
        if isinstance(cmd, (commands.SayTo, commands.Join)):
            return cmd.room
        return self.current_room

    def _room_command(self, cmd: commands.Command, now: float) -> Submitted | None:
        """The commands of rooms and roles (docs/protocol.md 18), for the current room; None for
        any other command. Raises LocalProtocolError as the connection does."""
        conn, room = self.conn, self.current_room
        match cmd:
            case commands.SayTo():
                return Submitted(local_ids=tuple(conn.say(cmd.text, now, room=cmd.room)), room=cmd.room)
            case commands.Join() if cmd.room in conn.rooms:
                self.set_current_room(cmd.room)  # already in it: switch, as WeeChat and Slack do
                return Submitted((_("now talking in #{room}").format(room=cmd.room),), room=cmd.room)
            case commands.Join():
                return Submitted(room=cmd.room, request_id=conn.join(cmd.room, cmd.key, now))
            case commands.Part():
                return self._part(cmd, now)
            case commands.ListRooms():
                return Submitted(room=None, request_id=conn.list_rooms(now))
            case commands.Rooms():
                return Submitted(self._rooms_lines(), room=None)
            case commands.Topic(text=None):
                return Submitted((self._topic_line(room),), room=room)
            case commands.Topic(text=str(text)):
                request_id = conn.set_room(room, m.Setting.TOPIC, text, now)
            case commands.Key():
                request_id = conn.set_room(room, m.Setting.KEY, cmd.key, now)
            case commands.Switch():
                request_id = conn.set_room(room, cmd.setting, "on" if cmd.on else "off", now)
            case commands.Announce(text=None):
                return Submitted(self._announcement_lines(room), room=room)
            case commands.Announce(text=str(text)):
                request_id = conn.set_room(room, m.Setting.ANNOUNCEMENT, text, now)
            case commands.Moderate():
                request_id = conn.moderate(room, cmd.action, cmd.name, cmd.minutes, cmd.reason, now)
            case _:
                return None
        return Submitted(room=room, request_id=request_id)

    def _class_command(self, cmd: commands.Command, now: float) -> Submitted | None:
        """The classroom's commands (docs/protocol.md 20), for the current room; None for any other
        command. Raises LocalProtocolError as the connection does."""
        conn, room = self.conn, self.current_room
        match cmd:
            case commands.Hand(down=True):
                request_id = conn.hand(room, False, "", now)
            case commands.Hand():
                request_id = conn.hand(room, True, cmd.question, now)
            case commands.Queue():
                return self._help_queue_lines(room, now)
            case commands.Next():
                request_id = conn.queue_next(room, now)
            case commands.Done():
                request_id = conn.queue_done(room, cmd.name, now)
            case commands.PollOpen():
                request_id = conn.poll_open(room, cmd.question, cmd.options, now, anonymous=cmd.anonymous)
            case commands.PollClose():
                request_id = conn.poll_close(room, now)
            case commands.PollShow():
                return Submitted(self._poll_lines(room), room=room)
            case commands.Vote():
                request_id = conn.poll_vote(room, cmd.choice, now)
            case commands.Quiet(show=True):
                return Submitted((self._quiet_line(room, now),), room=room)
            case commands.Quiet():
                value = "off" if cmd.minutes is None else str(cmd.minutes)
                self._check_classroom()
                request_id = conn.set_room(room, m.Setting.QUIET, value, now)
            case commands.SessionStart():
                self._check_classroom()
                request_id = conn.set_room(room, m.Setting.SESSION, "", now)
            case commands.Export():
                return self._export(room, cmd.path)
            case _:
                return None
        return Submitted(room=room, request_id=request_id)

    def _check_classroom(self) -> None:
        """Quiet mode and sessions are room settings: refuse them here, as hands and polls are, on
        a server without the classroom (it would answer with an unknown setting)."""
        if self.conn.server_has_classroom is False:
            raise LocalProtocolError(NO_CLASSROOM)

    def _help_queue_lines(self, room: str, now: float) -> Submitted:
        """/queue: the help queue the server last sent (it sends it to operators only)."""
        self._check_classroom()
        queue = self.conn.help_queue(room)
        if queue is None:
            state = self.conn.room_state(room)
            if state is not None and not state.you & (m.MEMBER_OP | m.MEMBER_ADMIN):
                return Submitted(
                    (_("only operators of #{room} see its help queue").format(room=room),),
                    error=True,
                    room=room,
                )
            queue = ev.QueueUpdated(room, ())
        return Submitted(tuple(room_news.queue_lines(queue, now)), room=room, queue=queue)

    def _poll_lines(self, room: str) -> tuple[str, ...]:
        self._check_classroom()
        poll = self.conn.open_poll(room)
        if poll is None:
            return (_("no open poll in #{room}").format(room=room),)
        lines = [room_news.poll_line(poll)]
        if poll.counts:
            lines.append(room_news.tally_line(poll))
            lines.extend(room_news.ballot_lines(poll))
        if poll.your_choice:
            choice = room_news.choice_words(poll, poll.your_choice)
            lines.append(_("you chose {choice}").format(choice=choice))
        return tuple(lines)

    def _quiet_line(self, room: str, now: float) -> str:
        self._check_classroom()
        state = self.conn.room_state(room)
        if state is None or state.quiet_until is None:
            return _("#{room} is not quiet (/quiet on [MINUTES] to make it so)").format(room=room)
        left = max(1, round((state.quiet_until - now) / 60))
        return _("#{room} is quiet for {minutes} more min: students may talk only to the teachers").format(
            room=room, minutes=left
        )

    def _export(self, room: str, path: str | None) -> Submitted:
        """/export [PATH]: start writing the transcript; a notice says when it is written."""
        try:
            from . import export
        except ImportError:  # the transcript writer (labchat/transcript.py) is not installed
            return Submitted((_("/export is not available in this labchat"),), error=True, room=room)
        if self.conn.server_has_rooms is not None and room not in self.rooms:
            return Submitted((_("you are in no room: /join ROOM first"),), error=True, room=room)
        base = export.base_path(path, room, self._clock())
        task = asyncio.get_running_loop().create_task(self._export_in_background(room, base))
        self._export_tasks.add(task)
        task.add_done_callback(self._export_tasks.discard)
        writing = _("writing the transcript of #{room} to {markdown} and {html} …").format(
            room=room, markdown=f"{base}.md", html=f"{base}.html"
        )
        return Submitted((writing,), room=room)

    async def _export_in_background(self, room: str, base: Path) -> None:
        try:
            md, page, said = await self.export(room, base)
        except (OSError, ClientError, LocalProtocolError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            text = _("cannot export #{room}: {reason}").format(room=room, reason=reason)
            self._queue.put_nowait(ev.ServerNotice(text, local=True))
            return
        text = ngettext(
            "transcript of #{room} written ({count} message): {markdown} and {html}",
            "transcript of #{room} written ({count} messages): {markdown} and {html}",
            said,
        ).format(room=room, count=said, markdown=md, html=page)
        self._queue.put_nowait(ev.ServerNotice(text, local=True))

    async def export(self, room: str, base: Path) -> tuple[Path, Path, int]:
        """Write `room`'s transcript to BASE.md and BASE.html (export.py says what is in it).

        Returns the two paths and the number of messages written.
        Raises:
            ClientError: the server could not give the history, or the connection closed meanwhile.
            OSError: the files could not be written.
        """
        from . import export

        now = self._clock()
        since, after_seq = self._session_start.get(room) or (now - export.DEFAULT_HOURS * 3600, 0)
        messages: list[ev.MessageReceived] = []
        before = 0
        for _page in range(export.MAX_PAGES):
            page = await self._history_page(room, before)
            if page.error:
                raise ClientError(page.error)
            messages.extend(page.messages)
            if not page.more or not page.messages or page.messages[0].ts < since:
                break
            before = page.messages[0].seq
        polls, hands = self.conn.classroom_log(room)
        state = self.conn.room_state(room)
        transcript = export.build(
            room, since, self._clock(), topic=state.topic if state is not None else "",
            messages=[msg for msg in messages if msg.seq > after_seq],
            to_ops=[export.ToOps(*line) for line in self._to_ops.get(room, [])],
            polls=[export.poll_result(p, self.conn.poll_seen_at(room, p.poll_id)) for p in polls],
            hands=export.hand_log(hands, self._seats.get(room, {})),
        )  # fmt: skip
        md, page_path = await asyncio.to_thread(export.write, base, transcript)
        return md, page_path, len(transcript.messages)

    async def _history_page(self, room: str, before: int) -> ev.HistoryPage:
        """One page of `room`'s history for /export, kept from the UI (it is not a /history)."""
        if self.closed.is_set():
            raise ClientError(_("the connection is closed"))
        request_id = self.conn.fetch_history(before, self._clock(), m.MAX_HISTORY_PAGE, room=room)
        waiter: asyncio.Future[ev.HistoryPage] = asyncio.get_running_loop().create_future()
        self._history_waiters[request_id] = waiter
        self._pump()
        try:
            return await waiter
        finally:
            self._history_waiters.pop(request_id, None)

    def _part(self, cmd: commands.Part, now: float) -> Submitted:
        if self.conn.server_has_rooms is False:
            # One room on this server: leaving it is leaving, as /part always did here.
            self.conn.quit(now)
            return Submitted(quit=True)
        room, reason = cmd.room, cmd.reason
        if room is None or (cmd.maybe_room and room not in self.rooms and cmd.reason):
            # "/part see you": not a room we are in, so the whole text is the reason. A single
            # word ("/part cs101") is taken for a room: leaving the wrong one would be worse.
            room = self.current_room
            reason = " ".join(w for w in (cmd.room if cmd.maybe_room else None, cmd.reason) if w)
        return Submitted(room=room, request_id=self.conn.part(room, reason, now))

    def _rooms_lines(self) -> tuple[str, ...]:
        rooms = self.rooms
        if not rooms:
            return (_("you are in no room: /join ROOM"),)
        names = []
        for room in rooms:
            if room == self.current_room:
                names.append(_("#{room} (current)").format(room=room))
            elif self.unread.get(room):
                names.append(_("#{room} ({count} unread)").format(room=room, count=self.unread[room]))
            else:
                names.append(f"#{room}")
        line = ngettext("you are in {count} room: {rooms}", "you are in {count} rooms: {rooms}", len(rooms))
        return (line.format(count=len(rooms), rooms=", ".join(names)),)

    def _topic_line(self, room: str) -> str:
        if self.conn.server_has_rooms is False:
            raise LocalProtocolError(ONE_ROOM)
        state = self.conn.room_state(room)
        if state is None or not state.topic:
            return _("no topic is set in #{room}").format(room=room)
        return _("topic of #{room}: {topic}").format(room=room, topic=state.topic)

    def _announcement_lines(self, room: str) -> tuple[str, ...]:
        if self.conn.server_has_rooms is False:
            raise LocalProtocolError(ONE_ROOM)
        announcement, tally = self.conn.announcement(room)
        if announcement is None:
            return (_("no announcement in #{room}").format(room=room),)
        lines = [room_news.describe(announcement)]
        if tally is not None:
            lines.append(room_news.describe(tally))
        return tuple(lines)

    def _ignore(self, name: str | None) -> Submitted:
        """/ignore NAME, or /ignore alone to list. The filter itself is in the connection."""
        if name is None:
            names = self.conn.ignored
            if not names:
                return Submitted((_("ignoring nobody"),))
            return Submitted((_("ignoring: {names}").format(names=", ".join(names)),))
        if not self.conn.ignore(name):
            return Submitted((_("already ignoring {name}").format(name=name),))
        return self._save_ignored(
            _("ignoring {name}: their messages are hidden (/unignore {name} to undo)").format(name=name)
        )

    def _unignore(self, name: str) -> Submitted:
        if not self.conn.unignore(name):
            return Submitted((_("{name} is not ignored").format(name=name),), error=True)
        return self._save_ignored(_("no longer ignoring {name}").format(name=name))

    def _save_ignored(self, done: str) -> Submitted:
        if self.ignore_path is None:
            return Submitted((done,))
        try:
            save_ignored(self.ignore_path, self.conn.ignored)
        except IgnoreListError as exc:
            kept = _("{reason} (kept for this session only)").format(reason=exc)
            return Submitted((done, kept), error=True)
        return Submitted((done,))

    # ------------------------------------------------------------ files (docs/protocol.md 21)

    def send_file(self, path: Path | str, to: str | None = None, *, name: str | None = None) -> int:
        """Offer the file or folder at `path` to the current room, or to user `to` alone, under its
        own name made safe (or `name`, as given: the server's rule of 21.2 still applies). Its
        SHA-256 is computed in a worker thread first (a folder is packed on the fly); then the offer
        goes out and the upload follows, reported as `FileProgress`, `FileDone` or `FileFailed`
        events carrying the returned local id.

        Raises:
            LocalProtocolError: no such file, not readable, a server without files, a bad name.
        """
        path = Path(path).expanduser()
        try:
            source = open_source(path)
        except FileNotFoundError:
            raise LocalProtocolError(_("no such file or folder: {path}").format(path=path)) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            text = _("cannot send {path}: {reason}").format(path=path, reason=reason)
            raise LocalProtocolError(text) from None
        if self.conn.server_has_files is False:
            source.close()
            raise LocalProtocolError(_("this server does not take files: it runs an older labchat"))
        if to is not None and not m.is_valid_name(to):
            source.close()
            raise LocalProtocolError(f"no such user name {to!r}: {m.NAME_RULE}", ErrorCode.INVALID_NAME)
        room = self.current_room
        name = safe_name(path.resolve().name or "file") if name is None else name
        folder = path.is_dir()
        mime = "" if folder else (mimetypes.guess_type(name)[0] or "")
        local_id = self.conn.new_upload_id()
        self._sources[local_id] = source
        self._upload_paths[local_id] = path
        task = asyncio.get_running_loop().create_task(
            self._offer(local_id, source, name, room, to, mime, folder)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return local_id

    async def _offer(
        self, local_id: int, source: Source, name: str, room: str, to: str | None, mime: str, folder: bool
    ) -> None:
        try:
            digest = await asyncio.to_thread(source.digest, self.closed.is_set)
        except OSError as exc:
            reason = _("cannot read it: {error}").format(error=exc.strerror or exc)
            self._file_failed(local_id, name, "up", reason)
            return
        if self.closed.is_set():
            return
        try:
            self.conn.offer_file(name, source.size, digest, self._clock(), room=room, to=to or "",
                                 mime=mime, folder=folder, local_id=local_id)  # fmt: skip
        except LocalProtocolError as exc:
            self._file_failed(local_id, name, "up", str(exc))
            return
        self._pump()

    def _file_failed(self, file_id: int, name: str, direction: str, reason: str) -> None:
        source = self._sources.pop(file_id, None) if direction == "up" else None
        if source is not None:
            source.close()
        self._on_event(ev.FileFailed(file_id, name, direction, reason))

    def accept_file(self, file_id: int) -> None:
        """Download offer `file_id` into `downloads_dir` (a temporary file until verified).

        Raises:
            LocalProtocolError: no such offer, under way already, or the folder cannot be written.
        """
        offer = next((d.offer for d in self.conn.file_offers() if d.offer.file_id == file_id), None)
        if offer is None:
            raise LocalProtocolError(_("no file offer {id}: /files lists them").format(id=file_id))
        old = self._incoming.pop(file_id, None)
        if old is not None:
            old.discard()
        try:
            incoming = Incoming(self.downloads_dir, offer.name, file_id, folder=offer.folder)
        except SaveError as exc:
            raise LocalProtocolError(str(exc)) from None
        try:
            self.conn.accept_file(file_id, self._clock())
        except LocalProtocolError:
            incoming.discard()
            raise
        self._incoming[file_id] = incoming
        self._pump()

    def decline_file(self, file_id: int) -> None:
        """Say no to offer `file_id` (a download under way stops; its partial file is removed).

        Raises:
            LocalProtocolError: no such offer.
        """
        self.conn.decline_file(file_id)
        self._pump()

    def files(self, room: str | None = None) -> list[tuple[ev.FileOffered, str, Path | None]]:
        """The offers seen in `room` (None: every room), oldest first: each with where it stands
        ("offered", "receiving", "done", "declined", "failed", "cancelled") and its saved path."""
        return [
            (d.offer, d.state.value, self._saved.get(d.offer.file_id)) for d in self.conn.file_offers(room)
        ]

    def saved_path(self, file_id: int) -> Path | None:
        """Where download `file_id` was saved (None: not saved in this run)."""
        return self._saved.get(file_id)

    def file_details(self, direction: str, file_id: int) -> dict[str, Any]:
        """What --json records of a transfer carry besides its event: size, sha256, from, room, to."""
        if direction == "up":
            up = self.conn.upload(file_id)
            if up is None:
                return {"from": self.user, "room": self.current_room, "to": None, "sha256": None}
            return {"size": up.size, "sha256": up.sha256.hex(), "from": self.user,
                    "room": None if up.to else up.room, "to": up.to or None}  # fmt: skip
        down = self.conn.files.downloads.get(file_id)
        if down is None:
            return {"from": None, "room": None, "to": None, "sha256": None}
        offer = down.offer
        return {"size": offer.size, "sha256": offer.sha256, "from": offer.sender,
                "room": None if offer.to else offer.room, "to": offer.to}  # fmt: skip

    def _file_command(self, cmd: commands.Command, now: float) -> Submitted | None:
        """/send, /accept, /decline, /files, /open; None for any other command."""
        match cmd:
            case commands.Send():
                raw = Path(cmd.raw).expanduser()
                if cmd.raw and cmd.raw != cmd.path and raw.exists():
                    local_id = self.send_file(raw)  # a path with spaces, typed as it is
                else:
                    local_id = self.send_file(cmd.path, cmd.to)
                name = safe_name(Path(cmd.path).expanduser().resolve().name or "file")
                if cmd.to:
                    offering = _("offering {name} to {user}: checking it first")
                else:
                    offering = _("offering {name} to #{room}: checking it first")
                line = offering.format(name=name, user=cmd.to, room=self.current_room)
                return Submitted((line,), room=self.current_room, transfer=("up", local_id))
            case commands.Accept():
                self.accept_file(cmd.file_id)
                line = _("downloading file {id} into {path}").format(id=cmd.file_id, path=self.downloads_dir)
                return Submitted((line,), room=self.current_room, transfer=("down", cmd.file_id))
            case commands.Decline():
                self.decline_file(cmd.file_id)
                return Submitted((_("declined file {id}").format(id=cmd.file_id),), room=self.current_room)
            case commands.Files():
                return Submitted(self._files_lines(now), room=self.current_room)
            case commands.Open():
                saved = self._saved.get(cmd.file_id)
                if saved is None:
                    line = _("file {id} is not saved here: /accept {id} first").format(id=cmd.file_id)
                    return Submitted((line,), error=True, room=self.current_room)
                return Submitted((str(saved),), room=self.current_room)
        return None

    def _files_lines(self, now: float) -> tuple[str, ...]:
        room = self.current_room
        if self.conn.server_has_files:
            with contextlib.suppress(LocalProtocolError):
                self.conn.list_files(room, now)  # any kept file not known yet is offered again
        offers = self.files(room)
        if not offers:
            return (_("no files offered in #{room} yet (asking the server for kept ones)").format(room=room),)
        lines = [_("files in #{room}:").format(room=room)]
        for offer, state, path in offers:
            where = f" -> {path}" if path is not None else ""
            line = _("{id}: {name} ({size}) from {user}, {state}").format(
                id=offer.file_id, name=offer.name, size=human_size(offer.size), user=offer.sender,
                state=_(_FILE_STATES[state]) if state in _FILE_STATES else state,
            )  # fmt: skip
            lines.append(f"  {line}{where}")
        return tuple(lines)

    def set_away(self, reason: str | None) -> None:
        """Away for `reason` ("" for none) or back (None), as /away and /back do: for an owner that
        marks the user away by itself after a while without input.

        Raises:
            LocalProtocolError: the reason is too long.
        """
        self.conn.set_away(reason, self._clock())
        self._pump()

    def trust_server_key(self) -> None:
        """The user accepted a first-contact server's fingerprint: pin it and log in."""
        key = self.conn.server_key
        if key is not None and self.known_servers is not None:
            self.known_servers.remember(self.server_host, self.server_port, key)
        self.conn.trust_server_key(self._clock())
        self._pump()

    def quit(self) -> None:
        self.conn.quit(self._clock())
        self._pump()

    async def wait_drained(self) -> None:
        """Wait until every message typed so far is confirmed by the server, and every file sent or
        accepted has been stored or saved (or failed), or the client closed: a script that ends its
        input after `/send` leaves once its file is on the server."""
        while (self.conn.pending or self.transfers_pending) and not self.closed.is_set():
            self._progress.clear()
            await self._progress.wait()

    @property
    def transfers_pending(self) -> bool:
        """True while an upload or an accepted download of ours is not finished (nor failed)."""
        return bool(self._sources or self._incoming or self._unpacking)

    async def close(self) -> None:
        """Leave politely (BYE) if still connected, wait briefly for that, and release the socket."""
        if not self.closed.is_set():
            self.quit()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closed.wait(), self.conn.config.quit_drain_s + 2)
        self._shutdown()

    # ------------------------------------------------------------ events

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every event in order, ending after `Closed`."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, ev.Closed):
                return

    async def next_event(self) -> ev.Event:
        return await self._queue.get()

    def drain_events(self) -> list[ev.Event]:
        """Every event already waiting, without waiting: lets a UI take a burst in one go."""
        out: list[ev.Event] = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    # ------------------------------------------------------------ the loop

    def _relay_addr(self) -> tuple[str, int] | None:
        """Where datagrams go and come from: the connection's current relay, resolved (once per
        move). A relay name that does not resolve here is None: the connection moves on by itself."""
        address = self.conn.address
        if address != self._server_addr_of:
            self._server_addr_of = address
            self._server_addr = None
            if address is not None:
                with contextlib.suppress(ClientError):
                    host, port, family = resolve(*address)
                    if family == self._family:
                        self._server_addr = (host, port)
        return self._server_addr

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        now = self._clock()
        server = self._relay_addr()
        for _read in range(MAX_READ_BATCH):
            try:
                data, addr = sock.recvfrom(_RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # ICMP "port unreachable" while the server is down: timers handle silence
            if (addr[0], addr[1]) != server:
                continue  # only the server may speak to us; anything else is noise or an attack
            self.conn.receive_datagram(data, now)
        self._pump()

    def _on_datagram(self, data: bytes, addr: Any) -> None:
        """One datagram from asyncio's transport (loops without add_reader); answered once per pass."""
        if self._sock is None or (addr[0], addr[1]) != self._relay_addr():
            return  # only the server may speak to us
        self.conn.receive_datagram(data, self._clock())
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        if self._sock is not None:
            self._pump()

    def _on_timer(self) -> None:
        self.conn.handle_timer(self._clock())
        self._pump()

    def _pump(self) -> None:
        now = self._clock()
        # What arrived is shown first: sealing a file's burst below takes milliseconds, and a chat
        # line that came with the ACK that opened the window must not wait for it (21.7).
        for event in self.conn.events():
            self._on_event(event)
        if self._sources:
            self._feed_uploads()
        if self._sock is not None:
            send = self._sock.sendto if self._transport is None else self._transport.sendto
            datagrams = self.conn.datagrams_to_send(now)
            target = self._relay_addr()  # after datagrams_to_send: the address may have moved
            for datagram in datagrams if target is not None else ():
                try:  # noqa: SIM105 (suppress() costs a context manager per datagram received)
                    send(datagram, target)
                except OSError:
                    pass  # a full buffer or an unreachable network: the link resends it
        for event in self.conn.events():
            self._on_event(event)
        if self.conn.file_frames_waiting and not self._pump_scheduled and self._sock is not None:
            # More of a file may go: after the loop has read the socket (a chat line first, 21.7).
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_pump)
        if not self.ready.is_set() and (
            self.closed.is_set()
            or (self.logged_in and not any(self.conn.request_pending(i) for i in self._start_joins))
        ):
            self.ready.set()
        self._rearm(now)

    def _feed_uploads(self) -> None:
        """Read what the uploads under way need next (small blocks: the loop is never held long)."""
        files = self.conn.files
        for local_id, offset, length in list(files.wants()):
            source = self._sources.get(local_id)
            if source is None:
                continue
            try:
                data = source.read_at(offset, length)
            except OSError as exc:
                self.conn.cancel_file(local_id, f"cannot read it: {exc.strerror or exc}", direction="up")
                continue
            if not data:
                self.conn.cancel_file(local_id, "the file got shorter while it was sent", direction="up")
                continue
            files.feed(local_id, offset, data)

    def _on_file_event(self, event: ev.Event) -> ev.Event | None:
        """Write, save or clean up after a file event of the connection; the event to pass on
        (None: none, or later once a folder is unpacked)."""
        match event:
            case ev.FileChunkReceived():
                incoming = self._incoming.get(event.file_id)
                if incoming is not None:
                    try:
                        incoming.write(event.offset, event.data)
                    except SaveError as exc:
                        del self._incoming[event.file_id]
                        self.conn.cancel_file(event.file_id, str(exc), direction="down")
                return None
            case ev.FileDone(direction="down"):
                incoming = self._incoming.pop(event.file_id, None)
                if incoming is None:
                    return event  # not written by us (accepted on the connection directly)
                if incoming.folder:
                    self._unpacking += 1
                    task = asyncio.get_running_loop().create_task(self._finish_folder(incoming, event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    return None
                return self._saved_event(incoming, event)
            case ev.FileFailed(direction="down"):
                incoming = self._incoming.pop(event.file_id, None)
                if incoming is not None:
                    incoming.discard()
            case ev.FileDone(direction="up") | ev.FileFailed(direction="up"):
                source = self._sources.pop(event.file_id, None)
                if source is not None:
                    source.close()
        return event

    def _saved_event(self, incoming: Incoming, event: ev.FileDone) -> ev.Event:
        try:
            path = incoming.finish()
        except SaveError as exc:
            return ev.FileFailed(event.file_id, event.name, "down", str(exc))
        self._saved[event.file_id] = path
        return ev.FileDone(event.file_id, event.name, "down", str(path), event.sha256)

    async def _finish_folder(self, incoming: Incoming, event: ev.FileDone) -> None:
        try:
            done = await asyncio.to_thread(self._saved_event, incoming, event)
        finally:
            self._unpacking -= 1
        self._publish(done)

    def _on_event(self, event: ev.Event) -> None:
        event = in_users_language(event)
        if isinstance(event, (ev.FileChunkReceived, ev.FileDone, ev.FileFailed)):
            passed = self._on_file_event(event)
            if passed is None:
                return
            event = passed
        self._publish(event)

    def _publish(self, event: ev.Event) -> None:
        """Pass an event on to the UI, keeping the core's own state (login, unread counts) first."""
        if isinstance(event, ev.ServerKeyTrusted) and event.first_contact:
            key = self.conn.server_key
            if (
                key is not None
                and self.known_servers is not None
                and not self.conn.config.confirm_new_key
            ):
                self.known_servers.remember(self.server_host, self.server_port, key)
        elif isinstance(event, ev.LoggedIn):
            self.logged_in = True
        elif isinstance(event, ev.MessageReceived):
            if not event.own and not event.history and event.room != self.conn.current_room:
                self.unread[event.room] = self.unread.get(event.room, 0) + 1
        elif isinstance(event, (ev.CurrentRoomChanged, ev.RoomLeft)):
            self.unread.pop(event.room, None)
        elif isinstance(event, ev.HistoryPage) and event.request_id in self._history_waiters:
            waiter = self._history_waiters.pop(event.request_id)
            if not waiter.done():
                waiter.set_result(event)
            return  # a page of an /export, not one the user asked to see
        self._keep_for_export(event)
        self._queue.put_nowait(event)
        if isinstance(event, (ev.MessageDelivered, ev.MessageFailed, ev.Closed, ev.FileDone, ev.FileFailed)):
            self._progress.set()
        if isinstance(event, ev.Closed):
            self.closed.set()
            for waiter in self._history_waiters.values():
                if not waiter.done():
                    waiter.set_exception(ClientError(_("the connection closed")))

    def _keep_for_export(self, event: ev.Event) -> None:
        """What /export needs and no history holds (export.py)."""
        match event:
            case ev.RoomEvent(action=m.Action.SESSION_STARTED):
                self._session_start[event.room] = (event.ts, self.conn.last_seq_of(event.room))
            case ev.PresenceUpdated() if event.seats:
                self._seats.setdefault(event.room, {}).update(event.seats)
            case ev.UserJoined() if event.seat:
                self._seats.setdefault(event.room, {})[event.user] = event.seat
            case ev.QueueUpdated():
                seats = {item.user: item.seat for item in event.entries if item.seat}
                self._seats.setdefault(event.room, {}).update(seats)
            case ev.PrivateReceived(to_ops=True):
                self._said_to_ops(event.to, (event.ts, event.sender, event.text, event.action))
            case ev.MessageDelivered(seq=0, to=None):
                self._said_to_ops(event.room, (event.ts, self.user, event.text, event.action))

    def _said_to_ops(self, room: str, line: tuple[float, str, str, bool]) -> None:
        lines = self._to_ops.setdefault(room, [])
        lines.append(line)
        if len(lines) > MAX_TO_OPS_KEPT:
            del lines[: len(lines) - MAX_TO_OPS_KEPT]

    def _rearm(self, now: float) -> None:
        if self._timer is None:
            self._timer = DeadlineTimer(asyncio.get_running_loop(), self._on_timer)
        self._timer.set(None if self.closed.is_set() else self.conn.next_timer(), now)

    def _shutdown(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        for incoming in self._incoming.values():
            incoming.discard()  # a partial download is not left behind
        self._incoming.clear()
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.close()  # closes the socket too
            self._transport = None
        elif self._sock is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError, NotImplementedError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None
