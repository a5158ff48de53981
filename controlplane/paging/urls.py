from django.urls import path

from controlplane.paging import views

app_name = "paging"

urlpatterns = [
    # A signed one-click link (paging/links.py): under the alert it acts on.
    path("<int:pk>/respond/<str:token>/", views.respond, name="respond"),
]
