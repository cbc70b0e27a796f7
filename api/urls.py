"""/api/: version 1 of the REST API, its schema and its documentation.

Each app contributes its resources from its own `api.py`: viewsets through `register(router)`,
and any plain views as a module-level `urlpatterns` list (mounted under /api/v1/ too), so adding
a resource does not touch this file.
"""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from api import views
from billing import api as billing_api
from crm import api as crm_api

app_name = "api"

RESOURCE_MODULES = (crm_api, billing_api)


def _router() -> SimpleRouter:
    router = SimpleRouter()
    router.register("auth/tokens", views.TokenViewSet, basename="token")
    for module in RESOURCE_MODULES:
        module.register(router)
    return router


urlpatterns = [
    path("v1/auth/token/", views.TokenObtainView.as_view(), name="auth-token"),
    path("v1/", include(_router().urls)),
    *(path("v1/", include(module.urlpatterns)) for module in RESOURCE_MODULES if hasattr(module, "urlpatterns")),
    path("schema/", views.SchemaView.as_view(), name="schema"),
    path("docs/", views.docs_view, name="docs"),
]
