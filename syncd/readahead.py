"""`Interleaved`: connectors' pages (or pushes), each read one ahead while the caller stores.

A stream's pages are fetched and stored in turn; storing a page of 1,000 rows takes about as
long as fetching it, so done one after the other the stream spends half its time away from the
API. A worker thread per source runs its iterator one item ahead of the caller instead: the
caller (and its SQLite connection, which stays on the caller's thread) stores page N while the
worker fetches page N+1, and never more than that one page ahead, so a pass that stops (its
budget, SIGTERM) has spent at most one page of calls per source that it does not store.

Several sources can run side by side (the push writes HubSpot and Salesforce at once; the
pull reads one connector at a time, each its own source). What a source raises reaches the
caller, the same exception object, after every item that source yielded before it. When the
caller leaves early (an exception of its own, or it stopped), each worker finishes its call in
flight, closes its iterator on its own thread (the connector's `finally` blocks run there) and
is joined before the caller goes on, so a connector is never used by two threads at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class _End:
    """The iterator is exhausted."""


class _Failed:
    """The iterator raised `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Interleaved(Generic[T]):
    """Several iterators read at once, each in a worker thread of its own and at most one item
    ahead of the consumer; items come out tagged with their source's key, in the order they
    arrive (each source's own items in its order).

    Use as a context manager: leaving it stops and joins every worker. What a source raises
    reaches the consumer after the items that source yielded before it; the other sources
    then finish their call in flight and close on their own threads.
    """

    def __init__(self, sources: Mapping[str, Iterator[T]], name: str = "syncd-read-ahead") -> None:
        self._handed: queue.Queue[tuple[str, T | _End | _Failed]] = queue.Queue()
        self._stop = threading.Event()
        self._workers = {
            key: _Worker(key, items, self._handed, self._stop, f"{name}-{key}")
            for key, items in sources.items()
        }
        self._started = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[str, T]]:
        if not self._started:
            self._started = True
            for worker in self._workers.values():
                worker.thread.start()
        live = set(self._workers)
        for worker in self._workers.values():
            worker.wanted.release()
        while live:
            key, item = self._handed.get()
            if isinstance(item, _End):
                live.discard(key)
                continue
            if isinstance(item, _Failed):
                raise item.error
            self._workers[key].wanted.release()  # its next is read while this one is used
            yield key, item

    def close(self) -> None:
        """Stop the workers once their calls in flight return, and wait for them."""
        self._stop.set()
        for worker in self._workers.values():
            worker.wanted.release()  # wake a worker waiting to be asked for more
        for worker in self._workers.values():
            if self._started:
                worker.thread.join()
            else:
                _close(worker.items)


class _Worker(Generic[T]):
    """One source of an `Interleaved`: hands an item over each time it is asked for one."""

    def __init__(
        self,
        key: str,
        items: Iterator[T],
        handed: queue.Queue[tuple[str, T | _End | _Failed]],
        stop: threading.Event,
        name: str,
    ) -> None:
        self.key, self.items, self._handed, self._stop = key, items, handed, stop
        self.wanted = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)

    def _work(self) -> None:
        try:
            while True:
                self.wanted.acquire()
                if self._stop.is_set():
                    return
                try:
                    item = next(self.items)
                except StopIteration:
                    self._handed.put((self.key, _End()))
                    return
                self._handed.put((self.key, item))
        except BaseException as error:  # handed over whole: the consumer raises it as its own
            self._handed.put((self.key, _Failed(error)))
        finally:
            _close(self.items)


def _close(items: Iterator[object]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()
