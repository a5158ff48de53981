from django.urls import path

from runbooks import views

app_name = "runbooks"

# <str:slug>, not <slug:slug>: a mistyped slug still reaches the runbook 404 with its
# search box instead of the generic one.
urlpatterns = [
    path("", views.index, name="index"),
    path("<str:slug>/", views.page, name="page"),
    path("<str:slug>/revisions/", views.revisions, name="revisions"),
    path("<str:slug>/revisions/<int:revision_id>/", views.revision, name="revision"),
]
