"""A response cache for API engines: one sqlite file, keyed by the sha256 of the full request
(endpoint, server and body; never the key or any header), each response stored with its
token usage. A killed run resumes without asking again; an identical rerun costs nothing.

sqlite (standard library) because several worker threads write and a killed process must
leave every committed row readable: each response is committed as it arrives.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Mapping

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    response TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""


def request_key(endpoint: str, server: str, body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines a response."""
    text = json.dumps({"endpoint": endpoint, "server": server, "body": body}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Thread-safe get / put of JSON responses by request key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, endpoint: str, response: Mapping[str, Any], usage: Mapping[str, int]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, endpoint, json.dumps(response, ensure_ascii=False), int(usage.get("prompt_tokens", 0)),
                 int(usage.get("completion_tokens", 0)), int(usage.get("reasoning_tokens", 0)), time.time()),
            )

    def totals(self) -> dict[str, int]:
        """Responses and tokens over everything cached (for a run directory: the whole run)."""
        with self._lock:
            n, p, c, r = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                "COALESCE(SUM(reasoning_tokens), 0) FROM responses").fetchone()
        return {"responses": n, "prompt_tokens": p, "completion_tokens": c, "reasoning_tokens": r}

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
