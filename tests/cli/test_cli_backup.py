"""`truce backup` and `truce restore` while another process keeps filing reports."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.domain import Report
from app.store import SQLiteStore
from app.store.sqlite_backup import BackupError, backup, in_use, integrity_problems

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2022, 3, 24, 6, tzinfo=UTC)
runner = CliRunner()

# Files batches of 5 reports until told to stop (or 4,000 batches), writing each batch's ids to
# the log only after add_reports returned: the log lists exactly what was acknowledged.
WRITER = """
import os, sys
from datetime import UTC, datetime, timedelta
from app.domain import Report
from app.store import SQLiteStore
db, log, stop = sys.argv[1:4]
t0 = datetime(2022, 3, 25, tzinfo=UTC)
with SQLiteStore(db) as store, open(log, "a") as out:
    for n in range(4000):
        if os.path.exists(stop):
            break
        batch = [
            Report(id=f"w{n}-{i}", party="AZE", observed_at=t0 + timedelta(seconds=n),
                   lon=46.8, lat=40.0, notes="filed during the backup")
            for i in range(5)
        ]
        store.add_reports(batch, "writer")
        out.write("".join(r.id + "\\n" for r in batch))
        out.flush()
"""


class Writer:
    """A process filing reports into `db`; `acknowledged()` lists what it was told is stored."""

    def __init__(self, db: Path, tmp: Path) -> None:
        self.log = tmp / "acknowledged.txt"
        self.stop_file = tmp / "stop"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(self.log), str(self.stop_file)], env=env
        )

    def acknowledged(self) -> set[str]:
        if not self.log.exists():
            return set()
        text = self.log.read_text()
        # Only whole lines: a line is written at once, but may be read half-way.
        return set(text[: text.rfind("\n") + 1].split())

    def wait_for(self, count: int, timeout: float = 60) -> set[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            acked = self.acknowledged()
            if len(acked) >= count:
                return acked
            assert self.process.poll() is None, "the writer died"
            time.sleep(0.01)
        raise AssertionError(f"the writer acknowledged fewer than {count} reports")

    def stop(self) -> None:
        self.stop_file.touch()
        self.process.wait(timeout=60)
        assert self.process.returncode == 0


def filled_store(path: Path, n: int = 20_000) -> None:
    """A store big enough that a backup takes many steps."""
    with SQLiteStore(path) as store:
        store.add_reports(
            [
                Report(
                    id=f"old-{i}",
                    party="ARM",
                    observed_at=T0 + timedelta(seconds=i),
                    lon=46.0,
                    lat=39.5,
                    notes="an earlier report " * 20,
                )
                for i in range(n)
            ],
            "seed",
        )


def ids_in(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM reports")}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, Writer]]:
    db = tmp_path / "live" / "truce.sqlite"
    db.parent.mkdir()
    filled_store(db)
    writer = Writer(db, tmp_path)
    try:
        yield db, writer
    finally:
        if writer.process.poll() is None:
            writer.stop()


def test_a_backup_taken_during_writes_is_consistent_and_holds_every_acknowledged_report(
    live: tuple[Path, Writer], tmp_path: Path
) -> None:
    db, writer = live
    before = writer.wait_for(50)
    during: list[int] = []

    def progress(done: int, total: int) -> None:
        # Hold the copy open at its first step until the writer has stored more: the writes
        # certainly land while the backup runs, and are certainly not blocked by it.
        if not during:
            grown = writer.wait_for(len(writer.acknowledged()) + 25)
            during.append(len(grown))
        assert 0 < done <= total

    copied = backup(db, tmp_path / "copy.sqlite", progress=progress, step_pages=64)
    after = writer.acknowledged()
    writer.stop()
    assert during and len(after) > len(before)

    assert integrity_problems(copied.path) == []
    with sqlite3.connect(copied.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    in_copy = ids_in(copied.path)
    assert copied.reports == len(in_copy)
    assert {f"old-{i}" for i in range(20_000)} <= in_copy
    assert before <= in_copy  # every report acknowledged before the backup began
    # A snapshot: nothing the writer was never told about, and whole batches only.
    written = in_copy - {f"old-{i}" for i in range(20_000)}
    assert written <= writer.acknowledged()
    batches = {i.split("-")[0] for i in written}
    assert written == {f"{b}-{i}" for b in batches for i in range(5)}


def test_truce_backup_and_restore_through_the_command_line(
    live: tuple[Path, Writer], tmp_path: Path
) -> None:
    db, writer = live
    before = writer.wait_for(20)
    copy = tmp_path / "backups" / "truce-backup.sqlite"
    url = f"sqlite:///{db}"
    result = runner.invoke(cli, ["backup", str(copy), "--database-url", url, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "backed up" in result.output
    assert before <= ids_in(copy)

    # An existing backup is not replaced unless asked.
    result = runner.invoke(cli, ["backup", str(copy), "--database-url", url, "--no-progress"])
    assert result.exit_code == 2 and "--force" in result.output
    result = runner.invoke(
        cli, ["backup", str(copy), "--database-url", url, "--no-progress", "--force"]
    )
    assert result.exit_code == 0, result.output

    # The running writer has the database open: restore refuses and changes nothing.
    inode = db.stat().st_ino
    result = runner.invoke(cli, ["restore", str(copy), "--database-url", url, "--no-progress"])
    assert result.exit_code == 2
    assert "open in another process" in result.output
    assert db.stat().st_ino == inode and writer.process.poll() is None  # not replaced
    writer.stop()

    restored = set(ids_in(copy))
    result = runner.invoke(cli, ["restore", str(copy), "--database-url", url, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert ids_in(db) == restored
    assert not db.with_name(db.name + "-wal").exists()
    with SQLiteStore(db) as store:  # the restored store opens (WAL again) and takes writes
        store.add_reports(
            [Report(id="after-restore", party="AZE", observed_at=T0, lon=46.8, lat=40.0)], "t"
        )
        assert store.count_reports() == len(restored) + 1


def test_restore_refuses_a_damaged_backup_and_leaves_the_store_alone(tmp_path: Path) -> None:
    db = tmp_path / "truce.sqlite"
    filled_store(db, 2_000)
    copy = tmp_path / "copy.sqlite"
    backup(db, copy)
    with copy.open("r+b") as damaged:  # overwrite pages in the middle of the file
        damaged.seek(copy.stat().st_size // 2)
        damaged.write(b"\xa5" * 16_384)
    original = db.read_bytes()
    result = runner.invoke(
        cli, ["restore", str(copy), "--database-url", f"sqlite:///{db}", "--no-progress"]
    )
    assert result.exit_code == 2
    assert "cannot be restored" in result.output
    assert db.read_bytes() == original

    not_truce = tmp_path / "other.sqlite"
    with sqlite3.connect(not_truce) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert integrity_problems(not_truce) == [
        f"{not_truce} is a SQLite file but not a Truce database"
    ]


def test_restore_into_a_new_place_and_backup_of_nothing(tmp_path: Path) -> None:
    db = tmp_path / "truce.sqlite"
    filled_store(db, 100)
    copy = tmp_path / "copy.sqlite"
    backup(db, copy)
    target = tmp_path / "elsewhere" / "restored.sqlite"
    result = runner.invoke(
        cli, ["restore", str(copy), "--database-url", f"sqlite:///{target}", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert ids_in(target) == ids_in(db)
    with pytest.raises(BackupError, match="no database"):
        backup(tmp_path / "missing.sqlite", tmp_path / "x.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_in_use_sees_another_process_and_not_a_closed_file(tmp_path: Path) -> None:
    db = tmp_path / "truce.sqlite"
    filled_store(db, 10)
    assert not in_use(db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom app.store import SQLiteStore\n"
            "s = SQLiteStore(sys.argv[1]); s.count_reports(); print('open', flush=True)\n"
            "sys.stdin.read()",
            str(db),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        assert in_use(db)
    finally:
        holder.communicate(b"", timeout=30)
    assert not in_use(db)


def test_restore_replaces_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "truce.sqlite"
    filled_store(db, 10)
    copy = tmp_path / "copy.sqlite"
    backup(db, copy)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all " * 300)
    assert not in_use(garbage)
    result = runner.invoke(
        cli, ["restore", str(copy), "--database-url", f"sqlite:///{garbage}", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert ids_in(garbage) == ids_in(db)
