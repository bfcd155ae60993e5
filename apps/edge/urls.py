from django.urls import path

from apps.edge.views import EdgeSignedOutView, EdgeSignInView, EdgeSignOutView

app_name = "edge"
urlpatterns = [
    path("signin", EdgeSignInView.as_view(), name="sign_in"),
    path("signout", EdgeSignOutView.as_view(), name="sign_out"),
    path("signed-out", EdgeSignedOutView.as_view(), name="signed_out"),
]
