from django.urls import path

from controlplane.alerting import views

app_name = "alerts"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("<int:pk>/resolve/", views.resolve, name="resolve"),
    path("<int:pk>/reapply/", views.reapply, name="reapply"),
]
