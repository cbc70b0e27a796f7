"""The dunning page; mounted at /ar/dunning/ (config.urls)."""

from django.urls import path

from billing import dunning_views

app_name = "dunning"

urlpatterns = [
    path("", dunning_views.dunning_page, name="page"),
    path("invoices/<int:invoice_pk>/letter/", dunning_views.letter_preview, name="letter_preview"),
    path("send/", dunning_views.send_now, name="send"),
    path("letters/<int:letter_pk>/retry/", dunning_views.retry_letter, name="retry"),
]
