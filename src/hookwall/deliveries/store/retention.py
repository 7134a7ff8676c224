"""Retention: the store keeps rows within ``logging.retention`` and ``logging.max_size``.

The writer thread calls ``enforce_retention`` periodically (``writer.py``). Rows older than
the age limit go first, in chunks so new rows never wait long behind a big sweep; then the
oldest rows until the data fits the size limit. The file was created with
``auto_vacuum=INCREMENTAL``, so the freed pages go back to the file system.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

# Age retention deletes this many rows per transaction.
_DELETE_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RetentionResult:
    deleted_by_age: int
    deleted_by_size: int
    used_bytes: int


class Pruning:
    """The store's retention (a part of :class:`~hookwall.deliveries.store.db.Store`)."""

    conn: sqlite3.Connection

    def used_bytes(self) -> int:
        """Bytes the live data takes (pages in use, not counting free pages)."""
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def enforce_retention(
        self, *, max_age: float, max_size: int, now: float | None = None
    ) -> RetentionResult:
        """Delete rows older than ``max_age`` seconds, then the oldest rows until the data
        fits in ``max_size`` bytes (with 10% headroom, so this does not run on every batch);
        give freed pages back to the file system."""
        now = time.time() if now is None else now
        by_age = 0
        cutoff = now - max_age
        while True:
            deleted = self._delete(
                "DELETE FROM exchanges WHERE id IN "
                "(SELECT id FROM exchanges WHERE ts < ? ORDER BY ts LIMIT ?)",
                (cutoff, _DELETE_CHUNK),
            )
            by_age += deleted
            if deleted < _DELETE_CHUNK:
                break
        by_size = 0
        used = self.used_bytes()
        if used > max_size:
            target = int(max_size * 0.9)
            for _ in range(20):  # each round removes a share proportional to the excess
                count = self.conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
                if count == 0 or used <= target:
                    break
                share = max(1, int(count * (used - target) / used) + 1)
                by_size += self._delete(
                    "DELETE FROM exchanges WHERE id IN "
                    "(SELECT id FROM exchanges ORDER BY id LIMIT ?)",
                    (share,),
                )
                used = self.used_bytes()
        if by_age or by_size:
            # Each step of this pragma frees pages: run it to completion.
            self.conn.execute("PRAGMA incremental_vacuum").fetchall()
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return RetentionResult(by_age, by_size, self.used_bytes())

    def _delete(self, sql: str, params: Sequence[object]) -> int:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return int(cursor.rowcount)
