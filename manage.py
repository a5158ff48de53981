#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reads the settings, so errors surface here
    except ImproperlyConfigured as error:
        # One line naming the variable, not a traceback through Django's error pages.
        sys.exit(f"ImproperlyConfigured: {error} (see the settings table in README.md)")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
