#!/usr/bin/env python3
"""Interop of the issue #17 algorithms with implementations we did not write
(run by tests/e2e/interop.rs).

verify ISSUER_URL AUDIENCE SECRET PREFIX
    Gets a token for client PREFIX + ALG for each of Ed25519, ES384, PS256,
    ML-DSA-44 and ML-DSA-65 from the real issuer, finds its key in the JWKS
    by kid, and verifies it: PyJWT (with `cryptography`) for Ed25519, ES384
    and PS256 (iss, aud, exp checked), dilithium-py (pure-Python FIPS 204,
    empty context) for ML-DSA. A token whose signature was altered must be
    refused by each.

mint ISSUER AUDIENCE
    Makes a key of each algorithm (cryptography, dilithium-py), signs a
    token with each (PyJWT; dilithium-py for ML-DSA) and prints one JSON
    object {"jwks": ..., "tokens": {alg: token}} for our verifier to check.

Prints JSON lines; exits non-zero on the first failure.
"""
import base64
import json
import sys
import time

import jwt  # PyJWT
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAPSSAlgorithm

TIMEOUT = 10
CLASSICAL = ["Ed25519", "ES384", "PS256"]
ML_DSA = {"ML-DSA-44": ML_DSA_44, "ML-DSA-65": ML_DSA_65}

# PyJWT 2.10 knows Ed25519 keys under the RFC 8037 name `EdDSA` only; the
# RFC 9864 name is registered on the same implementation.
jwt.register_algorithm("Ed25519", OKPAlgorithm())


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def report(**fields):
    print(json.dumps(fields), flush=True)


def key_from_jwk(jwk):
    if jwk["kty"] == "OKP":
        return OKPAlgorithm.from_jwk(jwk)
    if jwk["kty"] == "EC":
        return ECAlgorithm.from_jwk(jwk)
    return RSAPSSAlgorithm.from_jwk(jwk)


def tampered(token):
    h, p, s = token.split(".")
    sig = bytearray(b64d(s))
    sig[len(sig) // 2] ^= 1
    return ".".join([h, p, b64e(bytes(sig))])


def verify_ml_dsa(token, jwk, issuer, audience):
    h, p, s = token.split(".")
    alg = json.loads(b64d(h))["alg"]
    assert jwk["kty"] == "AKP" and jwk["alg"] == alg, jwk
    ok = ML_DSA[alg].verify(b64d(jwk["pub"]), f"{h}.{p}".encode(), b64d(s), ctx=b"")
    if not ok:
        raise AssertionError("dilithium-py refused the signature")
    claims = json.loads(b64d(p))
    assert claims["iss"] == issuer and audience in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert claims["exp"] > time.time(), claims
    return claims


def verify_ours(issuer, audience, secret, prefix):
    meta = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    jwks = requests.get(meta["jwks_uri"], timeout=TIMEOUT).json()
    for alg in CLASSICAL + list(ML_DSA):
        r = requests.post(
            meta["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(prefix + alg, secret),
            timeout=TIMEOUT,
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == alg, header
        jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        if alg in ML_DSA:
            claims = verify_ml_dsa(token, jwk, issuer, audience)
            try:
                verify_ml_dsa(tampered(token), jwk, issuer, audience)
                raise SystemExit(f"dilithium-py accepted a tampered {alg} token")
            except AssertionError:
                pass
            impl = "dilithium-py"
        else:
            key = key_from_jwk(jwk)
            claims = jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer)
            try:
                jwt.decode(tampered(token), key, algorithms=[alg], audience=audience, issuer=issuer)
                raise SystemExit(f"PyJWT accepted a tampered {alg} token")
            except jwt.InvalidSignatureError:
                pass
            impl = "PyJWT"
        report(check="verify", alg=alg, by=impl, kid=header["kid"], sub=claims.get("sub"), result="ok")


def mint(issuer, audience):
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": "python", "iat": now, "nbf": now, "exp": now + 300, "jti": "py-1"}
    keys, tokens = [], {}
    classical = {
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "PS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    impls = {"Ed25519": OKPAlgorithm(), "ES384": ECAlgorithm(ECAlgorithm.SHA384), "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256)}
    for alg, private in classical.items():
        jwk = json.loads(impls[alg].to_jwk(private.public_key()))
        kid = f"py-{alg}"
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        keys.append(jwk)
        tokens[alg] = jwt.encode(claims, private, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"})
    for alg, impl in ML_DSA.items():
        pk, sk = impl.keygen()
        kid = f"py-{alg}"
        keys.append({"kty": "AKP", "alg": alg, "pub": b64e(pk), "kid": kid, "use": "sig"})
        h = b64e(json.dumps({"alg": alg, "typ": "at+jwt", "kid": kid}, separators=(",", ":")).encode())
        p = b64e(json.dumps(claims, separators=(",", ":")).encode())
        sig = impl.sign(sk, f"{h}.{p}".encode(), ctx=b"")
        tokens[alg] = f"{h}.{p}.{b64e(sig)}"
    print(json.dumps({"jwks": {"keys": keys}, "tokens": tokens}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify_ours(*sys.argv[2:6])
    elif sys.argv[1] == "mint":
        mint(*sys.argv[2:4])
    else:
        raise SystemExit(__doc__)
