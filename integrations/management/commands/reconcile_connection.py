"""Print a connection's reconciliation report (integrations/reconciliation.py).

    manage.py reconcile_connection --connection 3 [--json]

Reads both books (every record of every synced entity: it takes a while on a large company) and
changes nothing. Without --json, a table of counts and totals per entity with ✓/✗, then the
records that differ and the customers whose AR balances differ; with --json, the report as
`report_to_json` gives it. Progress goes to stderr with -v 2.
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations import reconciliation
from integrations.models import Connection

KIND_WORDS = {
    reconciliation.DIFFERS: "differs",
    reconciliation.LOCAL_ONLY: "only in Concord",
    reconciliation.REMOTE_ONLY: "only in the package",
    reconciliation.UNREADABLE: "unreadable in the package",
}


class Command(BaseCommand):
    help = "Compare a connection's books in Concord and in the accounting package, and print the report."

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True, help="the connection's id")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, connection: int, as_json: bool, verbosity: int = 1, **options):
        found = Connection.objects.filter(pk=connection).first()
        if found is None:
            raise CommandError(f"No connection {connection}.")

        def progress(done: int, message: str) -> None:
            if verbosity >= 2:
                self.stderr.write(f"{done:>9} {message}")

        try:
            report = reconciliation.reconcile(connection=found, progress=progress)
        except ValidationError as refused:
            raise CommandError(" ".join(refused.messages)) from refused
        if as_json:
            self.stdout.write(json.dumps(reconciliation.report_to_json(report), indent=2, ensure_ascii=False))
        else:
            self.stdout.write("\n".join(report_lines(report)))


def report_lines(report: reconciliation.Report) -> list[str]:
    lines = [
        f"Reconciliation of {report.connection_name} ({report.provider}), "
        f"{report.started_at:%Y-%m-%d %H:%M:%S} to {report.finished_at:%Y-%m-%d %H:%M:%S}",
        "",
        f"{'':2}{'Record type':<14}{'Figure':<16}{'Currency':<9}{'Concord':>16}{'Package':>16}",
    ]
    for row in report.entities:
        mark = "✓" if row.counts_agree and not row.differences else "✗"
        lines.append(f"{mark:<2}{row.label:<14}{'count':<16}{'':<9}{row.local.count:>16}{row.remote.count:>16}")
        for measure in row.measures:
            local, remote = row.local.amounts.get(measure, {}), row.remote.amounts.get(measure, {})
            for currency in sorted(set(local) | set(remote)):
                ours, theirs = local.get(currency, 0), remote.get(currency, 0)
                mark = "✓" if ours == theirs else "✗"
                lines.append(f"{mark:<2}{'':<14}{measure:<16}{currency:<9}{ours:>16}{theirs:>16}")
        if row.differences:
            lines.append(
                f"{'':16}only in Concord {row.local_only}, only in the package {row.remote_only}, "
                f"differ {row.differing}, unreadable {row.unreadable}"
            )
    lines += ["", "Records that differ:" if report.differences else "No record differs."]
    for difference in report.differences:
        where = ", ".join(
            part
            for part in (
                f"Concord #{difference.local_id}" if difference.local_id is not None else "",
                f"package {difference.remote_id}" if difference.remote_id else "",
            )
            if part
        )
        lines.append(f"  {difference.entity} {difference.label} ({where}): {KIND_WORDS[difference.kind]}")
        if difference.note:
            lines.append(f"      {difference.note}")
        for changed in difference.fields:
            lines.append(
                f"      {changed.name}: Concord {json.dumps(changed.local, ensure_ascii=False)}, "
                f"package {json.dumps(changed.remote, ensure_ascii=False)}"
            )
    if report.differences_omitted:
        lines.append(f"  … and {report.differences_omitted} more, not listed")
    lines += [
        "",
        f"AR balance per customer: {report.balances_compared} customers compared, "
        f"{report.balances_differing} differ" + (":" if report.balance_differences else "."),
    ]
    for balance in report.balance_differences:
        ours = "—" if balance.local is None else balance.local
        theirs = "—" if balance.remote is None else balance.remote
        lines.append(f"  {balance.label} ({balance.currency}): Concord {ours}, package {theirs}")
    if report.balance_differences_omitted:
        lines.append(f"  … and {report.balance_differences_omitted} more, not listed")
    lines += ["", reconciliation.summary(report)]
    return lines
