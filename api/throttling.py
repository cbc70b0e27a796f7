"""Request rates per person and per token (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])."""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiToken


class RateFromSettings(SimpleRateThrottle):
    """Reads its rate when a request comes, not when DRF is imported, so a changed setting (an
    override in tests, a reloaded configuration) takes effect."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]


class UserThrottle(RateFromSettings):
    """All of one person's requests, by session or by any of their tokens."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None  # the anonymous are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class TokenThrottle(RateFromSettings):
    """Each token's own requests; session requests are not counted here."""

    scope = "token"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class TokenObtainThrottle(RateFromSettings):
    """Password attempts at the token endpoint, per client address."""

    scope = "token_obtain"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
