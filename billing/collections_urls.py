"""Collections writes from the customer page's panel; mounted at /customers/<pk>/collections/."""

from django.urls import path

from billing import collections_views as views

app_name = "collections"

urlpatterns = [
    path("promises/", views.record_promise, name="record_promise"),
    path("promises/<int:promise_pk>/cancel/", views.cancel_promise, name="cancel_promise"),
    path("disputes/", views.open_dispute, name="open_dispute"),
    path("disputes/<int:disputed_invoice_pk>/resolve/", views.resolve_dispute, name="resolve_dispute"),
    path("collector/", views.assign_collector, name="assign_collector"),
]
