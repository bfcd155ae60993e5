"""Signing in: the company's OpenID Connect provider, and a local password only where enabled."""

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.http import HttpResponseNotAllowed

from apps.edge.services import sign_in_return_origin


class SignInView(LoginView):
    """The sign-in page: a button to the IdP (mozilla-django-oidc's ``oidc_authentication_init``,
    coming back to ``next``), and the password form when ``POLICYHUB_LOCAL_LOGIN`` is on."""

    template_name = "ui/sign_in.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not settings.POLICYHUB_LOCAL_LOGIN:
            return HttpResponseNotAllowed(["GET"], "Password sign-in is off: sign in with your identity provider.")
        return super().post(request, *args, **kwargs)

    def render_to_response(self, context, **response_kwargs):
        response = super().render_to_response(context, **response_kwargs)
        # signing in on the way to a gateway: the form's redirects end at that gateway's callback
        if origin := sign_in_return_origin(self.get_redirect_url()):
            response._csp_update = {"form-action": [origin]}
        return response

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "local_login": settings.POLICYHUB_LOCAL_LOGIN,
            "provider_name": settings.POLICYHUB_OIDC_PROVIDER_NAME,
            "provider_configured": bool(settings.OIDC_OP_AUTHORIZATION_ENDPOINT),
        }
