"""The catalog's TTL cache: hits within the TTL, one shared load for concurrent misses, errors not cached."""

from __future__ import annotations

import asyncio

import pytest

from app.store.catalog import _TtlCache


async def test_concurrent_misses_share_one_load_and_later_calls_hit() -> None:
    cache: _TtlCache[str] = _TtlCache(ttl=60)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return "value"

    assert await asyncio.gather(*(cache.get("k", load) for _ in range(20))) == ["value"] * 20
    assert await cache.get("k", load) == "value"
    assert loads == 1


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache: _TtlCache[str] = _TtlCache(ttl=60)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("database unavailable")

    results = await asyncio.gather(*(cache.get("k", failing) for _ in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3
    assert calls == 1

    async def works() -> str:
        return "fresh"

    assert await cache.get("k", works) == "fresh"


async def test_a_zero_ttl_loads_every_time() -> None:
    cache: _TtlCache[int] = _TtlCache(ttl=0)
    counter = iter(range(10))

    async def load() -> int:
        return next(counter)

    assert [await cache.get("k", load) for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("key", ["a", "b"])
async def test_keys_are_cached_separately(key: str) -> None:
    cache: _TtlCache[str] = _TtlCache(ttl=60)

    async def load() -> str:
        return key

    assert await cache.get(key, load) == key
