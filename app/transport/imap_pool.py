"""ImapPool: where the asyncio loops run IMAPClient's blocking calls, a bounded thread pool.

Apart from app/transport/imap.py because it knows nothing of IMAP: it runs whatever blocking call it is given.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ImapPool:
    """A bounded thread pool for IMAPClient's blocking calls, so an asyncio loop never waits on a socket.

    At most `max_workers` mailboxes are read at once. Cancelling the awaiting task does not stop a call in its
    thread: it ends at the latest when the socket timeout fires.
    """

    def __init__(self, max_workers: int = 4) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="imap")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` in the pool and return (or raise) what it does."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self, *, wait: bool = True) -> None:
        """Start nothing more; drop queued calls and (with `wait`) wait for the running ones to end."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    async def __aenter__(self) -> ImapPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)
