"""Admin plumbing: every admin write is validated by the form and recorded in the audit log."""

from django.contrib import admin

from apps.audit.state import instance_state
from apps.core.actors import Actor
from apps.core.services import audit_saved, model_delete


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """For rows only services write (audit events, signing keys, snapshots): browse, never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedModelAdmin(admin.ModelAdmin):
    """Saves and deletes through the audited helpers (the admin view already runs in a transaction)."""

    def save_model(self, request, obj, form, change):
        form.audit_before = instance_state(type(obj).objects.get(pk=obj.pk)) if change else None
        obj.save()

    def save_related(self, request, form, formsets, change):
        # Many-to-many values exist only now, so the audit row is written here, after them.
        super().save_related(request, form, formsets, change)
        audit_saved(actor=Actor.from_request(request), instance=form.instance, before=form.audit_before)

    def delete_model(self, request, obj):
        model_delete(instance=obj, actor=Actor.from_request(request))

    def delete_queryset(self, request, queryset):
        actor = Actor.from_request(request)
        for obj in queryset:
            model_delete(instance=obj, actor=actor)
