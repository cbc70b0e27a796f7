"""Billing writes made from the customer page; mounted under /customers/<pk>/ (config.urls)."""

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("payments/", views.record_payment, name="record_payment"),
    path("payments/<int:payment_pk>/allocations/", views.allocate_payment, name="allocate_payment"),
]
