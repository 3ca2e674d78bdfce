#!/usr/bin/env python3
"""DPoP nonces (RFC 9449 sections 8 and 9) from a client we did not write
(run by tests/e2e/dpop_nonce.rs).

Proofs are signed with PyJWT over a `cryptography` key. Against two issuer
replicas on one PostgreSQL store with one JWKS_ISSUER_KEK, and an actix
resource server with a nonce policy:

- a client with dpop_nonce = "required" is refused with use_dpop_nonce and
  a DPoP-Nonce header; the retry with the same form and a new proof
  carrying the nonce gets a DPoP token;
- a nonce from replica A is accepted by replica B;
- a client under the global "allowed" gets a token without a nonce, and a
  DPoP-Nonce with it; a proof with iat an hour off is refused without a
  nonce (use_dpop_nonce) and accepted with one;
- the resource server answers 401 DPoP error="use_dpop_nonce" with a
  DPoP-Nonce, accepts the retry and sends a fresh nonce;
- a nonce two steps old is refused as expired (polled, with a deadline).

Usage: dpop_nonce.py HTU TOKEN_URL_A TOKEN_URL_B RESOURCE_URL STRICT_ID ALLOWED_ID SECRET
Prints one JSON line per check; exits non-zero on the first failure.
"""
import base64
import hashlib
import json
import sys
import time
import uuid

import jwt  # PyJWT
import requests
from cryptography.hazmat.primitives.asymmetric import ec

TIMEOUT = 10


def report(**fields):
    print(json.dumps(fields), flush=True)


def fail(check, detail):
    report(check=check, ok=False, detail=detail)
    sys.exit(1)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key):
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")}


def proof(key, htm, htu, nonce=None, iat=None, access_token=None, jti=None):
    claims = {"jti": jti or str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": iat or int(time.time())}
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public_jwk(key)})


def token(url, client_id, secret, dpop_proof):
    return requests.post(
        url,
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        headers={"DPoP": dpop_proof},
        timeout=TIMEOUT,
    )


def expect_use_nonce(check, resp):
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    nonce = resp.headers.get("DPoP-Nonce")
    if resp.status_code != 400 or body.get("error") != "use_dpop_nonce" or not nonce:
        fail(check, f"{resp.status_code} {dict(resp.headers)} {resp.text}")
    report(check=check, ok=True, description=body.get("error_description"))
    return nonce, body


def expect_token(check, resp):
    if resp.status_code != 200 or resp.json().get("token_type") != "DPoP":
        fail(check, f"{resp.status_code} {resp.text}")
    if not resp.headers.get("DPoP-Nonce"):
        fail(check, f"no DPoP-Nonce on success: {dict(resp.headers)}")
    report(check=check, ok=True)
    return resp.json()["access_token"], resp.headers["DPoP-Nonce"]


def main():
    htu, url_a, url_b, resource, strict, allowed, secret = sys.argv[1:8]
    resource_url = resource.rstrip("/") + "/data"
    key = ec.generate_private_key(ec.SECP256R1())

    # The dance at replica A: refused with a nonce; the retry reuses the
    # refused proof's jti (nothing was consumed) and succeeds.
    jti = str(uuid.uuid4())
    first_nonce, _ = expect_use_nonce("first_refused_with_nonce", token(url_a, strict, secret, proof(key, "POST", htu, jti=jti)))
    expect_token("retry_accepted", token(url_a, strict, secret, proof(key, "POST", htu, nonce=first_nonce, jti=jti)))

    # A nonce from replica A at replica B.
    nonce_a, _ = expect_use_nonce("nonce_from_a", token(url_a, strict, secret, proof(key, "POST", htu)))
    access_token, _ = expect_token("replica_b_accepts_a_nonce", token(url_b, strict, secret, proof(key, "POST", htu, nonce=nonce_a)))

    # The global "allowed": no nonce needed, one offered.
    expect_token("global_allowed_without_nonce", token(url_b, allowed, secret, proof(key, "POST", htu)))

    # Clock skew: iat an hour off is asked for a nonce, then accepted with it.
    for label, iat in (("past", int(time.time()) - 3600), ("future", int(time.time()) + 3600)):
        nonce, body = expect_use_nonce(f"iat_hour_{label}_without_nonce", token(url_a, allowed, secret, proof(key, "POST", htu, iat=iat)))
        if "iat" not in body.get("error_description", ""):
            fail(f"iat_hour_{label}_without_nonce", body)
        expect_token(f"iat_hour_{label}_with_nonce", token(url_b, allowed, secret, proof(key, "POST", htu, nonce=nonce, iat=iat)))

    # The resource server: 401 use_dpop_nonce with a nonce, then accepted.
    headers = {"Authorization": f"DPoP {access_token}"}
    resp = requests.get(resource_url, headers={**headers, "DPoP": proof(key, "GET", resource_url, access_token=access_token)}, timeout=TIMEOUT)
    challenge = resp.headers.get("WWW-Authenticate", "")
    rs_nonce = resp.headers.get("DPoP-Nonce")
    if resp.status_code != 401 or not challenge.startswith('DPoP error="use_dpop_nonce"') or not rs_nonce:
        fail("resource_asks_for_nonce", f"{resp.status_code} {dict(resp.headers)} {resp.text}")
    report(check="resource_asks_for_nonce", ok=True, challenge=challenge)
    retry = proof(key, "GET", resource_url, nonce=rs_nonce, access_token=access_token)
    resp = requests.get(resource_url, headers={**headers, "DPoP": retry}, timeout=TIMEOUT)
    if resp.status_code != 200 or not resp.headers.get("DPoP-Nonce"):
        fail("resource_accepts_with_nonce", f"{resp.status_code} {dict(resp.headers)} {resp.text}")
    report(check="resource_accepts_with_nonce", ok=True)

    # Expiry: the first nonce is refused once two steps passed (poll).
    deadline = time.time() + 12
    while True:
        resp = token(url_b, strict, secret, proof(key, "POST", htu, nonce=first_nonce))
        if resp.status_code == 400:
            _, body = expect_use_nonce("expired_nonce_refused", resp)
            if "expired" not in body.get("error_description", ""):
                fail("expired_nonce_refused", body)
            break
        if resp.status_code != 200 or time.time() > deadline:
            fail("expired_nonce_refused", f"{resp.status_code} {resp.text}")
        time.sleep(0.25)
    report(check="done", ok=True)


if __name__ == "__main__":
    main()
