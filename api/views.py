"""The API's own endpoints: tokens, the schema and its documentation."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import mixins, parsers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from api import selectors, serializers, services
from api.models import ApiToken
from api.permissions import IsAuthenticated
from api.throttling import TokenObtainThrottle
from api.viewsets import ApiView, ApiViewMixin, ApiViewSet

TOKEN_EXAMPLE = {
    "id": 7,
    "name": "Web shop",
    "prefix": "cnc_Xq3vT9aB",
    "created_at": "2026-03-02T09:30:00Z",
    "expires_at": "2027-03-02T09:30:00Z",
    "last_used_at": None,
    "revoked_at": None,
    "is_active": True,
}


class TokenObtainView(ApiView):
    """A token for a username and password (throttled; django-axes locks out repeated failures)."""

    authentication_classes = []  # credentials are in the body; no session, so no CSRF to check
    permission_classes = [AllowAny]
    throttle_classes = [TokenObtainThrottle]
    parser_classes = [parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser]
    # The response holds the key: it must not be stored to be replayed.
    idempotent_posts = False
    # A wrong password is recorded by django-axes, and must outlive the refusal.
    atomic_writes = False

    @extend_schema(
        operation_id="auth_token_create",
        summary="Get a token for a username and password",
        description="Returns a new token's key once; Concord stores only its digest. Send it as "
        "`Authorization: Bearer <key>`. Repeated wrong passwords lock the username out from your address.",
        request=serializers.TokenRequestSerializer,
        responses={201: serializers.NewTokenSerializer},
        auth=[],
        extensions={"x-idempotent": False},
        examples=[
            OpenApiExample(
                "Request",
                value={"username": "ar.clerk", "password": "correct horse battery", "name": "Web shop"},
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={"key": "cnc_Xq3vT9aB…", "token": TOKEN_EXAMPLE},
                response_only=True,
                status_codes=["201"],
            ),
        ],
        tags=["auth"],
    )
    def post(self, request):
        data = serializers.TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        days = data.validated_data.get("expires_in_days")
        token, key = services.create_token_from_credentials(
            request=request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
            name=data.validated_data["name"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        body = {"key": key, "token": serializers.TokenSerializer(token).data}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


@extend_schema_view(
    list=extend_schema(
        summary="List your tokens",
        description="Your own tokens, newest first, with when each was last used. Keys are never shown again.",
        examples=[OpenApiExample("Tokens", value=TOKEN_EXAMPLE, response_only=True)],
    ),
    destroy=extend_schema(
        summary="Revoke one of your tokens",
        description="The token stops working at once. Revoking a revoked token changes nothing.",
        responses={204: None},
    ),
)
@extend_schema(tags=["auth"])
class TokenViewSet(mixins.ListModelMixin, ApiViewSet):
    """A person's own tokens; anyone's may see and revoke their own only."""

    serializer_class = serializers.TokenSerializer
    customer_field = ""
    required_permissions = {"list": [], "destroy": []}
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]
    filter_backends = []
    lookup_url_kwarg = "token_pk"
    lookup_value_regex = r"\d+"
    queryset = ApiToken.objects.none()  # for the schema's types; get_queryset is the rule

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.tokens_of(user=self.request.user)

    def destroy(self, request, token_pk=None):
        services.revoke_token(actor=request.user, token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchemaView(ApiViewMixin, SpectacularAPIView):
    """The OpenAPI 3 schema, for signed-in people and tokens."""

    permission_classes = [IsAuthenticated]

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DocsView(SpectacularSwaggerView):
    permission_classes = [IsAuthenticated]


# Swagger UI from drf-spectacular-sidecar's files (served by whitenoise, no CDN); the browser sees
# it after logging in, and reads the schema with its session.
docs_view = login_required(DocsView.as_view(url_name="api:schema"))
