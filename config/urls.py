from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import views

admin.site.site_header = "Concord administration"
admin.site.site_title = "Concord admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("customers/", include("crm.urls")),
    path("customers/<int:pk>/", include("billing.urls")),
    path("customers/<int:pk>/invoices/", include("billing.invoice_urls")),
    path("customers/<int:pk>/documents/", include("billing.document_urls")),
    path("statements/", include("billing.statement_link_urls")),
    path("ar/aging/", include("billing.aging_urls")),
    path("ar/dashboard/", include("billing.dashboard_urls")),
    path("ar/dunning/", include("billing.dunning_urls")),
    path("ar/worklist/", include("billing.worklist_urls")),
    path("ar/write-offs/", include("billing.writeoff_urls")),
    path("ar/recurring/", include("billing.recurring_urls")),
    path("customers/<int:pk>/collections/", include("billing.collections_urls")),
    path("jobs/", include("jobs.urls")),
    path("notifications/", include("crm.notification_urls")),
    path("console/", include("config.console_urls")),
    # Connections to accounting packages, runs, conflicts, quarantine, mappings; webhooks in.
    path("sync/webhooks/", include("integrations.webhook_urls")),
    path("sync/connections/<int:connection_pk>/reconciliation/", include("integrations.reconciliation_urls")),
    path("sync/", include("integrations.urls")),
    path("profile/", include("api.profile_urls")),
    path("api/", include("api.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

# Under /api/ an unknown URL is a problem document like every API error (api/problems.py).
handler404 = "api.problems.not_found_response"
