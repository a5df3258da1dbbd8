"""`labchat-admin`: add, remove and list accounts, reset passwords, and grant or revoke server admin
(an operator in every room, docs/protocol.md 18.7) in the server's database, and export a room's
transcript (20.6: `export-room ROOM [--since ...] [--out PATH]`).

It opens the same SQLite file as the server (WAL mode lets it do so while the server runs). Passwords
come from LABCHAT_PASSWORD or a hidden prompt, never from the command line, where `ps` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..i18n import _, add_lang_argument, choose_language, name_rule, ngettext
from ..protocol.messages import MIN_NEW_PASSWORD_CHARS, is_valid_name
from .store import Store, StoreError, default_db_path
from .transcript_export import export

if TYPE_CHECKING:
    from .cluster.accounts import ClusterAccounts


#: How long `--cluster` commands try to reach NATS before they give up with one line.
CLUSTER_WAIT_S = 10.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, _("labchat-admin: {message} (see --help)").format(message=message) + "\n")


def _password(prompt: str) -> str:
    env = os.environ.get("LABCHAT_PASSWORD")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise StoreError(_("set LABCHAT_PASSWORD or run on a terminal to be asked for the password"))
    first = getpass.getpass(prompt)
    if getpass.getpass(_("Again: ")) != first:
        raise StoreError(_("the passwords did not match"))
    return first


def _too_short() -> str:
    return ngettext(
        "passwords need at least {count} character", "passwords need at least {count} characters",
        MIN_NEW_PASSWORD_CHARS,
    ).format(count=MIN_NEW_PASSWORD_CHARS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    choose_language("labchat-admin", argv)
    p = _Parser(prog="labchat-admin", description=_("Manage labchat accounts."))
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help=_("server database (default {path})").format(path=default_db_path()),
    )
    p.add_argument("--cluster", metavar="URLS", default=None,
                   help=_("the NATS cluster of a labchat cluster: nats://HOST:PORT[,nats://HOST:PORT...]"))
    add_lang_argument(p)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help=_("list accounts (admins marked)"))
    for name, text in (
        ("add", _("create an account")),
        ("remove", _("delete an account")),
        ("passwd", _("set a new password")),
        ("grant", _("make an account a server admin: an operator in every room (from its next login)")),
        ("revoke", _("take server admin from an account")),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("name")
    ex = sub.add_parser("export-room", help=_("write a room's transcript as PATH.md and PATH.html"))
    ex.add_argument("room")
    ex.add_argument(
        "--since", default=None,
        help=_(
            "'session' (the default when one was started), an ISO time, or hours ('3h'; else the last 24 h)"
        ),
    )  # fmt: skip
    ex.add_argument("--out", type=Path, default=None, help=_("PATH without extension (default ./ROOM-DATE)"))
    _add_backup_commands(sub)
    args = p.parse_args(argv)
    if args.command in ("export", "import"):
        return _backup(args)
    try:
        if args.cluster is not None:
            return _run_cluster(args)
        store = Store(args.db or default_db_path())
        for warning in store.warnings:
            print(_("labchat-admin: warning: {warning}").format(warning=warning), file=sys.stderr)
        try:
            return _run(store, args)
        finally:
            store.close()
    except StoreError as exc:
        print(f"labchat-admin: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print(file=sys.stderr)
        return 130


def _run(store: Store, args: argparse.Namespace) -> int:
    if args.command == "list":
        admins = set(store.list_admins())
        for account in store.list_accounts():
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(account.created_ms / 1000))
            # Tab-separated columns for scripts: the words in them are translated, the layout is not.
            line = _("{name}\tcreated {when}").format(name=account.name, when=created)
            print(line + ("\t" + _("admin") if account.name in admins else ""))
        return 0
    if args.command == "export-room":
        md, page = export(store, args.room.removeprefix("#"), args.since, args.out, int(time.time() * 1000))
        print(_("wrote {markdown} and {html}").format(markdown=md, html=page))
        return 0
    name = args.name
    if args.command == "add":
        if not is_valid_name(name):
            raise StoreError(_("invalid name {name!r}: {rule}").format(name=name, rule=name_rule()))
        password = _password(_("Password for {user}: ").format(user=name))
        if len(password) < MIN_NEW_PASSWORD_CHARS:
            raise StoreError(_too_short())
        store.create_account(name, password)
        print(_("added {name}").format(name=name))
    elif args.command == "remove":
        if not store.remove_account(name):
            raise StoreError(_("no account named {name!r}").format(name=name))
        print(_("removed {name}").format(name=name))
    elif args.command in ("grant", "revoke"):
        if not store.set_admin(name, args.command == "grant"):
            raise StoreError(_("no account named {name!r}").format(name=name))
        found = store.get_account(name)
        shown = found.name if found is not None else name
        if args.command == "grant":
            print(_("{name} is now a server admin").format(name=shown))
        else:
            print(_("{name} is no longer a server admin").format(name=shown))
    elif args.command == "passwd":
        if store.get_account(name) is None:
            raise StoreError(_("no account named {name!r}").format(name=name))
        password = _password(_("New password for {user}: ").format(user=name))
        if len(password) < MIN_NEW_PASSWORD_CHARS:
            raise StoreError(_too_short())
        store.set_password(name, password)
        print(_("password of {name} changed").format(name=name))
    return 0


# ---------------------------------------------------------------- accounts of a cluster (--cluster)


def _run_cluster(args: argparse.Namespace) -> int:
    """The account commands on a cluster's ACCOUNTS bucket (cluster/accounts.py): every relay's
    database follows it within a moment. Same commands, same output as on one server's database."""
    import asyncio

    from .cluster.accounts import ClusterAccounts
    from .cluster.connection import ClusterConnection
    from .cluster.names import ACCOUNTS_BUCKET
    from .store import SCRYPT_N

    if args.command == "export-room":
        raise StoreError(
            _("export-room reads a relay's database: run it on a relay's machine, without --cluster")
        )
    servers = [u.strip() for u in args.cluster.split(",") if u.strip()]
    if not servers:
        raise StoreError(_("--cluster wants nats://HOST:PORT[,nats://HOST:PORT...]"))
    name = getattr(args, "name", "")
    if args.command == "add" and not is_valid_name(name):
        raise StoreError(_("invalid name {name!r}: {rule}").format(name=name, rule=name_rule()))
    password = ""
    if args.command in ("add", "passwd"):
        # Asked before connecting: nobody types a password into a tool that then fails to connect.
        prompt = _("Password for {user}: ") if args.command == "add" else _("New password for {user}: ")
        password = _password(prompt.format(user=name))
        if len(password) < MIN_NEW_PASSWORD_CHARS:
            raise StoreError(_too_short())

    async def run() -> int:
        try:
            # The connection retries for ever (a relay wants that); a command gives up and says so.
            connecting = ClusterConnection.connect(servers, name="labchat-admin", connect_timeout_s=2.0)
            conn = await asyncio.wait_for(connecting, CLUSTER_WAIT_S)
        except Exception as exc:  # nats-py raises kinds of its own here, OSError, the timeout
            raise StoreError(_("cannot reach the NATS cluster at {urls}: {reason}").format(
                urls=args.cluster, reason=str(exc) or _("no answer"))) from None
        try:
            accounts = ClusterAccounts(await conn.bucket(ACCOUNTS_BUCKET))
            return await _cluster_command(accounts, args.command, name, password, SCRYPT_N)
        finally:
            await conn.close()

    return asyncio.run(run())


async def _cluster_command(
    accounts: ClusterAccounts, command: str, name: str, password: str, scrypt_n: int
) -> int:
    from dataclasses import replace

    from .cluster.accounts import new_account
    from .store import SCRYPT_P, SCRYPT_R, hash_password

    def missing() -> StoreError:
        return StoreError(_("no account named {name!r}").format(name=name))

    if command == "list":
        for account in await accounts.all():
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(account.created_ms / 1000))
            line = _("{name}\tcreated {when}").format(name=account.name, when=created)
            print(line + ("\t" + _("admin") if account.admin else ""))
    elif command == "add":
        if not await accounts.create(new_account(name, password, scrypt_n)):
            raise StoreError(_("account {name!r} exists already").format(name=name))
        print(_("added {name}").format(name=name))
    elif command == "remove":
        if not await accounts.remove(name):
            raise missing()
        print(_("removed {name}").format(name=name))
    elif command in ("grant", "revoke"):
        changed = await accounts.change(name, lambda a: replace(a, admin=command == "grant"))
        if changed is None:
            raise missing()
        if command == "grant":
            print(_("{name} is now a server admin").format(name=changed.name))
        else:
            print(_("{name} is no longer a server admin").format(name=changed.name))
    elif command == "passwd":
        salt = os.urandom(16)
        digest = hash_password(password, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
        how = lambda a: replace(a, salt=salt, digest=digest, n=scrypt_n, r=SCRYPT_R, p=SCRYPT_P)  # noqa: E731
        changed = await accounts.change(name, how)
        if changed is None:
            raise missing()
        print(_("password of {name} changed").format(name=changed.name))
    return 0

# ---------------------------------------------------------------- export / import (backup.py)


def _add_backup_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    ex = sub.add_parser(
        "export", help=_("write accounts, rooms, roles, sanctions and every room's history to FILE"
                         " (JSON lines; FILE.gz is compressed)"),
    )  # fmt: skip
    ex.add_argument("file", type=Path, metavar="FILE")
    im = sub.add_parser(
        "import", help=_("load an export FILE into a fresh database (--db) and/or the cluster (--cluster)"),
    )  # fmt: skip
    im.add_argument("file", type=Path, metavar="FILE")


def _backup(args: argparse.Namespace) -> int:
    """`export FILE` and `import FILE`: one line per outcome, one line per error (with the file's
    line number for a bad file), exit 1 on failure."""
    from .backup import ExportFileError, export_database, import_database

    db_path: Path = args.db or default_db_path()
    try:
        if args.command == "export":
            counts = export_database(db_path, args.file)
            print(_("exported {accounts} accounts, {rooms} rooms and {messages} messages to {path}").format(
                accounts=counts.account, rooms=counts.room, messages=counts.message, path=args.file))
            return 0
        if args.cluster is None or args.db is not None:
            counts = import_database(args.file, db_path)
            print(_("imported {accounts} accounts, {rooms} rooms and {messages} messages into {path}").format(
                accounts=counts.account, rooms=counts.room, messages=counts.message, path=db_path))
        if args.cluster is not None:
            return _import_cluster(args.cluster, args.file)
        return 0
    except ExportFileError as exc:
        print(_("labchat-admin: {path}: {error} (nothing was imported)").format(path=args.file, error=exc),
              file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"labchat-admin: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _import_cluster(urls: str, path: Path) -> int:
    import asyncio

    from .cluster.connection import ClusterConnection, ClusterUnavailable
    from .cluster.importer import ClusterImportError, import_into_cluster

    servers = [u.strip() for u in urls.split(",") if u.strip()]
    if not servers:
        raise StoreError(_("--cluster wants nats://HOST:PORT[,nats://HOST:PORT...]"))

    async def run() -> int:
        try:
            conn = await ClusterConnection.connect(servers, name="labchat-admin")
        except (OSError, TimeoutError, Exception) as exc:  # nats-py raises its own kinds here
            raise ClusterUnavailable(_("cannot reach the NATS cluster at {urls}: {reason}").format(
                urls=urls, reason=str(exc) or type(exc).__name__)) from None
        try:
            done = await import_into_cluster(conn, path, lambda line: print(line, file=sys.stderr))
        finally:
            await conn.close()
        print(_("imported into the cluster: {published} messages in {rooms} rooms ({present} already there),"
                " {created} accounts ({existing} already there), {moderation} roles, sanctions and"
                " invitations ({moderation_present} already there), in {seconds:.1f} s").format(
            published=done.messages_published, rooms=done.rooms, present=done.messages_present,
            created=done.accounts_created, existing=done.accounts_present, moderation=done.moderation_created,
            moderation_present=done.moderation_present, seconds=done.elapsed_s))
        return 0

    try:
        return asyncio.run(run())
    except ClusterUnavailable as exc:
        again = _("run the import again to continue: nothing is imported twice")
        print(f"labchat-admin: {exc} ({again})", file=sys.stderr)
        return 1
    except ClusterImportError as exc:
        print(f"labchat-admin: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
