"""The registry's admin, on its two-factor site (registry.admin.site), one module per area:
cases, distribution, moderation and partners.

The area modules register their pages when the admin application is ready
(registry.apps.RempartAdminConfig), not on importing this package: the site class lives in
it, and Django imports it while setting the default site up, before anything may register.
"""
