"""Model fields that normalize and validate at the boundary, and the encrypted secret field."""

from django.core.exceptions import ValidationError
from django.db import models

from apps.core import validators
from apps.core.crypto import Secret, decrypt, encrypt


class NormalizedCharField(models.CharField):
    """A CharField whose ``clean()`` (hence ``full_clean()``) stores the normalized form."""

    normalizer = staticmethod(str)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        return self.normalizer(value)


class HostnameField(NormalizedCharField):
    def __init__(self, *args, allow_wildcard: bool = False, **kwargs):
        self.allow_wildcard = allow_wildcard
        kwargs.setdefault("max_length", 255)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.allow_wildcard:
            kwargs["allow_wildcard"] = True
        return name, path, args, kwargs

    def normalizer(self, value):
        return validators.normalize_hostname(value, allow_wildcard=self.allow_wildcard)


class PathPrefixField(NormalizedCharField):
    normalizer = staticmethod(validators.normalize_path_prefix)


class UpstreamURLField(NormalizedCharField):
    normalizer = staticmethod(validators.normalize_upstream_url)


class SlugField(NormalizedCharField):
    """Lower-case ``[a-z0-9-]`` identifiers that are safe in proxy configs and token claims."""

    normalizer = staticmethod(validators.normalize_role_slug)


class ListenAddressField(NormalizedCharField):
    normalizer = staticmethod(validators.normalize_listen_address)


class DeployDirectoryField(NormalizedCharField):
    normalizer = staticmethod(validators.normalize_deploy_directory)


class EntityRefField(NormalizedCharField):
    normalizer = staticmethod(validators.normalize_entity_ref)


class NormalizedListField(models.JSONField):
    """A JSON list of strings, each normalized; stored de-duplicated and sorted."""

    item_normalizer = staticmethod(str)
    item_label = "values"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value is None:
            return []
        return validators.normalize_list(value, self.item_normalizer, label=self.item_label)


class CIDRListField(NormalizedListField):
    item_normalizer = staticmethod(validators.normalize_cidr)
    item_label = "CIDR networks"


class MethodListField(NormalizedListField):
    item_normalizer = staticmethod(validators.normalize_method)
    item_label = "HTTP methods"


class HostnameListField(NormalizedListField):
    item_normalizer = staticmethod(validators.normalize_served_hostname)
    item_label = "host names"


class EncryptedTextField(models.TextField):
    """Ciphertext in the database, ``Secret`` in Python. Never part of forms, audit or APIs as plaintext."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return Secret("")
        return Secret(decrypt(value))

    def to_python(self, value):
        if isinstance(value, Secret):
            return value
        return Secret(value or "")

    def get_prep_value(self, value):
        plaintext = value.reveal() if isinstance(value, Secret) else (value or "")
        return encrypt(plaintext) if plaintext else ""

    def validate(self, value, model_instance):
        if not self.blank and not value:
            raise ValidationError(self.error_messages["blank"], code="blank")

    def formfield(self, **kwargs):
        from django import forms

        return forms.CharField(
            required=False,
            widget=forms.PasswordInput(render_value=False),
            help_text="Stored encrypted and never shown again; leave blank to keep the current value.",
        )

    def save_form_data(self, instance, data):
        if data:  # a blank form value means "keep what is stored"
            setattr(instance, self.attname, Secret(data))

    def value_to_string(self, obj):
        # Serialization (dumpdata, audit) must never see the plaintext.
        return "********" if self.value_from_object(obj) else ""
