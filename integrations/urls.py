"""The sync pages, under /sync/. Who may use which: integrations/access.py."""

from django.urls import path

from . import views

app_name = "integrations"

urlpatterns = [
    path("", views.connection_list, name="connection_list"),
    path("connections/new/", views.connection_create, name="connection_create"),
    path("connections/<int:connection_pk>/", views.connection_detail, name="connection_detail"),
    path("connections/<int:connection_pk>/connect/", views.connection_connect, name="connection_connect"),
    path("connections/<int:connection_pk>/organisation/", views.connection_tenant, name="connection_tenant"),
    path("connections/<int:connection_pk>/pause/", views.connection_pause, name="connection_pause"),
    path("connections/<int:connection_pk>/resume/", views.connection_resume, name="connection_resume"),
    path("connections/<int:connection_pk>/run/", views.connection_run, name="connection_run"),
    path("connections/<int:connection_pk>/schedule/", views.connection_schedule, name="connection_schedule"),
    path("connections/<int:connection_pk>/directions/", views.connection_directions, name="connection_directions"),
    path("connections/<int:connection_pk>/policies/", views.connection_policy, name="connection_policy"),
    path("connections/<int:connection_pk>/runs/", views.run_history, name="run_history"),
    path("connections/<int:connection_pk>/mappings/", views.mapping_list, name="mapping_list"),
    path("connections/<int:connection_pk>/mappings/new/", views.mapping_create, name="mapping_create"),
    path("connections/<int:connection_pk>/mappings/repush/", views.mapping_repush, name="mapping_repush"),
    path("mappings/<int:mapping_pk>/", views.mapping_detail, name="mapping_detail"),
    path("oauth/callback/", views.oauth_callback, name="oauth_callback"),
    path("runs/<int:run_pk>/", views.run_detail, name="run_detail"),
    path("conflicts/", views.conflict_list, name="conflict_list"),
    path("conflicts/<int:conflict_pk>/", views.conflict_detail, name="conflict_detail"),
    path("conflicts/<int:conflict_pk>/resolve/", views.conflict_resolve, name="conflict_resolve"),
    path("quarantine/", views.quarantine_list, name="quarantine_list"),
    path("quarantine/<int:quarantine_pk>/retry/", views.quarantine_retry, name="quarantine_retry"),
    path("quarantine/<int:quarantine_pk>/ignore/", views.quarantine_ignore, name="quarantine_ignore"),
]
