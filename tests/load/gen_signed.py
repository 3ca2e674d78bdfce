#!/usr/bin/env python3
"""Pre-signed private_key_jwt token requests for the load harness.

usage: gen_signed.py keygen DIR
         writes DIR/client.pem (P-256 private key), DIR/client.jwks.json
         (its public JWK set) and DIR/dpop.pem (the DPoP key)
       gen_signed.py requests DIR OUT N ISSUER CLIENT_PREFIX DPOP(0|1) [AUD]
         writes N lines "form body<TAB>DPoP proof" (proof empty when
         DPOP=0): each with a fresh assertion jti and proof jti, so every
         request is accepted once (single-use ids) and a replay is refused.
         The clients are CLIENT_PREFIX-0 .. CLIENT_PREFIX-15 in turn: the
         issuer holds at most 20,000 live ids per client
         (oauth::replay::MAX_PER_CLIENT), which one client at thousands
         of requests a second fills within seconds.

Assertions (RFC 7523): iss = sub = CLIENT_ID, aud = AUD (default ISSUER),
exp = now + 240 s. DPoP proofs (RFC 9449): htm POST, htu ISSUER/token,
iat = now. Generate right before the run: proofs are accepted for
`dpop.iat_window` (60 s by default).
"""
import base64, json, os, sys, time, uuid
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64(n):
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def public_jwk(key):
    nums = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64(nums.x), "y": b64(nums.y)}


def load(path):
    return serialization.load_pem_private_key(open(path, "rb").read(), None)


def keygen(d):
    for name in ("client", "dpop"):
        k = ec.generate_private_key(ec.SECP256R1())
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with open(os.path.join(d, f"{name}.pem"), "wb") as f:
            f.write(pem)
        if name == "client":
            jwk = dict(public_jwk(k), use="sig", alg="ES256")
            jwk["kid"] = "bench-client-key"
            json.dump({"keys": [jwk]}, open(os.path.join(d, "client.jwks.json"), "w"))


def requests(d, out, n, issuer, prefix, dpop, aud):
    client, proof_key = load(os.path.join(d, "client.pem")), load(os.path.join(d, "dpop.pem"))
    proof_jwk = public_jwk(proof_key)
    now = int(time.time())
    htu = issuer + "/token"
    with open(out, "w") as f:
        for i in range(n):
            client_id = f"{prefix}-{i % 16}"
            assertion = jwt.encode(
                {"iss": client_id, "sub": client_id, "aud": aud, "jti": uuid.uuid4().hex, "iat": now, "exp": now + 240},
                client, algorithm="ES256", headers={"kid": "bench-client-key"})
            body = ("grant_type=client_credentials&scope=" + quote("invoices:read invoices:write") + "&client_id=" + client_id
                    + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                    + "&client_assertion=" + assertion)
            proof = ""
            if dpop:
                proof = jwt.encode({"jti": uuid.uuid4().hex, "htm": "POST", "htu": htu, "iat": now}, proof_key,
                                   algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": proof_jwk})
            f.write(body + "\t" + proof + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["keygen"]:
        keygen(sys.argv[2])
    elif sys.argv[1:2] == ["requests"]:
        d, out, n, issuer, cid, dp = sys.argv[2:8]
        aud = sys.argv[8] if len(sys.argv) > 8 else issuer
        requests(d, out, int(n), issuer, cid, dp == "1", aud)
    else:
        sys.exit(__doc__)
