"""What every read-only admin page of the registry shares: evidence is shown, never edited.

Nothing is deleted from the admin: erasure goes through the withdrawal service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from registry import roles


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """An admin that shows records and never adds, changes or deletes them; reviewers read."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.is_reviewer(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return roles.is_reviewer(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline[Any, Any]):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
