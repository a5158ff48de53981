from django.urls import path

from controlplane.oncall import views

app_name = "oncall"

urlpatterns = [
    path("", views.index, name="index"),
    path("feeds/<str:export_key>.ics", views.export, name="export"),
    path("<slug:slug>/", views.detail, name="detail"),
]
