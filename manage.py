#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        # Reads the settings and readies the apps (which check what settings name),
        # so a configuration error surfaces here.
        django.setup()
    except ImproperlyConfigured as error:
        # One line naming the variable, not a traceback through Django's error pages.
        sys.exit(f"ImproperlyConfigured: {error} (see the settings table in README.md)")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
