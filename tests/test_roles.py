"""Roles are defined once (`app.roles`) and every layer reads them from there."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.api.auth import Principal
from app.cli import cli
from app.roles import ROLES, Role
from app.settings import parse_api_keys
from app.store import SQLiteStore, hash_key


def test_roles_nest_weakest_first() -> None:
    assert ROLES == ("viewer", "observer", "admin")
    assert [r.includes(Role.OBSERVER) for r in Role] == [False, True, True]
    assert Principal(Role.ADMIN, "a").allows(Role.VIEWER)
    assert not Principal(Role.VIEWER, "v").allows(Role.OBSERVER)


def test_settings_keys_carry_a_role_and_refuse_others() -> None:
    [key] = parse_api_keys("s3cret:Observer")
    assert key.role is Role.OBSERVER
    with pytest.raises(ValueError, match="viewer, observer, admin"):
        parse_api_keys("s3cret:god")


def test_the_store_and_the_cli_take_exactly_these_roles(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "keys.sqlite") as store:
        for role in Role:
            assert store.add_key(hash_key(f"k-{role}"), role, role, "test").role == role
        with pytest.raises(ValueError, match="viewer, observer, admin"):
            store.add_key(hash_key("k-god"), "god", "god", "test")
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    runner = CliRunner()
    for role in Role:
        result = runner.invoke(cli, ["keys", "create", "--role", role.value, "--database-url", url])
        assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["keys", "create", "--role", "god", "--database-url", url]).exit_code
