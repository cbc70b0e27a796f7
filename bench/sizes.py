"""The sizes the bench runs at, its measure groups and where results go (importable before Django is
set up: the command line reads them)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Measure groups, in the order they run: reads first, then the ones that write.
READ_GROUPS = ("lists", "customer_360", "aging", "exports")
WRITE_GROUPS = ("issue_post", "record_allocate", "dunning")
GROUPS = (*READ_GROUPS, *WRITE_GROUPS, "tryton")


@dataclass(frozen=True)
class Size:
    name: str
    customers: int
    invoices: int
    seed: int = 6
    repeat: int = 20  # timed runs per read measure, after `warmup` untimed ones
    warmup: int = 2
    export_repeat: int = 3
    batch_size: int = 500  # documents per batch of measure 5
    batches: int = 6
    # Tryton runs a few hundred invoices: its rate is what is compared, and it is slow to set up.
    tryton_invoices: int = 300
    tryton_customers: int = 50
    tryton_batch_size: int = 25

    def scaled(self, *, customers: int, invoices: int) -> Size:
        return replace(self, name=f"{customers}x{invoices}", customers=customers, invoices=invoices)


FULL = Size("full", customers=100_000, invoices=1_000_000)
# What CI runs so that the bench code never rots; it asserts nothing about time.
SMALL = Size(
    "small",
    customers=300,
    invoices=3_000,
    repeat=3,
    warmup=1,
    export_repeat=1,
    batch_size=20,
    batches=2,
    tryton_invoices=30,
    tryton_customers=10,
    tryton_batch_size=10,
)
SIZES = {"full": FULL, "small": SMALL}
