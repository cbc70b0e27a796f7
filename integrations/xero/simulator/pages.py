"""The few HTML pages: Xero's consent screen (pick organisations) and the admin page."""

from __future__ import annotations

from html import escape
from typing import Any

from werkzeug.wrappers import Response

from . import wire

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-top:1rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.num{text-align:right}
.box{max-width:30rem;border:1px solid #ccc;border-radius:.5rem;padding:1.5rem}
.message{background:#eef6ee;border:1px solid #9c9;padding:.5rem;margin:1rem 0}
button{padding:.3rem .8rem;margin:.2rem}
form.inline{display:inline}
"""


def _html_page(title: str, body: str, status: int = 200) -> Response:
    text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(text, status=status, content_type="text/html; charset=utf-8")


def error_page(title: str, detail: str) -> Response:
    return _html_page(title, f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>", status=400)


def authorize_page(
    *, app_name: str, tenants: list[tuple[str, str]], scope: str, hidden: dict[str, str], action: str
) -> Response:
    """Xero's consent screen, reduced to what matters: which organisations to connect."""
    boxes = "".join(
        f'<p><label><input type="checkbox" name="tenant" value="{escape(tenant_id)}"'
        f"{' checked' if index == 0 else ''}> {escape(name)}</label></p>"
        for index, (tenant_id, name) in enumerate(tenants)
    )
    boxes += (
        '<p><label><input type="checkbox" name="tenant" value="new"'
        f"{'' if tenants else ' checked'}> A new organisation named </label>"
        '<input name="organisation_name" value="Demo Company (US)" aria-label="Name of a new organisation"></p>'
    )
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in hidden.items()
    )
    scopes = "".join(f"<li>{escape(item)}</li>" for item in scope.split())
    body = (
        '<div class="box">'
        f"<h1>{escape(app_name)} wants to access your Xero data</h1>"
        f"<p>It asks for:</p><ul>{scopes}</ul>"
        f'<form method="post" action="{escape(action)}">{fields}'
        f"<fieldset><legend>Organisations to connect</legend>{boxes}</fieldset>"
        '<button type="submit" name="decision" value="authorize">Allow access</button>'
        '<button type="submit" name="decision" value="cancel">Cancel</button>'
        "</form></div>"
    )
    return _html_page(f"Connect {app_name} to Xero", body)


def admin_page(
    *, tenants: list[tuple[str, str]], tenant_id: str, invoices: list[dict[str, Any]], message: str, api_url: str
) -> Response:
    links = " · ".join(
        f'<a href="/_simulator/?tenant={escape(tid)}">{escape(name)} ({escape(tid)})</a>' for tid, name in tenants
    )
    rows = []
    for invoice in invoices:
        invoice_id = escape(invoice["InvoiceID"])
        status = invoice["Status"]
        action = f"/_simulator/ui/{escape(tenant_id)}/invoices/{invoice_id}"
        buttons = ""
        if status == "AUTHORISED" and not invoice["AmountPaid"] and not invoice["AmountCredited"]:
            buttons += (
                f'<form class="inline" method="post" action="{action}/void">'
                f'<button type="submit" aria-label="Void invoice {invoice_id}">Void</button></form>'
            )
        if status in ("DRAFT", "SUBMITTED"):
            buttons += (
                f'<form class="inline" method="post" action="{action}/delete">'
                f'<button type="submit" aria-label="Delete invoice {invoice_id}">Delete</button></form>'
            )
        rows.append(
            f'<tr id="invoice-{invoice_id}"><td>{escape(invoice["InvoiceNumber"])}</td>'
            f"<td>{escape(invoice['Contact'].get('Name', ''))}</td><td>{escape(invoice['DateString'][:10])}</td>"
            f'<td>{escape(status)}</td><td class="num">{wire.dumps(invoice["Total"])}</td>'
            f'<td class="num">{wire.dumps(invoice["AmountDue"])}</td><td>{buttons}</td></tr>'
        )
    table = (
        "<table><thead><tr><th>Number</th><th>Contact</th><th>Date</th><th>Status</th><th>Total</th>"
        "<th>Due</th><th>Change as a Xero user</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No invoices in this organisation yet.</p>"
    )
    body = (
        "<h1>Xero simulator</h1>"
        f"<p>API: <code>{escape(api_url)}</code> · Organisations: {links or 'none'}</p>"
        + (f'<p class="message" role="status">{escape(message)}</p>' if message else "")
        + (f"<h2>Invoices of {escape(tenant_id)}</h2>{table}" if tenant_id else "")
    )
    return _html_page("Xero simulator", body)
