"""The SQLite record of uploads and jobs (WAL, one connection per thread), so a restart loses nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipdub.errors import LipdubError

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    size INTEGER NOT NULL, info TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, params TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '', percent REAL NOT NULL DEFAULT 0, eta REAL,
    error TEXT, result TEXT, created REAL NOT NULL, started REAL, finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
"""
OWNER_COLUMNS = ("uploads", "jobs")  # `owner`: the public-mode visitor it belongs to (NULL: the server's own)

TERMINAL = ("done", "failed", "cancelled")
MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING


def check_sqlite() -> None:
    """Refuse to start on an SQLite older than the store's queries need, or one without JSON functions."""
    version = sqlite3.sqlite_version_info
    if version < MIN_SQLITE:
        raise LipdubError(f"the web app needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer (for RETURNING); "
                          f"this Python uses {'.'.join(map(str, version))}: use a Python built with a newer SQLite")
    try:
        sqlite3.connect(":memory:").execute("SELECT json_extract('{\"a\": 1}', '$.a')").close()
    except sqlite3.OperationalError as err:
        raise LipdubError("the web app needs SQLite's JSON functions, which this Python's SQLite lacks") from err


@dataclass
class Upload:
    id: str
    name: str  # the client's file name, for display only (never used on disk)
    kind: str  # image | video | audio
    path: Path
    size: int
    info: dict
    created: float
    owner: str | None = None


@dataclass
class Job:
    id: str
    state: str  # queued | running | done | failed | cancelled
    params: dict
    stage: str = ""
    percent: float = 0.0
    eta: float | None = None
    error: str | None = None
    result: dict | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    owner: str | None = None


def _upload(row: sqlite3.Row) -> Upload:
    return Upload(row["id"], row["name"], row["kind"], Path(row["path"]), row["size"], json.loads(row["info"]),
                  row["created"], row["owner"])


def _job(row: sqlite3.Row) -> Job:
    return Job(row["id"], row["state"], json.loads(row["params"]), row["stage"], row["percent"], row["eta"],
               row["error"], json.loads(row["result"]) if row["result"] else None, row["created"], row["started"],
               row["finished"], row["owner"])


class Store:
    """Uploads and jobs in `<data_dir>/lipdub.sqlite3`. Safe to share between threads (a connection each)."""

    def __init__(self, path: Path) -> None:
        check_sqlite()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._conn()
        db.executescript(SCHEMA)
        for table in OWNER_COLUMNS:  # databases made before public mode existed
            if "owner" not in {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, *_: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> _Tx:
        return self._Tx(self._conn())

    # uploads
    def add_upload(self, upload: Upload) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO uploads (id, name, kind, path, size, info, created, owner) "
                       "VALUES (?,?,?,?,?,?,?,?)", (upload.id, upload.name, upload.kind, str(upload.path),
                                                    upload.size, json.dumps(upload.info), upload.created, upload.owner))

    def get_upload(self, upload_id: str) -> Upload | None:
        row = self._conn().execute("SELECT * FROM uploads WHERE id=?", (upload_id,)).fetchone()
        return _upload(row) if row else None

    def list_uploads(self) -> list[Upload]:
        rows = self._conn().execute("SELECT * FROM uploads ORDER BY created").fetchall()
        return [_upload(r) for r in rows]

    def upload_in_use(self, upload_id: str) -> bool:
        """True if a queued or running job needs this upload (as its media or a speaker's audio)."""
        row = self._conn().execute(
            "SELECT 1 FROM jobs WHERE state IN ('queued', 'running') AND (json_extract(params, '$.media') = ? "
            "OR EXISTS (SELECT 1 FROM json_each(params, '$.speakers') WHERE json_extract(value, '$.audio') = ?))"
            " LIMIT 1", (upload_id, upload_id)).fetchone()
        return row is not None

    def delete_upload(self, upload_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE id=?", (upload_id,))

    # jobs
    def add_job(self, job: Job) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO jobs (id, state, params, created, owner) VALUES (?,?,?,?,?)",
                       (job.id, job.state, json.dumps(job.params), job.created, job.owner))

    def get_job(self, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self, limit: int = 100, owner: str | None = None) -> list[Job]:
        """The latest jobs, newest first; only `owner`'s if given."""
        rows = self._conn().execute("SELECT * FROM jobs WHERE ?1 IS NULL OR owner = ?1 ORDER BY created DESC "
                                    "LIMIT ?2", (owner, limit)).fetchall()
        return [_job(r) for r in rows]

    def queue_position(self, job: Job) -> int:
        """1 + the number of queued jobs ahead of `job` (oldest first, as `claim_next` takes them)."""
        return 1 + self._conn().execute("SELECT COUNT(*) FROM jobs WHERE state='queued' AND created < ?",
                                        (job.created,)).fetchone()[0]

    def typical_seconds(self, last: int = 20) -> float | None:
        """Mean run time of the latest finished jobs (None before the first)."""
        row = self._conn().execute("SELECT AVG(finished - started) FROM (SELECT finished, started FROM jobs "
                                   "WHERE state='done' AND started IS NOT NULL ORDER BY finished DESC LIMIT ?)",
                                   (last,)).fetchone()
        return None if row[0] is None else float(row[0])

    def usage(self, owner: str) -> tuple[int, int]:
        """(jobs waiting or running, bytes of uploads) of one visitor, for quotas."""
        db = self._conn()
        jobs = db.execute("SELECT COUNT(*) FROM jobs WHERE owner=? AND state IN ('queued', 'running')",
                          (owner,)).fetchone()[0]
        size = db.execute("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner=?", (owner,)).fetchone()[0]
        return int(jobs), int(size)

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to running and return it (None if nothing is queued)."""
        with self._tx() as db:
            row = db.execute("UPDATE jobs SET state='running', started=?, stage='starting', percent=0 WHERE id="
                             "(SELECT id FROM jobs WHERE state='queued' ORDER BY created LIMIT 1) RETURNING *",
                             (time.time(),)).fetchone()
        return _job(row) if row else None

    def update_progress(self, job_id: str, stage: str, percent: float, eta: float | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET stage=?, percent=?, eta=? WHERE id=? AND state='running'",
                       (stage, percent, eta, job_id))

    def finish(self, job_id: str, state: str, *, error: str | None = None, result: dict | None = None) -> None:
        assert state in TERMINAL
        with self._tx() as db:
            db.execute("UPDATE jobs SET state=?, error=?, result=?, finished=?, eta=NULL, "
                       "percent=CASE WHEN ?='done' THEN 100 ELSE percent END, "
                       "stage=CASE WHEN ?='done' THEN 'done' ELSE stage END WHERE id=?",
                       (state, error, json.dumps(result) if result is not None else None, time.time(), state,
                        state, job_id))

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is not queued."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state='cancelled', finished=? WHERE id=? AND state='queued'",
                             (time.time(), job_id))
        return cur.rowcount == 1

    def requeue(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='queued', stage='', percent=0, eta=NULL, started=NULL "
                       "WHERE id=? AND state='running'", (job_id,))

    def fail_interrupted(self, reason: str) -> list[str]:
        """Mark every job left `running` by a dead server as failed with `reason`; return their ids."""
        with self._tx() as db:
            rows = db.execute("UPDATE jobs SET state='failed', error=?, finished=?, eta=NULL "
                              "WHERE state='running' RETURNING id", (reason, time.time())).fetchall()
        return [r["id"] for r in rows]

    def delete_job(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
