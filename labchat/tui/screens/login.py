"""The login screen: server address, name, masked password, a Log in button and inline feedback.

The screen only collects and shows; the App does the logging in. Every failure comes back through
`show_error`, which unlocks the form and puts the cursor where the fix goes, so the user corrects and
retries without restarting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from ...i18n import N_, _, name_rule, ngettext, styled_parts
from ...protocol.messages import MIN_NEW_PASSWORD_CHARS, is_valid_name
from ..binding_words import KeysInLanguage


def _server_line(label: str) -> Text:
    # The label is padded to the other rows' width in every language.
    return Text.assemble((_("Server").ljust(10), "bold"), label)


class LoginScreen(KeysInLanguage, Screen[None]):
    """Who you are and where you connect. Posts `LoginScreen.Submitted`; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", N_("Cancel"), show=False),
        # Priority: the app moves focus as it reads the Tab, before it hands on the keys after it.
        # A password manager's auto-type sends "name<Tab>password<Enter>" in one burst; without
        # this the Tab reaches the name field first and the password lands there too.
        Binding("tab", "app.focus_next", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", show=False, priority=True),
    ]

    @dataclass
    class Submitted(Message):
        """The user asked to log in with these credentials."""

        user: str
        password: str
        client_port: int
        #: True once the user confirmed that this new name is to become an account.
        register: bool = False

    class Cancelled(Message):
        """The user pressed Escape while connecting: give up this attempt."""

    class FindServers(Message):
        """The user asked which servers are on the network ("Find servers", docs/protocol.md 19)."""

    def __init__(
        self, server_label: str, client_port: int, user: str = "", *, fixed_server: bool = False
    ) -> None:
        super().__init__()
        self.server_label = server_label
        self.client_port = client_port
        #: True in a browser tab (labchat-web): the server and the client port are set on the web
        #: server's command line, so the port row and "Find servers" are not offered.
        self.fixed_server = fixed_server
        self.initial_user = user
        self.busy = False
        #: The new name the user was asked about ("create it?"), while that question stands.
        self._offered_name: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="login-box") as box:
            box.border_title = _("labchat · log in")
            yield Static(_server_line(self.server_label), id="login-server")
            with Horizontal(classes="login-row"):
                yield Label(_("Name"), classes="login-label")
                yield Input(
                    value=self.initial_user,
                    placeholder=_("your user name"),
                    id="user",
                    compact=True,
                    # Focus must not select the name: a password typed next would replace it.
                    select_on_focus=False,
                )
            with Horizontal(classes="login-row"):
                yield Label(_("Password"), classes="login-label")
                yield Input(placeholder=_("password"), password=True, id="password", compact=True)
            with Horizontal(classes="login-row", id="login-port-row"):
                yield Label(_("Your port"), classes="login-label")
                yield Input(
                    value=str(self.client_port), type="integer", max_length=5, id="port",
                    compact=True,
                )  # fmt: skip
                yield Label(_("UDP port on this computer; 0 = any free one"), id="port-hint")
            with Horizontal(id="login-actions"):
                yield Button(_("Log in"), id="login", variant="primary", compact=True)
                yield Button(_("Create account"), id="create", variant="success", compact=True)
                yield Button(_("Find servers"), id="find", compact=True)
            yield Static(_("New name? You will be asked before an account is created."), id="login-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#create", Button).display = False
        self.query_one("#login-port-row").display = not self.fixed_server
        self.query_one("#find", Button).display = not self.fixed_server
        # A name from --user: the next thing to type is the password.
        self.query_one("#password" if self.initial_user else "#user", Input).focus()

    # ------------------------------------------------------------ form

    @property
    def user_input(self) -> Input:
        return self.query_one("#user", Input)

    @property
    def password_input(self) -> Input:
        return self.query_one("#password", Input)

    @property
    def port_input(self) -> Input:
        return self.query_one("#port", Input)

    @on(Input.Submitted, "#user")
    def _user_entered(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.password_input.value:
            self.password_input.focus()
        else:
            self._submit()

    @on(Input.Submitted, "#password")
    @on(Input.Submitted, "#port")
    @on(Button.Pressed, "#login")
    def _password_entered(self, event: Message) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#find")
    def _find_servers(self, event: Button.Pressed) -> None:
        event.stop()
        if not self.busy:
            self._set_status(_("Looking for servers on this network…"), "-busy")
            self.post_message(self.FindServers())

    def set_server(self, label: str) -> None:
        """The user picked another server: show where the next login goes."""
        self.server_label = label
        self.query_one("#login-server", Static).update(_server_line(label))
        self.show_info(_("Server set to {server}: log in when ready.").format(server=label))

    @on(Button.Pressed, "#create")
    def _create_confirmed(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit(register=True)

    @on(Input.Changed, "#user")
    def _name_changed(self, event: Input.Changed) -> None:
        # The offer was for the name as it was: another name must be asked about again.
        if self._offered_name is not None and event.value.strip() != self._offered_name:
            self._withdraw_offer()

    def ask_create(self, user: str) -> None:
        """The server has no account `user` and would create one: ask before doing it, once.

        Enter on the focused button creates it; anything else (editing the name, Escape) does not.
        """
        self._lock(False)
        self._offered_name = user
        self._set_status(
            Text.assemble(
                *styled_parts(
                    _(
                        "No account {name} here yet: create it with this password? "
                        "Enter creates it; correct the name if it was a typo."
                    ),
                    name=repr(user),
                )
            ),
            "-info",
        )  # fmt: skip
        create = self.query_one("#create", Button)
        create.display = True
        create.focus()

    def _withdraw_offer(self) -> None:
        self._offered_name = None
        self.query_one("#create", Button).display = False

    def _submit(self, *, register: bool = False) -> None:
        if self.busy:
            return
        user = self.user_input.value.strip()
        password = self.password_input.value
        if not user:
            self.show_error(_("Type your user name."), focus="user")
            return
        if not is_valid_name(user):
            # Said here, in full, instead of cutting a long name short without a word.
            self.show_error(
                _("Invalid user name {name!r}: {rule}.").format(name=user, rule=name_rule()), focus="user"
            )
            return
        if not password:
            self.show_error(_("Type your password."), focus="password")
            return
        port_text = self.port_input.value.strip() or "0"
        if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
            self.show_error(_("Your port must be a number from 0 to 65535 (0: any free port)."), "port")
            return
        if register and user != self._offered_name:
            register = False  # the name changed since the question: ask again
        if register and len(password) < MIN_NEW_PASSWORD_CHARS:
            # Said before anything is sent, and the offer stays: a longer password, then Enter.
            self.show_error(new_password_too_short(), focus="password")
            return
        self._withdraw_offer()
        self.post_message(self.Submitted(user, password, int(port_text), register))

    def action_cancel(self) -> None:
        if self.busy:
            self.post_message(self.Cancelled())
        elif self._offered_name is not None:
            self._withdraw_offer()
            self._set_status(_("Not created. Correct the name, or log in with an existing one."), "-info")
            self.user_input.focus()

    # ------------------------------------------------------------ feedback

    def _set_status(self, text: str | Text, kind: str) -> None:
        status = self.query_one("#login-status", Static)
        # Words from the server are text, never markup: a reason with "[" must show as typed.
        status.update(Text(text) if isinstance(text, str) else text)
        for name in ("-busy", "-error", "-info"):
            status.set_class(name == kind, name)

    def _lock(self, locked: bool) -> None:
        self.busy = locked
        login = self.query_one("#login", Button)
        create = self.query_one("#create", Button)
        find = self.query_one("#find", Button)
        for widget in (self.user_input, self.password_input, self.port_input, login, create, find):
            widget.disabled = locked

    def show_busy(self, text: str) -> None:
        """Connecting: lock the form and say what is happening."""
        self._lock(True)
        self._set_status(text, "-busy")

    def show_error(self, text: str | Text, focus: str = "user") -> None:
        """A failure, in words; the form unlocks with the cursor in the field to fix."""
        self._lock(False)
        self._set_status(text, "-error")
        target = {"password": self.password_input, "port": self.port_input}.get(focus, self.user_input)
        target.focus()
        if focus == "password":
            target.value = ""

    def show_info(self, text: str) -> None:
        """A neutral remark, with the form unlocked."""
        self._lock(False)
        self._set_status(text, "-info")
        self.password_input.focus()  # Enter there tries again at once


def new_password_too_short() -> str:
    """The one line for a new account's password under the server's minimum (as the server says it)."""
    return ngettext(
        "New accounts need a password of at least {count} character.",
        "New accounts need a password of at least {count} characters.",
        MIN_NEW_PASSWORD_CHARS,
    ).format(count=MIN_NEW_PASSWORD_CHARS)
