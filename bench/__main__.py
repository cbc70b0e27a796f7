"""`python -m bench [--small] [--database-url URL] [--skip-seed] [--only NAME ...]` (`make bench`);
`python -m bench --sync [--sync-size ci|full]` runs the sync benchmark instead (bench/sync.py).

Without --skip-seed it (re)creates the database the URL names, migrates it and seeds it with
`manage.py seed_scale` at the size asked for, then measures. With --skip-seed it measures a
database already loaded (e.g. concord_scale) and runs the measures that write (issue + post,
record + allocate, dunning) on a copy of it (CREATE DATABASE … TEMPLATE), dropped afterwards, so
the loaded database is left as it was. Results go to bench/results/; a full-size run also
rewrites the README's Performance section.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URLS = {
    "full": "postgres://postgres@127.0.0.1:5432/concord_bench",
    "small": "postgres://postgres@127.0.0.1:5432/concord_bench_small",
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from bench.sizes import GROUPS, RESULTS_DIR

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small size CI runs (300 customers, 3 000 invoices)")
    parser.add_argument("--customers", type=int, help="another size: this many customers (with --invoices)")
    parser.add_argument("--invoices", type=int, help="another size: this many invoices (with --customers)")
    parser.add_argument("--database-url", help="PostgreSQL (or SQLite) URL; default concord_bench[_small] locally")
    parser.add_argument("--skip-seed", action="store_true", help="measure the database as it is (writes on a copy)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, metavar="NAME", help=f"only these: {', '.join(GROUPS)}")
    parser.add_argument("--repeat", type=int, help="timed runs per read measure (after the warm-up)")
    parser.add_argument("--no-tryton", action="store_true", help="leave Tryton out")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default bench/results)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README's Performance section")
    parser.add_argument("--readme-from", type=Path, metavar="JSON", help="only rewrite the README from these results")
    parser.add_argument("--sync", action="store_true", help="the sync chaos benchmark instead (bench/sync.py)")
    parser.add_argument("--sync-size", choices=("ci", "full"), default="full", help="with --sync: its size")
    parser.add_argument(
        "--sync-provider", choices=("quickbooks", "xero"), default="quickbooks", help="with --sync: the package"
    )
    parser.add_argument("--requests-per-minute", type=int, help="with --sync: the connection's pacing")
    parser.add_argument("--probe-seconds", type=float, default=150.0, help="with --sync: the pacing probe's length")
    args = parser.parse_args(argv)
    if (args.customers is None) != (args.invoices is None):
        parser.error("--customers and --invoices go together")
    return args


def _admin_connection(url: str):
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def recreate_database(url: str) -> None:
    """Drop and create the database the URL names (PostgreSQL), or delete the SQLite file."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        path = Path(parts.path[1:] if parts.path.startswith("//") else parts.path)
        path.unlink(missing_ok=True)
        return
    name = parts.path.lstrip("/")
    with _admin_connection(url) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {_quoted(name)}")


@contextmanager
def database_copy():
    """Switch Django's connection to a fresh copy of its database for the writing measures, and
    drop the copy afterwards. PostgreSQL copies a template only while nobody is connected to it."""
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        raise RuntimeError("writing measures on a copy need PostgreSQL; run without --skip-seed")
    settings = connection.settings_dict
    original = settings["NAME"]
    copy = f"{original}_benchw"
    url = f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/postgres"
    connections.close_all()
    with _admin_connection(url) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {_quoted(copy)}")
        busy = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [original]
        ).fetchone()[0]
        if busy:
            raise RuntimeError(f"cannot copy {original}: {busy} other connection(s) to it; try again when it is idle")
        print(f"[bench] copying {original} to {copy} for the writing measures…", flush=True)
        admin.execute(f"CREATE DATABASE {_quoted(copy)} TEMPLATE {_quoted(original)}")
    settings["NAME"] = copy
    try:
        yield
    finally:
        connections.close_all()
        settings["NAME"] = original
        with _admin_connection(url) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {_quoted(copy)} WITH (FORCE)")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.readme_from:
        import json

        from bench import report

        report.update_readme(report.markdown(json.loads(args.readme_from.read_text()), heading_level=3))
        return 0
    if args.sync:
        from bench.sync import main as sync_main

        return sync_main(args, recreate=recreate_database)
    from bench.sizes import FULL, SMALL

    size = SMALL if args.small else FULL
    if args.customers:
        size = size.scaled(customers=args.customers, invoices=args.invoices)
    if args.repeat:
        from dataclasses import replace

        size = replace(size, repeat=args.repeat)
    url = args.database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URLS["small" if args.small else "full"]
    os.environ["DATABASE_URL"] = url
    os.environ.pop("DATABASE_REPLICA_URL", None)  # the bench measures the primary
    os.environ["DEBUG"] = "false"  # Django would otherwise keep every statement of the seed in memory
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not args.skip_seed:
        print(f"[bench] recreating {urlsplit(url).path.lstrip('/')}…", flush=True)
        recreate_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    from bench.run import run_bench

    if not args.skip_seed:
        call_command("migrate", verbosity=0, interactive=False)
    results = run_bench(
        size,
        out_dir=args.out,
        seed_data=not args.skip_seed,
        only=args.only,
        with_tryton=False if args.no_tryton else None,
        writable=database_copy if args.skip_seed else _in_place,
        update_readme=not args.no_readme and not args.small and args.only is None,
        log=lambda line: print(line, flush=True),
    )
    print(Path(results["files"]["latest_markdown"]).read_text())
    for name, error in results["errors"].items():
        print(f"[bench] error in {name}: {error}", file=sys.stderr)
    return 1 if results["errors"] else 0


@contextmanager
def _in_place():
    yield


if __name__ == "__main__":
    sys.exit(main())
