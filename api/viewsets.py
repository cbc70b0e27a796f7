"""The base every API view and viewset is built on. It gives them:

- one transaction per unsafe request (POST, PUT, PATCH, DELETE), rolled back when the answer is
  an error, so a request is all or nothing;
- `Idempotency-Key` on every POST (api.idempotency);
- an `ETag` on every detail response and on the result of a write, and `If-Match` honoured on
  PUT and PATCH (412 when stale);
- problem details for every error (api.problems, through DRF's exception handler);
- querysets narrowed by crm.access (`customer_field`, see api.permissions.visible_to).

Writes go through the app's services: a viewset validates input with a serializer
(`parse_input`) and calls the service with the acting user; it never calls `serializer.save()`.
"""

from __future__ import annotations

import hashlib
import json

from django.db import transaction
from django.urls import reverse
from rest_framework import status, viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import idempotency, permissions
from api.problems import PROBLEM_CONTENT_TYPE, PreconditionFailed
from crm.models import Customer

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def etag_of(representation) -> str:
    """A strong ETag: a digest of the resource as the API shows it, so it changes whenever
    anything a client could have read changes."""
    canonical = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


class ApiViewMixin:
    """Transactions, idempotency and replay for any APIView (viewsets get it via ApiViewSet)."""

    # False only where a stored response would hold a secret (the token endpoint).
    idempotent_posts = True
    # False where a refusal must still leave a trace (the token endpoint: django-axes counts
    # failed passwords in the database, which a rollback would forget).
    atomic_writes = True

    def dispatch(self, request, *args, **kwargs):
        if request.method not in UNSAFE_METHODS or not self.atomic_writes:
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            self._idempotency_record = None
            response = super().dispatch(request, *args, **kwargs)
            if self._idempotency_record is not None:
                idempotency.complete(self._idempotency_record, response)
            elif response.status_code >= 400:
                transaction.set_rollback(True)
        return response

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        key = request.headers.get(idempotency.HEADER)
        if request.method == "POST" and key is not None and self.idempotent_posts:
            self._idempotency_record = idempotency.begin(request, key)

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(response, "exception", False) and not isinstance(response.accepted_renderer, JSONRenderer):
            # A problem is JSON whatever the view renders otherwise (the schema's YAML).
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = PROBLEM_CONTENT_TYPE
        return response


class ApiView(ApiViewMixin, APIView):
    pass


class ApiViewSet(ApiViewMixin, viewsets.GenericViewSet):
    """A resource. Declare:

    - `queryset` (or `base_queryset()`), `serializer_class` (what the resource reads like);
    - `customer_field`: the path to the row's customer ("customer"), None for customers, "" for
      rows of no customer;
    - `required_permissions`: {action: [perm, …]} where the default (the model's view/add/change/
      delete permission by method) is not the rule;
    - `check_object_access(request, obj) -> bool` for object rules of writes (403 when False).
    """

    customer_field: str | None = "customer"
    required_permissions: dict[str, list[str]] = {}
    # Actions whose responses describe one resource: they carry its ETag.
    etag_actions = ("retrieve", "create", "update", "partial_update")

    def base_queryset(self):
        return super().get_queryset()

    def get_queryset(self):
        return permissions.visible_to(self.request.user, self.base_queryset(), customer_field=self.customer_field)

    def representation(self, instance) -> dict:
        return self.get_serializer(instance).data

    def parse_input(self, serializer_class, *, partial: bool = False, instance=None) -> dict:
        """The request body, validated by `serializer_class`; a 422 problem when it is not valid."""
        serializer = serializer_class(
            instance=instance, data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def get_object_for_update(self):
        """The object a PUT/PATCH/DELETE changes, locked, and checked against `If-Match`.

        The customer's row is locked first (by primary key, as the services do), so this lock and
        the service's are taken in the same order."""
        instance = self.get_object()
        customer_pk = instance.pk if isinstance(instance, Customer) else self._customer_pk(instance)
        if customer_pk is not None:
            Customer.objects.select_for_update().filter(pk=customer_pk).get()
        instance = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
        # Re-read through the viewset's queryset so the representation has its annotations.
        instance = self.get_queryset().get(pk=instance.pk)
        self.check_if_match(instance)
        return instance

    def _customer_pk(self, instance):
        if not self.customer_field:
            return None
        target = instance
        for part in self.customer_field.split("__"):
            target = getattr(target, part)
        return target.pk

    def check_if_match(self, instance) -> None:
        header = self.request.headers.get("If-Match")
        if header is None:
            return  # optional: a client that sends none accepts last-write-wins
        if header.strip() == "*":
            return
        if etag_of(self.representation(instance)) not in _etags(header):
            raise PreconditionFailed()

    def created(self, instance) -> Response:
        """201 with the new resource, its Location and (from finalize_response) its ETag."""
        kwarg = self.lookup_url_kwarg or self.lookup_field
        location = reverse(f"api:{self.basename}-detail", kwargs={kwarg: instance.pk})
        return Response(self.representation(instance), status=status.HTTP_201_CREATED, headers={"Location": location})

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if (
            isinstance(response, Response)
            and not getattr(response, "exception", False)
            and response.status_code in (200, 201)
            and getattr(self, "action", None) in self.etag_actions
            and isinstance(response.data, dict)
        ):
            response["ETag"] = etag_of(response.data)
        return response
