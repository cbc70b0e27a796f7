"""The few HTML pages (Intuit's consent screen, the admin page) and a one-page PDF."""

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
.box{max-width:28rem;border:1px solid #ccc;border-radius:.5rem;padding:1.5rem}
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


def authorize_page(*, app_name: str, realms: list[tuple[str, str]], hidden: dict[str, str]) -> Response:
    """Intuit's consent screen, reduced to the choice that matters: which company to connect."""
    first_name = realms[0][1] if realms else "a new company"
    options = "".join(
        f'<option value="{escape(realm_id)}">{escape(name)} ({escape(realm_id)})</option>' for realm_id, name in realms
    )
    options += '<option value="new">Create a new company…</option>'
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in hidden.items()
    )
    body = (
        '<div class="box">'
        f"<h1>Connect {escape(app_name)} to {escape(first_name)}</h1>"
        f"<p>{escape(app_name)} is asking for access to your QuickBooks company's accounting data.</p>"
        '<form method="post" action="/connect/oauth2">'
        f"{fields}"
        '<p><label for="realm">Company</label><br><select id="realm" name="realm">'
        f"{options}</select></p>"
        '<p><label for="company_name">Name of a new company</label><br>'
        '<input id="company_name" name="company_name" value="Sandbox Company"></p>'
        '<button type="submit" name="decision" value="authorize">Authorize</button>'
        '<button type="submit" name="decision" value="cancel">Cancel</button>'
        "</form></div>"
    )
    return _html_page(f"Connect {app_name}", body)


def _money(value: Any) -> str:
    return wire.dumps(value) if value is not None else ""


def admin_page(
    *, realms: list[tuple[str, str]], realm_id: str, invoices: list[dict[str, Any]], message: str, api_url: str
) -> Response:
    realm_links = " · ".join(
        f'<a href="/_simulator/?realm={escape(rid)}">{escape(name)} ({escape(rid)})</a>' for rid, name in realms
    )
    rows = []
    for invoice in invoices:
        invoice_id = escape(invoice["Id"])
        voided = invoice.get("PrivateNote") == "Voided" and invoice.get("TotalAmt") == 0
        status = "Voided" if voided else ("Paid" if invoice.get("Balance") == 0 else "Open")
        action_base = f"/_simulator/ui/{escape(realm_id)}/invoice/{invoice_id}"
        void_form = (
            ""
            if voided
            else f'<form class="inline" method="post" action="{action_base}/void">'
            f'<button type="submit" aria-label="Void invoice {invoice_id}">Void</button></form>'
        )
        edit_form = (
            ""
            if voided
            else f'<form class="inline" method="post" action="{action_base}/edit">'
            f'<label>Due <input type="date" name="DueDate" value="{escape(invoice.get("DueDate", ""))}"></label> '
            f'<label>Memo <input name="PrivateNote" value="{escape(invoice.get("PrivateNote", ""))}"></label> '
            f'<label>Message <input name="CustomerMemo" '
            f'value="{escape((invoice.get("CustomerMemo") or {}).get("value", ""))}"></label> '
            f'<button type="submit" aria-label="Save invoice {invoice_id}">Save</button></form>'
        )
        rows.append(
            f'<tr id="invoice-{invoice_id}"><td>{invoice_id}</td><td>{escape(invoice.get("DocNumber", ""))}</td>'
            f"<td>{escape((invoice.get('CustomerRef') or {}).get('name', ''))}</td>"
            f"<td>{escape(invoice.get('TxnDate', ''))}</td><td>{escape(invoice.get('DueDate', ''))}</td>"
            f'<td class="num">{_money(invoice.get("TotalAmt"))}</td>'
            f'<td class="num">{_money(invoice.get("Balance"))}</td>'
            f"<td>{status}</td><td>{escape(invoice['SyncToken'])}</td><td>{void_form} {edit_form}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>Id</th><th>No.</th><th>Customer</th><th>Date</th><th>Due</th><th>Total</th>"
        "<th>Balance</th><th>Status</th><th>SyncToken</th><th>Change as a QuickBooks user</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No invoices in this company yet.</p>"
    )
    body = (
        "<h1>QuickBooks Online simulator</h1>"
        f"<p>API: <code>{escape(api_url)}</code> · Companies: {realm_links or 'none'}</p>"
        + (f'<p class="message" role="status">{escape(message)}</p>' if message else "")
        + (f"<h2>Invoices of company {escape(realm_id)}</h2>{table}" if realm_id else "")
    )
    return _html_page("QuickBooks simulator", body)


def tiny_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF with a few lines of Helvetica: enough for a download to be a PDF."""

    def pdf_text(text: str) -> str:
        safe = text.encode("latin-1", "replace").decode("latin-1")
        return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    stream = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({pdf_text(line)}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out
