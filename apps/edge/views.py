"""The browser's stops at policyhub between a gateway and its callback: thin views over
``apps.edge.services``."""

from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from apps.core.actors import Actor
from apps.edge.services import AccessDenied, SignInRefused, browser_sign_in, browser_sign_out
from apps.ui.oidc import provider_sign_out_url


def _sign_in_first(request):
    """Straight to the identity provider when it is the only way in, else the sign-in page; back here."""
    if settings.OIDC_OP_AUTHORIZATION_ENDPOINT and not settings.POLICYHUB_LOCAL_LOGIN:
        return HttpResponseRedirect(f"{reverse('oidc_authentication_init')}?next={quote(request.get_full_path())}")
    return redirect_to_login(request.get_full_path())


@method_decorator(never_cache, name="dispatch")
class EdgeSignInView(View):
    """``GET /edge/signin?gateway=…&rd=…&state=…``: on to the gateway's callback with a sign-in token,
    or a page saying why not (403 access denied names what is missing; 400 for a bad request)."""

    def get(self, request):
        if not request.user.is_authenticated:
            return _sign_in_first(request)
        gateway = request.GET.get("gateway", "")
        try:
            grant = browser_sign_in(
                user=request.user, gateway_name=gateway, return_url=request.GET.get("rd", ""),
                state=request.GET.get("state", ""), actor=Actor.from_request(request),
            )  # fmt: skip
        except AccessDenied as denied:
            context = {
                "denied": denied, "reasons": denied.decision.reasons, "roles": sorted(denied.decision.roles),
                "gateway": gateway,
            }  # fmt: skip
            return render(request, "edge/denied.html", context, status=denied.status)
        except SignInRefused as refused:
            return render(request, "edge/refused.html", {"message": str(refused)}, status=refused.status)
        return HttpResponseRedirect(grant.callback_url)


@method_decorator(never_cache, name="dispatch")
class EdgeSignOutView(View):
    """``GET /edge/signout?gateway=…`` (where a gateway's sign-out sends the browser): ends the
    policyhub session, and the provider's where it has an end-session endpoint. A GET, since it comes
    from a gateway's redirect: the worst a forged one does is sign someone out."""

    def get(self, request):
        if not request.user.is_authenticated:
            return render(request, "edge/signed_out.html")
        browser_sign_out(
            user=request.user, gateway_name=request.GET.get("gateway", ""), actor=Actor.from_request(request)
        )
        next_url = provider_sign_out_url(request, back=reverse("edge:signed_out"))
        logout(request)
        return HttpResponseRedirect(next_url)


class EdgeSignedOutView(View):
    def get(self, request):
        return render(request, "edge/signed_out.html")
