from django.urls import path

from controlplane.knowledge import views

app_name = "knowledge"

# <path:address> takes anything, slashes and decoded %2F included; `library` decides
# what is an address, so a refused one is a plain 404 like an unknown one.
urlpatterns = [
    path("", views.index, name="index"),
    path("<path:address>/", views.page, name="page"),
]
