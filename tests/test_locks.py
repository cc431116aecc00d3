"""The read/write lock that makes one recommender safe to share between threads."""

from __future__ import annotations

import threading
import time

import pytest

from hybrid_rec.locks import ReadWriteLock

WAIT = 5.0  # seconds a step may take before the test calls it stuck


def _started(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_readers_share_and_a_writer_waits_for_them() -> None:
    lock = ReadWriteLock()
    inside = threading.Barrier(3, timeout=WAIT)  # both readers in the lock at once
    release = threading.Event()
    wrote = threading.Event()

    def read() -> None:
        with lock.read():
            inside.wait()
            release.wait(WAIT)

    def write() -> None:
        with lock.write():
            wrote.set()

    readers = [_started(read), _started(read)]
    inside.wait()
    writer = _started(write)
    assert not wrote.wait(0.2)  # the readers still hold it
    release.set()
    assert wrote.wait(WAIT)
    for t in [*readers, writer]:
        t.join(WAIT)


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    first_in, let_first_go = threading.Event(), threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_in.set()
            let_first_go.wait(WAIT)
            order.append("first reader")

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    threads = [_started(first_reader)]
    first_in.wait(WAIT)
    threads.append(_started(writer))
    time.sleep(0.1)  # the writer is waiting now
    threads.append(_started(late_reader))
    time.sleep(0.1)
    assert order == []  # the late reader queues behind the writer
    let_first_go.set()
    for t in threads:
        t.join(WAIT)
    assert order == ["first reader", "writer", "late reader"]


def test_nested_locks_do_not_deadlock() -> None:
    lock = ReadWriteLock()
    with lock.write(), lock.write(), lock.read():  # a writer may read and write again
        pass
    reader_in, writer_waiting, done = threading.Event(), threading.Event(), threading.Event()

    def reader() -> None:
        with lock.read():
            reader_in.set()
            writer_waiting.wait(WAIT)
            time.sleep(0.1)  # the writer is queued: a nested read must still pass
            with lock.read():
                done.set()

    def writer() -> None:
        writer_waiting.set()
        with lock.write():
            pass

    t1 = _started(reader)
    reader_in.wait(WAIT)
    t2 = _started(writer)
    assert done.wait(WAIT)
    t1.join(WAIT)
    t2.join(WAIT)
    assert not t1.is_alive() and not t2.is_alive()


def test_upgrading_a_read_to_a_write_is_an_error_not_a_deadlock() -> None:
    lock = ReadWriteLock()
    with lock.read(), pytest.raises(RuntimeError, match="read lock"), lock.write():
        pass
    with lock.write():  # and the lock is still usable
        pass
