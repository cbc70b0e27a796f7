"""One aging export of all customers, in a fresh interpreter so that its peak RSS is its own:
`python -m bench.export_child --format csv|xlsx --as-of YYYY-MM-DD`. It does what the export job
(billing.exports.run_export_job) does for an Accounts Receivable user, who sees every customer,
minus the job's own bookkeeping, writing to a temporary file; prints one JSON line."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", required=True, choices=["csv", "csv_invoices", "xlsx"])
    parser.add_argument("--as-of", required=True, type=date.fromisoformat)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from billing import aging, exports
    from crm.models import Customer

    baseline_kb = _status_kb("VmRSS")
    filters = aging.AgingFilters(as_of=args.as_of)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        if "customers" in inspect.signature(exports.write_export).parameters:
            rows = exports.write_export(
                out, filters=filters, export_format=args.format, customers=Customer.objects.all()
            )
        else:  # the chunked form the export job used before it streamed
            customer_ids = list(Customer.objects.order_by("display_name", "pk").values_list("pk", flat=True))
            chunks = exports.customer_chunks(customer_ids)
            rows = exports.write_export(out, filters=filters, export_format=args.format, chunks=chunks)
        size = out.tell()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": rows,
                "bytes": size,
                "baseline_rss_kb": baseline_kb,
                "peak_rss_kb": _status_kb("VmHWM"),
            }
        )
    )


if __name__ == "__main__":
    main()
