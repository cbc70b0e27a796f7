"""`python manage.py import_exchange_rates FILE.csv [--source NAME]`

Loads exchange rates from a CSV file with the header `currency,date,rate` (an optional `source`
column too): one row per currency and day, the rate being base-currency units per unit. Every
row is checked first; if any is wrong, the command names each bad row and imports nothing.
A rate already entered for the same currency and day is replaced.
"""

import csv
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config import audit
from ledger.currency import validate_currency_code
from ledger.money import base_currency
from ledger.services import set_exchange_rate

REQUIRED_COLUMNS = {"currency", "date", "rate"}


def parse_row(row: dict, line_number: int) -> tuple[str, date, Decimal, str]:
    currency = (row.get("currency") or "").strip().upper()
    try:
        validate_currency_code(currency)
    except ValidationError as error:
        raise ValueError(f"line {line_number}: {error.messages[0]}") from None
    if currency == base_currency():
        raise ValueError(f"line {line_number}: {currency} is the base currency; its rate is always 1.")
    try:
        rate_date = date.fromisoformat((row.get("date") or "").strip())
    except ValueError:
        raise ValueError(f"line {line_number}: date {row.get('date')!r} is not YYYY-MM-DD.") from None
    try:
        rate = Decimal((row.get("rate") or "").strip())
    except InvalidOperation:
        raise ValueError(f"line {line_number}: rate {row.get('rate')!r} is not a number.") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"line {line_number}: a rate must be a positive number, not {rate}.")
    return currency, rate_date, rate, (row.get("source") or "").strip()


class Command(BaseCommand):
    help = "Import exchange rates from a CSV file (currency,date,rate[,source]); all rows or none."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--source", default="import", help="Recorded as the rates' source when the file has none.")

    def handle(self, *args, file: Path, source: str, **options):
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = REQUIRED_COLUMNS - set(reader.fieldnames or [])
            if missing:
                raise CommandError(
                    f"{file} lacks the column(s) {', '.join(sorted(missing))}; expected currency,date,rate."
                )
            parsed, errors, seen = [], [], set()
            for line_number, row in enumerate(reader, start=2):
                try:
                    currency, rate_date, rate, row_source = parse_row(row, line_number)
                except ValueError as error:
                    errors.append(str(error))
                    continue
                if (currency, rate_date) in seen:
                    errors.append(f"line {line_number}: a second {currency} rate for {rate_date}.")
                seen.add((currency, rate_date))
                parsed.append((currency, rate_date, rate, row_source or source))
        if errors:
            raise CommandError("Nothing imported; fix these rows first:\n  " + "\n  ".join(errors))
        actor = audit.system_actor("command:import_exchange_rates")
        with audit.as_system("command:import_exchange_rates"), transaction.atomic():
            for currency, rate_date, rate, row_source in parsed:
                set_exchange_rate(actor=actor, currency=currency, rate_date=rate_date, rate=rate, source=row_source)
        self.stdout.write(self.style.SUCCESS(f"Imported {len(parsed)} exchange rate(s) from {file}."))
