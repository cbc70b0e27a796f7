from django.urls import path

from billing import recurring_views

app_name = "recurring"

urlpatterns = [
    path("", recurring_views.recurring_page, name="page"),
    path("run/", recurring_views.run_now, name="run"),
]
