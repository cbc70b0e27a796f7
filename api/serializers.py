"""The API's own representations: tokens."""

from rest_framework import serializers

from api.models import ApiToken


class TokenSerializer(serializers.ModelSerializer):
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = fields

    def get_is_active(self, token) -> bool:
        from django.utils import timezone

        return token.revoked_at is None and (token.expires_at is None or token.expires_at > timezone.now())


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = serializers.CharField(max_length=100, required=False, default="API token")
    expires_in_days = serializers.IntegerField(
        min_value=1, required=False, help_text="Days until the token expires (at most API_TOKEN_MAX_DAYS)."
    )


class NewTokenSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The key, shown this once: Concord keeps only a digest of it.")
    token = TokenSerializer()
