#!/usr/bin/env python3
"""DPoP (RFC 9449) from a client we did not write (run by tests/e2e/dpop.rs).

Proofs are signed with PyJWT over keys made by `cryptography`; thumbprints
(RFC 7638) and `ath` are computed here, independently of the Rust code.

- the issuer binds a token to an ES256 and to an RS256 proof key
  (token_type DPoP, cnf.jkt = the key's thumbprint);
- the actix resource server accepts the token with the DPoP scheme and a
  fresh proof, and refuses a replayed proof, a proof by another key, a
  proof for another URL, and the token sent as Bearer, with RFC 9449 §7.1
  challenges;
- a client with dpop = "required" gets invalid_dpop_proof without a proof.

Usage: dpop.py TOKEN_ENDPOINT RESOURCE_URL CLIENT_ID SECRET
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa

TIMEOUT = 10


def report(**fields):
    print(json.dumps(fields), flush=True)


def fail(check, detail):
    report(check=check, ok=False, detail=detail)
    sys.exit(1)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key, alg):
    algo = jwt.algorithms.ECAlgorithm if alg == "ES256" else jwt.algorithms.RSAAlgorithm
    jwk = json.loads(algo.to_jwk(key.public_key()))
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}


def thumbprint(jwk):
    """RFC 7638 section 3: the required members, sorted, no whitespace."""
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def proof(key, alg, htm, htu, access_token=None):
    claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
    if access_token is not None:
        claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
    headers = {"typ": "dpop+jwt", "jwk": public_jwk(key, alg)}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def get_token(token_endpoint, client_id, secret, dpop_proof):
    headers = {"DPoP": dpop_proof} if dpop_proof else {}
    return requests.post(
        token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        headers=headers,
        timeout=TIMEOUT,
    )


def call(url, scheme, token, dpop_proof=None):
    headers = {"Authorization": f"{scheme} {token}"}
    if dpop_proof:
        headers["DPoP"] = dpop_proof
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def expect_refused(check, resp, code):
    challenge = resp.headers.get("WWW-Authenticate", "")
    if resp.status_code != 401 or not challenge.startswith(f'DPoP error="{code}"'):
        fail(check, f"{resp.status_code} {challenge!r} {resp.text}")
    report(check=check, ok=True, challenge=challenge)


def main():
    token_endpoint, resource, client_id, secret = sys.argv[1:5]
    resource_url = resource.rstrip("/") + "/data"

    resp = get_token(token_endpoint, client_id, secret, None)
    if resp.status_code != 400 or resp.json().get("error") != "invalid_dpop_proof":
        fail("required_client_without_proof", f"{resp.status_code} {resp.text}")
    report(check="required_client_without_proof", ok=True)

    keys = {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    for alg, key in keys.items():
        resp = get_token(token_endpoint, client_id, secret, proof(key, alg, "POST", token_endpoint))
        body = resp.json()
        if resp.status_code != 200 or body.get("token_type") != "DPoP":
            fail(f"{alg}_token", f"{resp.status_code} {resp.text}")
        token = body["access_token"]
        cnf = jwt.decode(token, options={"verify_signature": False}).get("cnf", {})
        if cnf.get("jkt") != thumbprint(public_jwk(key, alg)):
            fail(f"{alg}_token", f"cnf {cnf} is not the key's thumbprint")
        report(check=f"{alg}_token_bound", ok=True)

        good = proof(key, alg, "GET", resource_url, token)
        resp = call(resource_url, "DPoP", token, good)
        if resp.status_code != 200:
            fail(f"{alg}_resource", f"{resp.status_code} {resp.headers.get('WWW-Authenticate')} {resp.text}")
        report(check=f"{alg}_resource_accepts", ok=True, body=resp.json())

        expect_refused(f"{alg}_replay", call(resource_url, "DPoP", token, good), "invalid_dpop_proof")
        thief = ec.generate_private_key(ec.SECP256R1())
        expect_refused(
            f"{alg}_other_key",
            call(resource_url, "DPoP", token, proof(thief, "ES256", "GET", resource_url, token)),
            "invalid_dpop_proof",
        )
        expect_refused(
            f"{alg}_other_url",
            call(resource_url, "DPoP", token, proof(key, alg, "GET", resource_url + "/x", token)),
            "invalid_dpop_proof",
        )
        expect_refused(
            f"{alg}_wrong_method",
            call(resource_url, "DPoP", token, proof(key, alg, "POST", resource_url, token)),
            "invalid_dpop_proof",
        )
        expect_refused(f"{alg}_as_bearer", call(resource_url, "Bearer", token), "invalid_token")
    report(check="done", ok=True)


if __name__ == "__main__":
    main()
