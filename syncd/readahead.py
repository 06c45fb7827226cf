"""`ReadAhead`: a connector's pages, the next one read while the caller stores this one.

A stream's pages are fetched and stored in turn; storing a page of 1,000 rows takes about as
long as fetching it, so done one after the other the stream spends half its time away from the
API. A worker thread runs the connector's page iterator one page ahead of the caller instead:
the caller (and its SQLite connection, which stays on the caller's thread) stores page N while
the worker fetches page N+1, and never more than that one page ahead, so a pass that stops
(its budget, SIGTERM) has spent at most one page of calls it does not store.

What the iterator raises reaches the caller, the same exception object, after every page the
iterator yielded before it. When the caller leaves early (an exception of its own, or it
stopped), the worker finishes the call in flight, closes the iterator on its own thread (the
connector's `finally` blocks run there) and is joined before the caller goes on, so the
connector is never used by two threads at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    """The iterator is exhausted."""


class _Failed:
    """The iterator raised `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterate `items` in a worker thread, at most one item ahead of the consumer.

    Use as a context manager: leaving it stops and joins the worker.
    """

    def __init__(self, items: Iterator[T], name: str = "syncd-read-ahead") -> None:
        self._items = items
        self._handed: queue.Queue[T | _End | _Failed] = queue.Queue(maxsize=1)
        self._wanted = threading.Semaphore(0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._started = False

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            self._started = True
            self._thread.start()
        self._wanted.release()
        while True:
            item = self._handed.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            self._wanted.release()  # the next one is read while the caller uses this one
            yield item

    def close(self) -> None:
        """Stop the worker once its call in flight returns, and wait for it."""
        self._stop.set()
        self._wanted.release()  # wake a worker waiting to be asked for more
        if self._started:
            self._thread.join()
        else:
            _close(self._items)

    def _work(self) -> None:
        try:
            while True:
                self._wanted.acquire()
                if self._stop.is_set():
                    return
                try:
                    item = next(self._items)
                except StopIteration:
                    self._handed.put(_End())
                    return
                self._handed.put(item)
        except BaseException as error:  # handed over whole: the caller raises it as its own
            self._handed.put(_Failed(error))
        finally:
            _close(self._items)


def _close(items: Iterator[object]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()
