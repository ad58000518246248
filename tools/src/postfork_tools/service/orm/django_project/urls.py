from django.urls import path

from postfork_tools.service.orm.django_project import views

urlpatterns = [
    path("v1/accounts/<str:raw_id>/summary", views.summary),
    path("healthz", views.healthz),
]
