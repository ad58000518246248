from django.urls import path

from . import views

urlpatterns = [
    path("v1/accounts/<str:raw_id>/summary", views.summary),
    path("healthz", views.healthz),
]
