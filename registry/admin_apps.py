"""The admin application, with the registry's admin site (registry/admin_site.py) as default.

Listed in INSTALLED_APPS instead of ``django.contrib.admin``, so that every ``admin.register``
in the project registers on the site that requires two-factor authentication and a staff role.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class RempartAdminConfig(AdminConfig):
    default_site = "registry.admin_site.RempartAdminSite"

    def ready(self) -> None:
        super().ready()
        # The reviewers group and its permissions exist in every database, kept by code.
        from registry.admin_site import reviewers_group_sync

        post_migrate.connect(reviewers_group_sync, dispatch_uid="rempart-reviewers-group")
