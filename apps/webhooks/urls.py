"""/webhooks/<sender>/<slug>: where Space, Okta and Buildkite deliver."""

from django.urls import path

from apps.webhooks.views import webhook_receive

app_name = "webhooks"

urlpatterns = [path("<str:sender>/<str:slug>", webhook_receive, name="receive")]
