"""A person's profile page: who they are, and their API tokens (made, listed, revoked)."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from api import selectors, services
from api.forms import NewTokenForm
from crm.roles import roles_of


def _render(request, form, new_key: str = "", status: int = 200):
    return render(
        request,
        "api/profile.html",
        {
            "tokens": selectors.tokens_of(user=request.user),
            "roles": sorted(role.label for role in roles_of(request.user)),
            "form": form,
            "new_key": new_key,
            "now": timezone.now(),
        },
        status=status,
    )


@login_required
@never_cache
def profile(request):
    return _render(request, NewTokenForm())


@login_required
@never_cache
@require_POST
def create_token(request):
    """Make a token and show its key on this one response: it is stored nowhere (not even in the
    session's messages), so it cannot be shown again."""
    form = NewTokenForm(request.POST)
    if not form.is_valid():
        return _render(request, form, status=422)
    days = form.cleaned_data["expires_in_days"]
    try:
        _token, key = services.create_token(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
    except ValidationError as error:
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return _render(request, form, status=422)
    return _render(request, NewTokenForm(), new_key=key, status=201)


@login_required
@require_POST
def revoke_token(request, token_pk):
    token = selectors.token_of_or_404(user=request.user, pk=token_pk)
    services.revoke_token(actor=request.user, token=token)
    messages.success(request, f"Token “{token.name}” revoked: programs using it are refused from now on.")
    return redirect("profile:index")
