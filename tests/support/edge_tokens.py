"""Checking an edge token the way a third party does: with the key policyhub publishes."""

import jwt


def verify_with_published_key(client, token: str, audience: str) -> dict:
    """Fetch the JWKS, pick the key by kid, verify with the key's own alg; the token's claims."""
    kid = jwt.get_unverified_header(token)["kid"]
    published = {key["kid"]: key for key in client.get("/.well-known/jwks.json").json()["keys"]}
    jwk = jwt.PyJWK(published[kid])
    return jwt.decode(token, jwk.key, algorithms=[published[kid]["alg"]], audience=audience, issuer="policyhub")
