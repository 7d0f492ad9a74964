"""SQLiteStore across processes: acknowledged writes survive SIGKILL; concurrent writers lose
nothing; `open_store` URLs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from app.store import SQLiteStore, UnsupportedDatabase, open_store

REPO = Path(__file__).resolve().parents[2]

# Shared by the child scripts: a report with a given id, at a time derived from it.
PRELUDE = """
import json, os, sys, time
from datetime import UTC, datetime, timedelta
from app.domain import Report
from app.store import SQLiteStore

def report(report_id, n):
    return Report(id=report_id, party="AZE", lon=46.7, lat=39.8,
                  observed_at=datetime(2022, 3, 24, tzinfo=UTC) + timedelta(seconds=n))
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_acknowledged_reports_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "truce.db"
    child = spawn(
        """
        store = SQLiteStore(sys.argv[1])
        store.add_reports([report(f"batch-{i}", i) for i in range(500)], "observer")
        store.add_reports([report("single", 1000)], "observer")
        print("ok", flush=True)
        time.sleep(60)  # killed here, with its connection open and nothing closed
        """,
        str(path),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ok", child.stderr.read() if child.stderr else line
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    with SQLiteStore(path) as store:
        assert store.count_reports() == 501
        page, _ = store.list_reports(limit=1000)
        assert {r.id for r in page} == {f"batch-{i}" for i in range(500)} | {"single"}
        assert [e.action for e in store.audit_log()] == ["reports.add", "reports.add"]


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "truce.db"  # created by whichever child opens it first
    go = tmp_path / "go"
    script = """
    name, path, go = sys.argv[1], sys.argv[2], sys.argv[3]
    while not os.path.exists(go):
        time.sleep(0.005)
    store = SQLiteStore(path)
    stored = 0
    duplicates = []
    for batch in range(20):
        reports = [report(f"{name}-{batch}-{i}", batch * 100 + i) for i in range(95)]
        # Five ids that both processes send: each must end up stored exactly once.
        reports += [report(f"shared-{batch}-{i}", batch * 100 + 95 + i) for i in range(5)]
        s, d = store.add_reports(reports, name)
        stored += len(s)
        duplicates += d
    print(json.dumps({"stored": stored, "duplicates": duplicates}), flush=True)
    """
    children = [spawn(script, name, str(path), str(go)) for name in ("a", "b")]
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))

    shared = 20 * 5
    assert sum(r["stored"] for r in results) == 2 * 20 * 95 + shared
    assert sorted(results[0]["duplicates"] + results[1]["duplicates"]) == sorted(
        f"shared-{b}-{i}" for b in range(20) for i in range(5)
    )
    with SQLiteStore(path) as store:
        assert store.count_reports() == 2 * 20 * 95 + shared
        assert {e.actor for e in store.audit_log(limit=100)} == {"a", "b"}
        assert len(store.audit_log(limit=100)) == 40


def test_opening_a_new_file_waits_for_another_process_holding_it(tmp_path: Path) -> None:
    # While another connection holds a new (not yet WAL) file's write lock, switching it to WAL
    # fails at once with "database is locked": SQLite skips the busy wait to avoid a deadlock.
    # That is what happens when several workers start together on a new file.
    path = tmp_path / "truce.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, holder.execute, args=("COMMIT",))
    timer.start()
    try:
        with SQLiteStore(path, busy_timeout_s=10) as store:
            assert store.count_reports() == 0
    finally:
        timer.join()
        holder.close()


# -- open_store -------------------------------------------------------------------------------


def test_open_store_takes_relative_and_absolute_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///data/relative.db")
    absolute = open_store(f"sqlite:///{tmp_path}/absolute.db")  # path starts with "/"
    try:
        assert isinstance(relative, SQLiteStore) and isinstance(absolute, SQLiteStore)
        assert (tmp_path / "data" / "relative.db").exists()
        assert (tmp_path / "absolute.db").exists()
        assert relative.count_reports() == 0
    finally:
        relative.close()
        absolute.close()


def test_open_store_reads_sqlite_options(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db?synchronous=normal&busy_timeout=2")
    try:
        assert isinstance(store, SQLiteStore)
        conn = store._conn()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    finally:
        store.close()
    default = open_store(f"sqlite:///{tmp_path}/u.db")
    try:
        assert isinstance(default, SQLiteStore)
        assert default._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        default.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://truce@db/truce?pool_max=0", "pool_max"),
        ("postgresql+psycopg://truce@db/truce?pool_timeout=soon", "pool_timeout"),
        ("sqlite:///t.db?synchronous=full&read=1", "unknown"),
        ("mysql://db/truce", "unsupported"),
        ("truce.db", "unsupported"),
        ("sqlite://", "file path"),
        ("sqlite:///:memory:", "file path"),
        ("sqlite://host/truce.db", "no host"),
        ("sqlite:///t.db?journal=off", "unknown"),
        ("sqlite:///t.db?synchronous=off", "synchronous"),
    ],
)
def test_open_store_refuses_what_it_cannot_open(url: str, message: str) -> None:
    with pytest.raises(UnsupportedDatabase, match=message):
        open_store(url)
