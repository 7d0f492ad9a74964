"""`truce keys create|list|revoke`: the API keys stored (hashed) in the database."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    Actor,
    DatabaseUrl,
    actor_name,
    console,
    format_time,
    handled_errors,
    open_database,
)
from app.roles import Role
from app.store import hash_key

keys_app = typer.Typer(help="API keys stored in the database (hashed), beside TRUCE_API_KEYS.")


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="viewer (read), observer (+ reports), admin (all)")],
    label: Annotated[str, typer.Option(help="What the key is for; the audit log names it")] = "",
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    actor: Actor = None,
) -> None:
    """Create an API key and print it once: only its SHA-256 hash is stored."""
    with handled_errors():
        secret = secrets.token_urlsafe(32)
        with open_database(database_url, create=True) as store:
            record = store.add_key(
                hash_key(secret), role.value, label or role.value, actor_name(actor)
            )
        typer.echo(
            f"created key {record.id} (role {record.role}, label {record.label!r}); "
            "it is shown only this once, store it now:",
            err=True,
        )
        typer.echo(secret)


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """List the stored keys (never their secrets), revoked ones included."""
    with handled_errors():
        with open_database(database_url, create=False) as store:
            records = store.list_keys()
        grid = Table(title=f"{len(records)} stored key(s)")
        for name in ("id", "role", "label", "created", "by", "revoked"):
            grid.add_column(name)
        for record in records:
            grid.add_row(
                str(record.id),
                record.role,
                record.label,
                format_time(record.created_at),
                record.created_by,
                "active" if record.active else f"[red]{format_time(record.revoked_at)}[/red]",
            )
        console.print(grid)
        configured = [k for k in os.environ.get("TRUCE_API_KEYS", "").split(",") if k.strip()]
        if configured:
            console.print(f"and {len(configured)} key(s) from TRUCE_API_KEYS (not listed)")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    actor: Actor = None,
) -> None:
    """Revoke a stored key; it stops working at once, and stays listed as revoked."""
    with handled_errors():
        with open_database(database_url, create=False) as store:
            record = store.revoke_key(key_id, actor_name(actor))
        console.print(f"key {record.id} ({record.role}, {record.label!r}) revoked")
