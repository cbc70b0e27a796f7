"""The write-off desk; mounted at /ar/write-offs/ (config.urls)."""

from django.urls import path

from billing import writeoff_views

app_name = "writeoffs"

urlpatterns = [
    path("", writeoff_views.desk, name="desk"),
    # One URL for both decisions: the form's `decision` is "approve" or "reject".
    path("<int:write_off_pk>/decision/", writeoff_views.decide, name="decide"),
]
