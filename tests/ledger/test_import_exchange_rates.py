from datetime import date
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from ledger.models import ExchangeRate
from ledger.services import rate_on

pytestmark = pytest.mark.django_db


def write(tmp_path, text):
    path = tmp_path / "rates.csv"
    path.write_text(text)
    return str(path)


def test_rates_from_a_file_are_used_from_their_date_on(tmp_path):
    call_command("import_exchange_rates", write(tmp_path, "currency,date,rate\nEUR,2026-01-02,1.0950\n"), stdout=None)
    assert rate_on("EUR", date(2026, 1, 5)) == Decimal("1.0950")
    assert ExchangeRate.objects.get().source == "import"


def test_a_rate_for_a_day_already_entered_is_replaced(tmp_path):
    call_command("import_exchange_rates", write(tmp_path, "currency,date,rate\nEUR,2026-01-02,1.09\n"), stdout=None)
    call_command(
        "import_exchange_rates", write(tmp_path, "currency,date,rate,source\nEUR,2026-01-02,1.10,ECB\n"), stdout=None
    )
    rate = ExchangeRate.objects.get()
    assert (rate.rate, rate.source) == (Decimal("1.10"), "ECB")


def test_a_file_with_a_bad_row_imports_nothing_and_names_every_bad_row(tmp_path):
    text = "currency,date,rate\nEUR,2026-01-02,1.09\nEUR,02/01/2026,1.1\nXYZ,2026-01-03,2\nGBP,2026-01-03,-1\n"
    with pytest.raises(CommandError) as error:
        call_command("import_exchange_rates", write(tmp_path, text), stdout=None)
    message = str(error.value)
    assert "line 3" in message and "line 4" in message and "line 5" in message
    assert not ExchangeRate.objects.exists()


def test_a_file_without_the_rate_column_is_refused(tmp_path):
    with pytest.raises(CommandError, match="lacks the column"):
        call_command("import_exchange_rates", write(tmp_path, "currency,date\nEUR,2026-01-02\n"), stdout=None)
