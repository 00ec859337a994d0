"""Django applications of the registry: the domain, and the admin on the registry's own site."""

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        # Load the Celery app whenever Django is set up, so shared tasks bind to its settings;
        # register the tasks in every process, not only in workers (which discover them): the
        # change sequence enqueues them by name, and without a broker they run inline; and
        # register the deploy checks.
        from registry import celery, checks, tasks  # noqa: F401


class RempartAdminConfig(AdminConfig):
    """The admin, with the registry's site (registry.admin.site) as default.

    Listed in INSTALLED_APPS instead of ``django.contrib.admin``, so that every
    ``admin.register`` in the project registers on the site that requires two-factor
    authentication and a staff role.
    """

    default_site = "registry.admin.site.RempartAdminSite"

    def ready(self) -> None:
        super().ready()
        # Each area of the admin registers its pages on the site set up by super().ready().
        from registry.admin import cases, distribution, moderation, partners  # noqa: F401

        # The reviewers group and its permissions exist in every database, kept by code.
        from registry.admin.site import reviewers_group_sync

        post_migrate.connect(reviewers_group_sync, dispatch_uid="rempart-reviewers-group")
