from django.urls import path

from api import profile_views

app_name = "profile"

urlpatterns = [
    path("", profile_views.profile, name="index"),
    path("tokens/", profile_views.create_token, name="create_token"),
    path("tokens/<int:token_pk>/revoke/", profile_views.revoke_token, name="revoke_token"),
]
