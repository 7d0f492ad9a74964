"""Settings from TRUCE_*, the app factories, start-up, and the `truce serve` command."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.api.main import create_app, create_app_from_env
from app.cli import cli
from app.scenario import GEODATA
from app.service import Service
from app.settings import MIB, Settings, parse_api_keys
from app.store import SQLiteStore

ENV = (
    "TRUCE_DATABASE_URL",
    "TRUCE_API_KEYS",
    "TRUCE_PUBLIC_READ",
    "TRUCE_LOAD_SCENARIO",
    "TRUCE_MAX_BODY_BYTES",
    "TRUCE_MAX_FEATURES",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_setting_has_a_working_default(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite:///data/truce.sqlite"
    assert settings.api_keys == [] and settings.public_read is False
    assert settings.max_body_bytes == 32 * MIB and settings.max_features == 100_000
    assert settings.load_scenario is False and settings.tiles


def test_settings_come_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRUCE_API_KEYS", " k1:viewer , k:2:ADMIN ,")
    clean_env.setenv("TRUCE_PUBLIC_READ", "true")
    clean_env.setenv("TRUCE_MAX_BODY_BYTES", "1024")
    settings = Settings(_env_file=None)
    assert [(k.key.get_secret_value(), k.role) for k in settings.api_keys] == [
        ("k1", "viewer"),
        ("k:2", "admin"),  # the role follows the last colon
    ]
    assert settings.public_read and settings.max_body_bytes == 1024


@pytest.mark.parametrize(
    ("value", "words"),
    [("secret-1:boss", "entry 1: role 'boss'"), ("a:viewer,secret-2", "entry 2 must read")],
)
def test_bad_keys_are_refused_without_showing_them(value: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as refused:
        parse_api_keys(value)
    assert "secret" not in str(refused.value)
    with pytest.raises(ValueError) as refused_settings:
        Settings(_env_file=None, api_keys=value)
    assert "secret" not in str(refused_settings.value)


def test_the_default_database_is_created_with_its_directory(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.chdir(tmp_path)
    with TestClient(create_app(Settings(_env_file=None))) as client:
        assert client.get("/health").status_code == 200
    assert (tmp_path / "data" / "truce.sqlite").exists()


def test_the_env_factory_reads_truce_variables(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("TRUCE_DATABASE_URL", f"sqlite:///{tmp_path}/env.sqlite")
    clean_env.setenv("TRUCE_PUBLIC_READ", "1")
    clean_env.setenv("TRUCE_LOAD_SCENARIO", "true")
    with TestClient(create_app_from_env()) as client:
        assert len(client.get("/zones", params={"at": "all"}).json()["features"]) == 8


def test_the_scenario_is_loaded_only_into_an_empty_database(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.sqlite") as store:
        service = Service(store)
        assert service.load_scenario()
        assert not service.load_scenario()
        assert store.count_reports() == 13
        assert len(store.list_zones(all_versions=True)) == 8


def test_the_scenario_directory_can_be_set(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # As in the container image, where geodata/ is not beside the installed package.
    directory = tmp_path / "geodata"
    shutil.copytree(GEODATA, directory)
    zones = json.loads((directory / "zones.geojson").read_text())
    zones["features"] = zones["features"][:1]
    (directory / "zones.geojson").write_text(json.dumps(zones))
    clean_env.setenv("TRUCE_GEODATA_DIR", str(directory))
    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path}/g.sqlite", load_scenario=True
    )
    with TestClient(create_app(settings)) as client:
        assert client.app.state.service.store.list_zones() == [  # type: ignore[attr-defined]
            client.app.state.service.store.get_zone(zones["features"][0]["id"])  # type: ignore[attr-defined]
        ]


def test_serve_passes_its_options_to_uvicorn_through_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[Any, ...]] = []
    clean_env.setattr("uvicorn.run", lambda *args, **kwargs: calls.append((args, kwargs)))
    url = f"sqlite:///{tmp_path}/served.sqlite"
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--port",
            "8123",
            "--workers",
            "2",
            "--database-url",
            url,
            "--load-scenario",
            "--public-read",
        ],
    )
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = calls
    assert args == ("app.api.main:create_app_from_env",)
    assert kwargs["factory"] is True
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("127.0.0.1", 8123, 2)
    assert os.environ["TRUCE_DATABASE_URL"] == url
    assert os.environ["TRUCE_LOAD_SCENARIO"] == "true"
    # With several workers the scenario is loaded once, before they start.
    with SQLiteStore(tmp_path / "served.sqlite") as store:
        assert store.count_reports() == 13
    assert "http://127.0.0.1:8123" in result.output


def test_serve_refuses_bad_settings_before_starting(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr("uvicorn.run", lambda *a, **k: pytest.fail("uvicorn started"))
    clean_env.setenv("TRUCE_API_KEYS", "abc:superuser")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "superuser" in result.output and "abc" not in result.output
