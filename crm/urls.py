from django.urls import path

from crm import views

app_name = "crm"

urlpatterns = [
    path("", views.customer_list, name="customer_list"),
    path("<int:pk>/", views.customer_detail, name="customer_detail"),
    path("<int:pk>/activities/", views.log_activity, name="log_activity"),
]
