"""`truce parties list|set|import-map`: the registered parties, through the service.

Report parties are matched against these (codes, then exact aliases, then alias patterns, all
case-insensitive; `app.parties`). `import-map` saves `--party-map` rules as aliases, so that an
ACLED export can be imported later without repeating them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import (
    DEFAULT_DATABASE_URL,
    Actor,
    DatabaseUrl,
    actor_name,
    console,
    handled_errors,
    open_service,
)
from app.domain import Party
from app.errors import InvalidParameter
from app.io import parse_party_map
from app.parties import DEFAULT_COLOR

parties_app = typer.Typer(
    help="Registered parties: codes, names, map colours and aliases that report parties match."
)


@parties_app.command("list")
def parties_list(database_url: DatabaseUrl = DEFAULT_DATABASE_URL) -> None:
    """List the registered parties with their aliases."""
    with handled_errors():
        with open_service(database_url, create=False) as service:
            parties = service.parties()
        grid = Table(title=f"{len(parties)} registered part(ies)")
        for name in ("code", "name", "colour", "aliases"):
            grid.add_column(name)
        for party in parties:
            grid.add_row(party.code, party.name, party.color, "; ".join(party.aliases) or "-")
        console.print(grid)
        if not parties:
            console.print(
                "no party is registered: every report party is taken as sent "
                "(register one with `truce parties set` to turn matching on)"
            )


@parties_app.command("set")
def parties_set(
    code: Annotated[str, typer.Argument(help="The party's code, e.g. RU-PK")],
    name: Annotated[
        str | None, typer.Option(help="Display name [default: kept, or the code when new]")
    ] = None,
    colour: Annotated[
        str | None,
        typer.Option("--colour", "--color", help="Map colour #rrggbb [default: kept, or grey]"),
    ] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option("--alias", help="Another name, exact or a pattern with * (repeatable; added)"),
    ] = None,
    clear_aliases: Annotated[
        bool, typer.Option(help="Drop the stored aliases first (then add the --alias ones)")
    ] = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    actor: Actor = None,
) -> None:
    """Register party CODE, or change it: options not given keep their stored value."""
    with handled_errors():
        with open_service(database_url, create=True) as service:
            current = next((p for p in service.parties() if p.code == code.strip()), None)
            kept = () if current is None or clear_aliases else current.aliases
            party = Party(
                code=code,
                name=name if name is not None else (current.name if current else code.strip()),
                color=colour
                if colour is not None
                else (current.color if current else DEFAULT_COLOR),
                aliases=(*kept, *(alias or [])),
            )
            stored, created = service.put_party(party, actor_name(actor))
        what = "registered" if created else "changed"
        console.print(
            f"{what} {stored.code} ({stored.name}, {stored.color}): {len(stored.aliases)} alias(es)"
        )


@parties_app.command("import-map")
def parties_import_map(
    rules: Annotated[
        list[str],
        typer.Argument(
            help="'ACTOR=CODE' rules or JSON files {actor: code}, as --party-map takes them"
        ),
    ],
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    actor: Actor = None,
) -> None:
    """Save party-map rules as aliases of registered parties (each CODE must be registered)."""
    with handled_errors():
        mapping = parse_party_map(rules)
        by_code: dict[str, list[str]] = defaultdict(list)
        for name, code in mapping.items():
            by_code[code].append(name)
        with open_service(database_url, create=True) as service:
            registry = service.party_registry()
            for code in by_code:
                if registry.get(code) is None:
                    known = ", ".join(registry.codes) or "none"
                    raise InvalidParameter(
                        f"party {code!r} is not registered (registered: {known}); "
                        f"register it first with `truce parties set {code} --name ...`",
                        field="rules",
                    )
            who = actor_name(actor)
            added = 0
            for code, names in sorted(by_code.items()):
                party = registry.get(code)
                assert party is not None  # checked above
                new = [
                    n for n in names if n.casefold() not in {a.casefold() for a in party.aliases}
                ]
                if new:
                    service.put_party(
                        Party(party.code, party.name, party.color, (*party.aliases, *new)), who
                    )
                    added += len(new)
        console.print(f"saved {added} alias(es) for {len(by_code)} part(ies)")
