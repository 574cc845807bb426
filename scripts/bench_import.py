"""Measure lead import throughput (rows/s) and this process's peak memory (RSS) for generated CSV files.

Each size runs in its own process so peak RSS is that size's alone. The file is read as `import-leads` reads
it (binary, encoding checked through the whole file first, delimiter sniffed, headers mapped). `--dialect
excel` writes what a spreadsheet on Windows exports instead: semicolon-separated cp1252 with `Email Address`
and `Company` headings (read with --encoding cp1252). Uses MONGO_URI when set, otherwise starts a throwaway
in-memory SecantusDB server on loopback.

    python scripts/bench_import.py 10000 100000 [--group-size 2] [--batch-size 1000] [--dialect excel]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bson import ObjectId

from app.domain.importing import ImportOptions, open_file
from app.store import embedded, schema
from app.store.client import make_client
from app.store.lead_import import import_leads


def write_csv(path: Path, rows: int, group_size: int, dialect: str = "csv") -> None:
    """A CSV of `rows` recipients, `group_size` per company (`excel`: semicolons, cp1252, Excel's headings)."""
    if dialect == "excel":
        with path.open("w", encoding="cp1252", newline="") as out:
            out.write("Email Address;First Name;Last Name;Company;Website\r\n")
            for i in range(rows):
                company = i // group_size
                out.write(
                    f"p{i}@c{company}.example.com;Renée{i};Müller{i};Société {company};c{company}.example.com\r\n"
                )
        return
    with path.open("w", encoding="utf-8") as out:
        out.write("email,first_name,last_name,company_name,website\n")
        for i in range(rows):
            company = i // group_size
            out.write(
                f"p{i}@c{company}.example.com,First{i},Last{i},Company {company},https://c{company}.example.com\n"
            )


async def measure(uri: str, rows: int, group_size: int, batch_size: int, dialect: str) -> dict[str, Any]:
    """Import a generated file into a fresh database; return the figures."""
    client = make_client(uri)
    db = client[f"bench_{uuid.uuid4().hex[:8]}"]
    try:
        await schema.ensure_schema(db)
        campaign = {"_id": ObjectId(), "name": "bench", "status": "active", "sequence_id": "s", "settings": {}}
        await db[schema.CAMPAIGNS].insert_one(campaign)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.csv"
            write_csv(path, rows, group_size, dialect)
            options = ImportOptions(encoding="cp1252" if dialect == "excel" else None)
            with path.open("rb") as handle:
                started = time.perf_counter()
                stream = open_file(handle, path.name, options)
                report = await import_leads(
                    db, str(campaign["_id"]), stream, now=datetime.now(UTC), batch_size=batch_size
                )
                elapsed = time.perf_counter() - started
        return {
            "rows": rows,
            "seconds": round(elapsed, 2),
            "rows_per_second": round(rows / elapsed),
            "leads_created": report.leads_created,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        await client.drop_database(db.name)
        await client.close()


def run_one(args: argparse.Namespace) -> None:
    uri = os.environ["BENCH_URI"]
    figures = asyncio.run(measure(uri, args.rows[0], args.group_size, args.batch_size, args.dialect))
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int, nargs="+", help="row counts to measure, e.g. 10000 100000")
    parser.add_argument("--group-size", type=int, default=2, help="recipients per company (default 2)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--dialect", choices=("csv", "excel"), default="csv", help="the kind of file (default csv)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args)
        return
    server = None
    uri = os.environ.get("MONGO_URI")
    if not uri:
        log = Path(tempfile.mkdtemp()) / "server.log"
        server, port = embedded.spawn_server(":memory:", log, detach=False, timeout=120)
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        print(f"{'rows':>10} {'seconds':>9} {'rows/s':>8} {'leads':>9} {'peak RSS MiB':>13}")
        for rows in args.rows:
            command = [sys.executable, __file__, str(rows), "--child", "--group-size", str(args.group_size)]
            command += ["--batch-size", str(args.batch_size), "--dialect", args.dialect]
            out = subprocess.run(command, env={**os.environ, "BENCH_URI": uri}, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"benchmark of {rows} rows failed:\n{out.stderr}")
            f = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{f['rows']:>10,} {f['seconds']:>9} {f['rows_per_second']:>8,} {f['leads_created']:>9,} "
                f"{f['peak_rss_mib']:>13}"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
