"""Django's admin app, set up with the control plane's admin site."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    # Imported when admin.site is first used, after the apps are ready: the site's
    # module reaches models (content types) that cannot load while apps populate.
    default_site = "controlplane.admin_site.ControlPlaneAdminSite"
