from django.urls import path

from . import webhook_views

app_name = "webhooks"

urlpatterns = [
    path("<slug:provider>/", webhook_views.receive, name="receive"),
]
