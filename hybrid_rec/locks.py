"""A re-entrant read/write lock: what lets one :class:`~hybrid_rec.HybridRecommender`
serve many threads while another thread updates it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ReadWriteLock"]


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before readers that arrive later.

    Re-entrant: a thread that holds the write lock may take either again, and a
    thread that holds the read lock may take it again (even while a writer
    waits: it would otherwise wait for itself). A thread that holds only the read
    lock cannot take the write lock, which would deadlock; that raises
    :class:`RuntimeError` instead.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # the writing thread's ident
        self._writers_waiting = 0
        self._local = threading.local()  # this thread's read depth

    def _read_depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared with other readers."""
        if self._writer == threading.get_ident():  # inside this thread's own write
            yield
            return
        depth = self._read_depth()
        with self._cond:
            if not depth:
                self._cond.wait_for(lambda: self._writer is None and not self._writers_waiting)
            self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock alone."""
        me = threading.get_ident()
        if self._writer == me:
            yield
            return
        if self._read_depth():
            raise RuntimeError(
                "this thread holds the recommender's read lock and cannot take its write "
                "lock (it would wait for itself): update the model outside the read block"
            )
        with self._cond:
            self._writers_waiting += 1
            try:
                self._cond.wait_for(lambda: self._writer is None and not self._readers)
            finally:
                self._writers_waiting -= 1
                self._cond.notify_all()  # readers held back for this writer (were it interrupted)
            self._writer = me
        try:
            yield
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()
