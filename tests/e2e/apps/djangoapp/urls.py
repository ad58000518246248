from django.urls import path

from . import views

urlpatterns = [
    path("notes/<int:note_id>", views.read),
    path("notes", views.write),
    path("notes/<int:note_id>/hit", views.hit),
    path("async/notes/<int:note_id>", views.aread),
    path("async/notes", views.awrite),
]
