"""The statement behind a dunning letter's signed link; mounted under /statements/ (config.urls).
Public: the token is the permission (billing.statement_links)."""

from django.urls import path

from billing import statement_links

app_name = "statement_links"

urlpatterns = [
    path("<str:token>/", statement_links.statement_pdf, name="statement"),
]
