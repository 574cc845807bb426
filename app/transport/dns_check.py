"""Recipient domains' mail routing from DNS (dnspython's asyncio resolver), cached per domain, with a timeout.

The questions are asked here and turned into `Answer`s; what they mean is decided by
`app.domain.address_checks.domain_verdict`. Anything that is not a DNS answer (a timeout, an unreachable
resolver, SERVFAIL, REFUSED, no resolver configured) is `NO_ANSWER`, which never makes a domain invalid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from app.domain.address_checks import (
    NO_ANSWER,
    NO_RECORDS,
    NXDOMAIN,
    RECORDS,
    UNKNOWN,
    Answer,
    DomainLookup,
    DomainVerdict,
    domain_verdict,
    needs_address_records,
)
from app.logging import get_logger

DEFAULT_TIMEOUT_SECONDS = 5.0  # for each domain's question, all resolvers and retries included
KNOWN_TTL_SECONDS = 3600.0  # a valid or invalid verdict is kept this long
UNKNOWN_TTL_SECONDS = 60.0  # an unanswered domain is asked again after this
CONCURRENT_LOOKUPS = 20


class DnsChecker:
    """Verdicts for recipient domains, asked of `servers` (address, port) or the system's resolvers.

    One checker is shared by everything in a process that asks (the address checks and the domain limits'
    MX grouping), so a domain is asked once per cache period however many recipients it has; concurrent
    questions about one domain share one lookup.
    """

    def __init__(
        self,
        servers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._setup_error = ""
        self._cache: dict[str, tuple[float, DomainVerdict]] = {}
        self._pending: dict[str, asyncio.Future[DomainVerdict]] = {}
        try:
            resolver = dns.asyncresolver.Resolver(configure=not servers)
        except (dns.resolver.NoResolverConfiguration, OSError) as exc:
            self._setup_error = f"no DNS resolver configured ({exc}); set OUTBOUND_DNS_SERVERS"
        else:
            if servers:
                resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
            resolver.timeout = timeout
            resolver.lifetime = timeout
            resolver.cache = None  # ours holds verdicts; the resolver's would only hide a resolver coming back
            self._resolver = resolver

    def cached(self, domain: str) -> DomainVerdict | None:
        """The verdict on `domain` from the cache, without asking (None when not known or expired)."""
        entry = self._cache.get(domain)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    async def check(self, domain: str) -> DomainVerdict:
        """The verdict on `domain` (lower case, Unicode or IDNA), from the cache or from DNS."""
        found = self.cached(domain)
        if found is not None:
            return found
        pending = self._pending.get(domain)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DomainVerdict] = asyncio.get_running_loop().create_future()
        self._pending[domain] = future
        try:
            verdict = await self._lookup(domain)
            ttl = UNKNOWN_TTL_SECONDS if verdict.status == UNKNOWN else KNOWN_TTL_SECONDS
            self._cache[domain] = (self._clock() + ttl, verdict)
            future.set_result(verdict)
            return verdict
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters get it, nobody is warned of an unread one
            raise
        finally:
            del self._pending[domain]

    async def check_many(self, domains: Iterable[str]) -> dict[str, DomainVerdict]:
        """Verdicts for every domain, CONCURRENT_LOOKUPS at a time."""
        wanted = sorted(set(domains))
        limit = asyncio.Semaphore(CONCURRENT_LOOKUPS)

        async def one(domain: str) -> DomainVerdict:
            async with limit:
                return await self.check(domain)

        verdicts = await asyncio.gather(*(one(d) for d in wanted))
        return dict(zip(wanted, verdicts, strict=True))

    async def mx_hosts(self, domains: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Each domain's MX hosts (empty when it has none or DNS did not answer): the domain limits' grouping."""
        return {domain: verdict.mx_hosts for domain, verdict in (await self.check_many(domains)).items()}

    async def _lookup(self, domain: str) -> DomainVerdict:
        if self._resolver is None:
            return DomainVerdict(domain, UNKNOWN, f"DNS not asked for {domain}: {self._setup_error}")
        mx = await self._ask(domain, "MX")
        a = aaaa = None
        if needs_address_records(mx):
            a, aaaa = await asyncio.gather(self._ask(domain, "A"), self._ask(domain, "AAAA"))
        verdict = domain_verdict(DomainLookup(domain, mx, a, aaaa))
        get_logger().debug("dns.checked", domain=domain, status=verdict.status, reason=verdict.reason)
        return verdict

    async def _ask(self, domain: str, rdtype: str) -> Answer:
        assert self._resolver is not None
        try:
            name = dns.name.from_text(domain)
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(NXDOMAIN)
        except dns.exception.Timeout:
            return Answer(NO_ANSWER, detail=f"timed out after {self.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            return Answer(NO_ANSWER, detail=f"no resolver answered ({_first_line(exc)})")
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            return Answer(NO_ANSWER, detail=_first_line(exc))
        if answer.rrset is None:
            return Answer(NO_RECORDS)
        if rdtype == "MX":
            hosts = sorted(
                (rdata.preference, rdata.exchange.to_text(omit_final_dot=True).lower()) for rdata in answer.rrset
            )
            return Answer(RECORDS, tuple(host for _, host in hosts))
        return Answer(RECORDS, tuple(rdata.to_text() for rdata in answer.rrset))


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
