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

from ..protocol.messages import MIN_NEW_PASSWORD_CHARS, NAME_RULE, is_valid_name
from .store import Store, StoreError, default_db_path
from .transcript_export import export


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"labchat-admin: {message} (see --help)\n")


def _password(prompt: str) -> str:
    env = os.environ.get("LABCHAT_PASSWORD")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise StoreError("set LABCHAT_PASSWORD or run on a terminal to be asked for the password")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise StoreError("the passwords did not match")
    return first


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="labchat-admin", description="Manage labchat accounts.")
    p.add_argument(
        "--db", type=Path, default=None, help=f"server database (default {default_db_path()})"
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list accounts (admins marked)")
    for name, text in (
        ("add", "create an account"),
        ("remove", "delete an account"),
        ("passwd", "set a new password"),
        ("grant", "make an account a server admin: an operator in every room (from its next login)"),
        ("revoke", "take server admin from an account"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("name")
    ex = sub.add_parser("export-room", help="write a room's transcript as PATH.md and PATH.html")
    ex.add_argument("room")
    ex.add_argument(
        "--since", default=None,
        help="'session' (the default when one was started), an ISO time, or hours ('3h'; else the last 24 h)",
    )  # fmt: skip
    ex.add_argument("--out", type=Path, default=None, help="PATH without extension (default ./ROOM-DATE)")
    args = p.parse_args(argv)
    try:
        store = Store(args.db or default_db_path())
        for warning in store.warnings:
            print(f"labchat-admin: warning: {warning}", file=sys.stderr)
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
            print(f"{account.name}\tcreated {created}" + ("\tadmin" if account.name in admins else ""))
        return 0
    if args.command == "export-room":
        md, page = export(store, args.room.removeprefix("#"), args.since, args.out, int(time.time() * 1000))
        print(f"wrote {md} and {page}")
        return 0
    name = args.name
    if args.command == "add":
        if not is_valid_name(name):
            raise StoreError(f"invalid name {name!r}: {NAME_RULE}")
        password = _password(f"Password for {name}: ")
        if len(password) < MIN_NEW_PASSWORD_CHARS:
            raise StoreError(f"passwords need at least {MIN_NEW_PASSWORD_CHARS} characters")
        store.create_account(name, password)
        print(f"added {name}")
    elif args.command == "remove":
        if not store.remove_account(name):
            raise StoreError(f"no account named {name!r}")
        print(f"removed {name}")
    elif args.command in ("grant", "revoke"):
        if not store.set_admin(name, args.command == "grant"):
            raise StoreError(f"no account named {name!r}")
        found = store.get_account(name)
        shown = found.name if found is not None else name
        print(f"{shown} is {'now' if args.command == 'grant' else 'no longer'} a server admin")
    elif args.command == "passwd":
        if store.get_account(name) is None:
            raise StoreError(f"no account named {name!r}")
        password = _password(f"New password for {name}: ")
        if len(password) < MIN_NEW_PASSWORD_CHARS:
            raise StoreError(f"passwords need at least {MIN_NEW_PASSWORD_CHARS} characters")
        store.set_password(name, password)
        print(f"password of {name} changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
