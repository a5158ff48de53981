from django.urls import path

from controlplane.slo import views

app_name = "slos"

urlpatterns = [
    path("", views.board, name="board"),
    path("<slug:slug>/", views.detail, name="detail"),
]
