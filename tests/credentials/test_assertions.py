"""The identity-assertion format and its reference verifier: exactly what upstreams implement."""

import hashlib
import hmac
import secrets
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.credentials.assertions import (
    BOUND_HEADERS,
    AssertionRejected,
    assertion_key_bytes,
    assertion_key_derive,
    assertion_key_text,
    assertion_kid,
    assertion_message,
    assertion_sign,
    assertion_verify,
    canonical_host,
)
from apps.gateways.renderers.base import IDENTITY_HEADERS
from apps.policies.decide import normalize_request_host

ROOT = "policyhub-test-vector-root"
KID = "ia-1900000000-0123456789abcdef"  # not_after 2030-03-17
NOW = 1_800_000_000
HEADERS = {
    "X-Policyhub-Subject": "okta:00u1",
    "X-Policyhub-Username": "ann",
    "X-Policyhub-Email": "ann@example.test",
    "X-Policyhub-Display-Name": "Ann Example",
    "X-Policyhub-Roles": "dev,ops",
}
REQUEST = {"host": "app.example.test", "method": "GET", "path": "/api/items", "identity_headers": HEADERS}


def _signed(root=ROOT, kid=KID, ts=NOW, **request) -> str:
    key = assertion_key_derive(root_secret=root, kid=kid)
    return assertion_sign(key=key, kid=kid, ts=ts, **{**REQUEST, **request})


def _verify(header: str, root=ROOT, now=NOW, **request):
    return assertion_verify(header=header, root_secret=root, now=now, **{**REQUEST, **request})


def _rejected(header: str, **arguments) -> str:
    with pytest.raises(AssertionRejected) as raised:
        _verify(header, **arguments)
    return raised.value.code


def test_the_readme_test_vector():
    key = assertion_key_derive(root_secret=ROOT, kid=KID)
    assert key.hex() == "a74d5e54b866245776c4c96c92292fa40862982a542cdff10921c429c22a3279"
    headers = {"X-Policyhub-Subject": "okta:00u1", "X-Policyhub-Roles": "dev,ops"}
    arguments = {"kid": KID, "ts": 1_800_000_000, "host": "App.Example.test:443", "method": "get",
                 "path": "/api/items?x=1", "identity_headers": headers}  # fmt: skip
    assert assertion_message(**arguments) == (
        b"v1\nia-1900000000-0123456789abcdef\n1800000000\napp.example.test\nGET\n/api/items\nokta:00u1\n\n\n\ndev,ops"
    )
    assert assertion_sign(key=key, **arguments) == (
        "v1;kid=ia-1900000000-0123456789abcdef;ts=1800000000;sig=3aotPnqdS1w0hMV0kC-qchKwhd2FxyAx1YduFwT54o8"
    )


def test_the_key_is_rfc_5869_hkdf_sha256_with_no_salt_and_the_kid_in_the_info():
    # restated with nothing but HMAC, as an upstream without an HKDF library would write it
    pseudo_random_key = hmac.new(b"\0" * 32, ROOT.encode(), hashlib.sha256).digest()
    info = b"policyhub identity assertion v1|" + KID.encode()
    expected = hmac.new(pseudo_random_key, info + b"\x01", hashlib.sha256).digest()
    assert assertion_key_derive(root_secret=ROOT, kid=KID) == expected
    assert assertion_key_derive(root_secret=ROOT, kid=KID.replace("ab", "ac")) != expected


def test_a_valid_assertion_gives_the_identity_it_vouches_for():
    verified = _verify(_signed())
    assert (verified.kid, verified.issued_at) == (KID, NOW)
    assert (verified.subject, verified.roles) == ("okta:00u1", ("dev", "ops"))
    assert verified.headers == HEADERS


def test_what_the_upstream_receives_may_differ_in_spelling_only():
    header = _signed()
    received = {name.lower(): f" {value}\t" for name, value in HEADERS.items()} | {"x-other": "y"}
    verified = _verify(header, host="APP.Example.Test.:8443", method="get", path="/api/items?page=2",
                       identity_headers=received)  # fmt: skip
    assert verified.subject == "okta:00u1"


def test_a_header_the_rule_does_not_forward_is_bound_as_absent():
    only_subject = {"X-Policyhub-Subject": "okta:00u1"}
    header = _signed(identity_headers=only_subject)
    assert _verify(header, identity_headers=only_subject).headers == only_subject
    assert _rejected(header, identity_headers={**only_subject, "X-Policyhub-Roles": "admin"}) == "bad-signature"
    assert _verify(_signed(identity_headers={}), identity_headers={}).subject == ""


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "V1;kid=ia-1900000000-0123456789abcdef", "v1",
     "v1;kid=ia-1900000000-0123456789abcdef;ts=1800000000",
     "v1;kid=edge-2026-ab;ts=1800000000;sig=" + "A" * 43, "v1;kid=ia-1900000000-0123456789ABCDEF;ts=1;sig=" + "A" * 43,
     "v1;kid=ia-1900000000-0123456789abcdef;ts=-5;sig=" + "A" * 43,
     "v1;kid=ia-1900000000-0123456789abcdef;ts=1800000000;sig=" + "A" * 44,
     "v1;kid=ia-1900000000-0123456789abcdef;ts=1800000000;sig=" + "A" * 42 + "=",
     "v1;ts=1800000000;kid=ia-1900000000-0123456789abcdef;sig=" + "A" * 43,
     "v1;kid=ia-1900000000-0123456789abcdef;ts=1800000000;sig=" + "A" * 43 + ";x=1"],
)  # fmt: skip
def test_anything_but_the_exact_format_is_malformed(header):
    assert _rejected(header) == "malformed"


@pytest.mark.parametrize("version", ["v2", "v0", "v10"])
def test_other_versions_are_refused_as_unknown(version):
    assert _rejected(_signed().replace("v1;", f"{version};", 1)) == "unknown-version"


def test_a_key_past_its_not_after_is_refused_without_asking_anyone():
    not_after = datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=1)
    kid = assertion_kid(not_after=not_after)
    assert kid.startswith(f"ia-{NOW - 1}-")
    assert _rejected(_signed(kid=kid)) == "key-expired"
    kid = assertion_kid(not_after=datetime.fromtimestamp(NOW + 1, UTC))
    assert _verify(_signed(kid=kid)).kid == kid


@pytest.mark.parametrize(("skew", "code"), [(-61, "stale"), (-60, None), (0, None), (60, None), (61, "stale")])
def test_the_timestamp_must_be_within_max_age_of_now(skew, code):
    header = _signed(ts=NOW + skew)
    if code is None:
        assert _verify(header).issued_at == NOW + skew
    else:
        assert _rejected(header) == code


def test_an_upstream_may_choose_its_window():
    assert _verify(_signed(ts=NOW - 300), max_age_seconds=300).issued_at == NOW - 300
    assert _rejected(_signed(ts=NOW - 10), max_age_seconds=5) == "stale"


@pytest.mark.parametrize(
    "tampered",
    [{"host": "other.example.test"}, {"method": "POST"}, {"path": "/api/items/x"}, {"path": "/api/Items"},
     *({"identity_headers": {**HEADERS, name: "mallory"}} for name in BOUND_HEADERS),
     *({"identity_headers": {k: v for k, v in HEADERS.items() if k != name}} for name in BOUND_HEADERS)],
)  # fmt: skip
def test_every_bound_field_is_bound(tampered):
    assert _rejected(_signed(), **tampered) == "bad-signature"


def test_the_header_itself_cannot_be_edited():
    header = _signed()
    other_kid = assertion_kid(not_after=datetime.fromtimestamp(NOW + 3600, UTC))
    assert _rejected(header.replace(KID, other_kid)) == "bad-signature"  # the kid picks the key
    assert _rejected(header.replace(f"ts={NOW}", f"ts={NOW + 1}")) == "bad-signature"
    signature = header.rpartition("=")[2]
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert _rejected(header.replace(signature, flipped)) == "bad-signature"


def test_only_the_gateways_root_verifies_and_during_a_root_change_either_does():
    header = _signed()
    assert _rejected(header, root="someone-elses-root") == "bad-signature"
    assert _rejected(header, root=()) == "bad-signature"
    assert _verify(header, root=("the-new-root", ROOT)).kid == KID
    assert _verify(_signed(root="the-new-root"), root=("the-new-root", ROOT)).kid == KID


def test_a_stored_key_round_trips_and_nothing_else_passes_for_one():
    key = assertion_key_derive(root_secret=ROOT, kid=KID)
    text = assertion_key_text(key)
    assert len(text) == 43 and assertion_key_bytes(text) == key
    for wrong in (text[:-1], text + "A", text + "=", "", "%" * 43):
        with pytest.raises(ValueError, match="an identity-assertion key is 32 bytes"):
            assertion_key_bytes(wrong)


def test_the_bound_headers_are_the_identity_headers_and_the_host_rule_is_decides():
    assert set(BOUND_HEADERS) == {name for name, _claim in IDENTITY_HEADERS.values()}
    for host in ["App.Example.TEST:443", "app.example.test..", " a.b ", "[::1]:80", "[::1", "", "x:y:z"]:
        assert canonical_host(host) == normalize_request_host(host)


header_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
path_text = st.text(alphabet=string.ascii_letters + string.digits + "/-._~%!$&'()*+,;=:@", max_size=40)
requests = st.fixed_dictionaries(
    {
        "host": st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True),
        "method": st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        "path": path_text.map(lambda text: "/" + text),
        "identity_headers": st.dictionaries(st.sampled_from(BOUND_HEADERS), header_text.map(str.strip)),
    }
)
fields = st.sampled_from(["host", "method", "path", *BOUND_HEADERS])


@given(request=requests, field=fields, replacement=header_text, ts=st.integers(NOW - 60, NOW + 60))
def test_property_an_assertion_verifies_for_its_request_and_for_no_other(request, field, replacement, ts):
    root = secrets.token_urlsafe(32)
    header = _signed(root=root, ts=ts, **request)
    verified = _verify(header, root=root, **request)
    assert verified.headers == {name: value for name, value in request["identity_headers"].items() if value}

    changed = {**request, "identity_headers": dict(request["identity_headers"])}
    if field in BOUND_HEADERS:
        changed["identity_headers"][field] = replacement.strip()
    elif field == "path":
        changed["path"] = "/" + "".join(c for c in replacement if c in string.ascii_letters)
    elif field == "method":
        changed["method"] = replacement.strip().upper() or "TRACE"
    else:
        changed["host"] = "".join(c for c in replacement.lower() if c in string.ascii_lowercase) or "x"
    if assertion_message(kid=KID, ts=ts, **changed) == assertion_message(kid=KID, ts=ts, **request):
        return  # the replacement spells the same request
    with pytest.raises(AssertionRejected) as raised:
        _verify(header, root=root, **changed)
    assert raised.value.code == "bad-signature"
