"""`Interleaved`: connectors' pages (or pushes), each read ahead while the caller stores.

A stream's pages are fetched and stored in turn; storing a page of 1,000 rows takes about as
long as fetching it, so done one after the other the stream spends half its time away from the
API. A worker thread per source runs its iterator ahead of the caller instead: the caller (and
its SQLite connection, which stays on the caller's thread) stores page N while the worker
fetches page N+1. By default never more than that one page ahead, so a pass that stops (its
budget, SIGTERM) has spent at most one page of calls per source that it does not store.

A source may be given more room (`ahead`, in the units `weigh` counts: rows for the pull), for
a caller that is busy with other work between the items it takes: the pass reconciles while
the activity streams are read, and takes their pages only between chunks of that work
(`ready`). Pages fetched and not stored when a pass stops are read again by the next pass,
from the cursor stored with the last page it kept.

Several sources can run side by side (the pull reads HubSpot and Salesforce at once, and the
push writes both). What a source raises reaches the caller, the same
exception object, after every item that source yielded before it. When the caller leaves early
(an exception of its own, or it stopped), each worker finishes its call in flight, closes its
iterator on its own thread (the connector's `finally` blocks run there) and is joined before
the caller goes on, so a connector is never used by two threads at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class _End:
    """The iterator is exhausted."""


class _Failed:
    """The iterator raised `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _one(_: object) -> int:
    return 1


class Interleaved(Generic[T]):
    """Several iterators read at once, each in a worker thread of its own and ahead of the
    consumer by at most `ahead` (one item, unless told otherwise); items come out tagged with
    their source's key, in the order they arrive (each source's own items in its order).

    `ahead` and `weigh` bound what a worker holds fetched and not yet taken: it fetches while
    the weights of those items add up to less than its `ahead`. By default each item weighs 1.

    Use as a context manager: leaving it stops and joins every worker. What a source raises
    reaches the consumer after the items that source yielded before it; the other sources
    then finish their call in flight and close on their own threads.
    """

    def __init__(
        self,
        sources: Mapping[str, Iterator[T]],
        name: str = "syncd-read-ahead",
        *,
        ahead: Mapping[str, int] | None = None,
        weigh: Callable[[T], int] = _one,
    ) -> None:
        self._handed: queue.Queue[tuple[str, T | _End | _Failed, int]] = queue.Queue()
        self._stop = threading.Event()
        room = ahead or {}
        self._workers = {
            key: _Worker(
                key, items, self._handed, self._stop, f"{name}-{key}", room.get(key, 1), weigh
            )
            for key, items in sources.items()
        }
        self._live = set(self._workers)
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
        """Every item, waiting for each, until every source is exhausted."""
        self._start()
        while self._live:
            yield from self._take(*self._handed.get())

    def ready(self) -> Iterator[tuple[str, T]]:
        """The items fetched already, without waiting for more (starts the workers)."""
        self._start()
        while self._live:
            try:
                handed = self._handed.get_nowait()
            except queue.Empty:
                return
            yield from self._take(*handed)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            for worker in self._workers.values():
                worker.thread.start()

    def _take(self, key: str, item: T | _End | _Failed, weight: int) -> Iterator[tuple[str, T]]:
        if isinstance(item, _End):
            self._live.discard(key)
            return
        if isinstance(item, _Failed):
            self._live.discard(key)
            raise item.error
        self._workers[key].taken(weight)  # its next is read while this one is used
        yield key, item

    def close(self) -> None:
        """Stop the workers once their calls in flight return, and wait for them."""
        self._stop.set()
        for worker in self._workers.values():
            worker.wake()
        for worker in self._workers.values():
            if self._started:
                worker.thread.join()
            else:
                close_iterator(worker.items)


class _Worker(Generic[T]):
    """One source of an `Interleaved`: fetches while what it holds weighs less than `ahead`."""

    def __init__(
        self,
        key: str,
        items: Iterator[T],
        handed: queue.Queue[tuple[str, T | _End | _Failed, int]],
        stop: threading.Event,
        name: str,
        ahead: int,
        weigh: Callable[[T], int],
    ) -> None:
        self.key, self.items, self._handed, self._stop = key, items, handed, stop
        self._ahead, self._weigh = max(1, ahead), weigh
        self._held = 0  # the weight of the items handed over and not yet taken
        self._room = threading.Condition()
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)

    def taken(self, weight: int) -> None:
        with self._room:
            self._held -= weight
            self._room.notify()

    def wake(self) -> None:
        with self._room:
            self._room.notify()

    def _work(self) -> None:
        try:
            while True:
                with self._room:
                    while self._held >= self._ahead and not self._stop.is_set():
                        self._room.wait()
                if self._stop.is_set():
                    return
                try:
                    item = next(self.items)
                except StopIteration:
                    self._handed.put((self.key, _End(), 0))
                    return
                weight = self._weigh(item)
                with self._room:
                    self._held += weight
                self._handed.put((self.key, item, weight))
        except BaseException as error:  # handed over whole: the consumer raises it as its own
            self._handed.put((self.key, _Failed(error), 0))
        finally:
            close_iterator(self.items)


def close_iterator(items: Iterator[object]) -> None:
    """Close a generator (its `finally` blocks run here, on this thread); other iterators
    have nothing to close."""
    close = getattr(items, "close", None)
    if close is not None:
        close()
