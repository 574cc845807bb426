"""Account connections shared by a dispatcher's batches: a send is in the SMTP exchange only while its round
holds the account's lock, so the ledger's `sending` state never covers more than one message per connection."""

from __future__ import annotations

import asyncio


class HeldConnections:
    """Connection locks one round holds; each is released once, when its send is over."""

    def __init__(self, locks: dict[str, asyncio.Lock]) -> None:
        self._locks = locks

    def release(self, account_id: str) -> None:
        lock = self._locks.pop(account_id, None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        for account_id in list(self._locks):
            self.release(account_id)


class ConnectionLocks:
    """One lock per account, shared by the dispatcher's batches: a send is in the SMTP exchange only while its
    round holds the account's lock (the transport keeps one connection per account)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    async def take(self, account_ids: list[str]) -> HeldConnections:
        """Acquire the accounts' locks in sorted order (so two rounds never wait for each other in a cycle)."""
        taken: dict[str, asyncio.Lock] = {}
        try:
            for account_id in sorted(account_ids):
                lock = self._locks.setdefault(account_id, asyncio.Lock())
                await lock.acquire()
                taken[account_id] = lock
        except BaseException:
            HeldConnections(taken).release_all()
            raise
        return HeldConnections(taken)
