from django.urls import path

from controlplane.jobs import views

app_name = "jobs"

urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/", views.detail, name="detail"),
]
