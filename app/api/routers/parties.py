"""Parties: the registry that report parties are matched against (`app.parties`).

`GET /parties` lists them; `PUT /parties/{code}` registers a party or replaces it (admin), in one
audited write. What a party is and how values match it is the service's (`Service.put_party`,
`app.parties`): the router only reads the body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.api.auth import AdminKey, ViewerKey
from app.api.deps import ListLimitDep, ServiceDep
from app.api.models import problems
from app.api.responses import ORJSONResponse
from app.domain import Party
from app.parties import DEFAULT_COLOR

router = APIRouter(tags=["parties"])

PartyCode = Annotated[str, Path(description="the party's code", examples=["RU-PK"])]


class PartyOut(BaseModel):
    """A registered party: its code, display name, map colour and aliases."""

    code: str
    name: str
    color: str = Field(description="map colour, #rrggbb")
    aliases: list[str] = Field(
        description="other names, exact or fnmatch patterns (`*`, `?`, `[...]`), matched "
        "case-insensitively"
    )


class PartyList(BaseModel):
    """Every registered party, by code."""

    parties: list[PartyOut]
    numberMatched: int
    numberReturned: int


class PartyIn(BaseModel):
    """A party to register under the path's code (an existing one is replaced)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "Russian peacekeeping contingent",
                "color": "#009e73",
                "aliases": ["Russian peacekeepers", "Military Forces of Russia*Peacekeeping*"],
            }
        },
    )

    name: str = Field(max_length=4096)
    color: str = Field(
        default=DEFAULT_COLOR,
        validation_alias=AliasChoices("color", "colour"),
        description="map colour, #rrggbb (`colour` is accepted too)",
    )
    aliases: list[str] = Field(default_factory=list, max_length=4096)


def _out(party: Party) -> dict[str, object]:
    return {
        "code": party.code,
        "name": party.name,
        "color": party.color,
        "aliases": list(party.aliases),
    }


@router.get(
    "/parties",
    operation_id="listParties",
    response_model=PartyList,
    response_class=ORJSONResponse,
    responses=problems(400, 401, 403),
)
def list_parties(service: ServiceDep, _: ViewerKey, limit: ListLimitDep) -> Response:
    """The registered parties with their names, colours and aliases; `limit` keeps the first.

    A report's `party` must be one of these codes or match one of their aliases (it is stored
    as the code); when none is registered, any party is taken as sent.
    """
    parties = service.parties()
    shown = parties[:limit]
    return ORJSONResponse(
        {
            "parties": [_out(p) for p in shown],
            "numberMatched": len(parties),
            "numberReturned": len(shown),
        }
    )


@router.put(
    "/parties/{code}",
    operation_id="putParty",
    response_model=PartyOut,
    response_class=ORJSONResponse,
    responses={
        201: {"description": "the party was registered"},
        **problems(400, 401, 403, 422, 503),
    },
)
def put_party(code: PartyCode, body: PartyIn, service: ServiceDep, key: AdminKey) -> Response:
    """Register a party under `code`, or replace the registered one (200).

    Aliases are exact names or fnmatch patterns (e.g. ACLED actor names such as
    `Military Forces of Azerbaijan*`). An exact alias that already names another party is
    refused (422 naming `aliases/<i>`). The write is in the audit log (`party.create`,
    `party.update`).
    """
    party, created = service.put_party(
        Party(code=code, name=body.name, color=body.color, aliases=tuple(body.aliases)),
        key.actor,
    )
    return ORJSONResponse(_out(party), status_code=201 if created else 200)
