#!/usr/bin/env python3
"""Interop with OAuth/JWT clients we did not write (run by tests/e2e/interop.rs).

- requests-oauthlib (BackendApplicationClient + OAuth2Session.fetch_token)
  gets a token from the discovered token endpoint with client_secret_basic
  and with client_secret_post (RFC 6749 section 2.3.1, 4.4);
- PyJWT verifies ES256 and RS256 tokens against the JWKS through
  PyJWKClient, with iss, aud, exp and the RFC 9068 typ checked, and
  refuses a token whose signature was altered.

Usage: interop.py ISSUER_URL AUDIENCE SECRET ES_CLIENT RS_CLIENT
Prints one JSON line per check; exits non-zero on the first failure.
"""
import json
import os
import sys

# The test issuer listens on plain http on loopback; oauthlib refuses
# http unless told otherwise.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

import jwt  # PyJWT
import requests
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

TIMEOUT = 10


def report(**fields):
    print(json.dumps(fields), flush=True)


def fetch_token(token_endpoint, client_id, secret, method):
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id, scope=["read", "write"]))
    if method == "client_secret_basic":
        # No include_client_id: requests-oauthlib sends HTTP Basic.
        token = session.fetch_token(token_url=token_endpoint, client_secret=secret, timeout=TIMEOUT)
    elif method == "client_secret_post":
        token = session.fetch_token(
            token_url=token_endpoint, client_secret=secret, include_client_id=True, timeout=TIMEOUT
        )
    else:
        raise ValueError(method)
    assert token["token_type"].lower() == "bearer", token
    assert token["expires_in"] > 0, token
    assert sorted(token["scope"]) == ["read", "write"], token
    return token["access_token"]


def verify(jwks_client, token, issuer, audience, alg):
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg, header
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt"), header
    key = jwks_client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[alg],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["sub"] == claims["client_id"], claims
    return header["kid"], claims


def main():
    issuer, audience, secret, es_client, rs_client = sys.argv[1:6]
    report(pyjwt=jwt.__version__, requests=requests.__version__)

    meta = requests.get(issuer + "/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    meta.raise_for_status()
    meta = meta.json()
    assert meta["issuer"] == issuer, meta
    for method in ("client_secret_basic", "client_secret_post"):
        assert method in meta["token_endpoint_auth_methods_supported"], meta
    token_endpoint, jwks_uri = meta["token_endpoint"], meta["jwks_uri"]
    report(check="discovery", token_endpoint=token_endpoint, jwks_uri=jwks_uri)

    jwks_client = jwt.PyJWKClient(jwks_uri, cache_keys=True, timeout=TIMEOUT)
    for client_id, alg in ((es_client, "ES256"), (rs_client, "RS256")):
        for method in ("client_secret_basic", "client_secret_post"):
            token = fetch_token(token_endpoint, client_id, secret, method)
            kid, claims = verify(jwks_client, token, issuer, audience, alg)
            report(check="token", client=client_id, auth=method, alg=alg, kid=kid, sub=claims["sub"])

            head, sig = token.rsplit(".", 1)
            forged = head + "." + ("B" if sig[0] == "A" else "A") + sig[1:]
            try:
                verify(jwks_client, forged, issuer, audience, alg)
            except jwt.InvalidSignatureError:
                pass
            else:
                raise AssertionError("PyJWT accepted an altered signature")

    # A wrong secret is refused by the endpoint, as requests-oauthlib sees it.
    try:
        fetch_token(token_endpoint, es_client, secret + "x", "client_secret_basic")
    except Exception as e:  # oauthlib raises InvalidClientError
        assert "invalid_client" in repr(e) or "InvalidClient" in type(e).__name__, repr(e)
    else:
        raise AssertionError("a wrong secret got a token")
    report(check="wrong_secret_refused")
    report(result="ok")


if __name__ == "__main__":
    main()
