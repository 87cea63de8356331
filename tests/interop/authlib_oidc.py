"""The OpenID Connect provider through Python's Authlib (a third opinion beside
openid-client and oauth4webapi): discovery, client_credentials, and a code exchange
with PKCE whose token response and ID token Authlib checks (signature against the
JWKS, iss, aud, nonce, exp, iat).

Run by scripts/authlib.sh against a server it starts. Until /oauth/authorize is in,
the code a browser would bring back is written into the server's SQLite database as
/authorize writes one (its SHA-256, bound to the client, redirect URI, nonce and PKCE
challenge); the token request is Authlib's own.
"""

import base64
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import unittest

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

ISSUER = os.environ["GATEHOUSE_PUBLIC_URL"]
BIN = os.environ["GATEHOUSE_BIN"]
DATA = os.environ["GATEHOUSE_DATA_DIR"]
REDIRECT_URI = "http://127.0.0.1:9/callback"


def cli(*args):
    out = subprocess.run(
        [BIN, *args, "--json", "--data-dir", DATA],
        check=True, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")},
    )
    return json.loads(out.stdout)


def discovery():
    res = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10)
    assert res.status_code == 200, res.text
    return res.json()


def account():
    email = f"authlib-{secrets.token_hex(6)}@example.com"
    res = requests.post(f"{ISSUER}/auth/register", timeout=30,
                        json={"email": email, "password": "correct horse battery staple"})
    assert res.status_code == 200, res.text
    payload = res.json()["token"].split(".")[1]
    sub = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    return sub, email


def database():
    name = next(f for f in os.listdir(DATA) if f.endswith(".db"))
    return os.path.join(DATA, name)


def authorization_code(client_id, account_id, scope, nonce, challenge):
    code = secrets.token_urlsafe(32)
    now = int(time.time())
    with sqlite3.connect(database(), timeout=30) as db:
        db.execute(
            "INSERT INTO oidc_codes (code_hash, client_id, account_id, session_id, redirect_uri,"
            " scopes, nonce, code_challenge, auth_time, expires_at, amr)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pwd')",
            (hashlib.sha256(code.encode()).hexdigest(), client_id, account_id,
             secrets.token_hex(16), REDIRECT_URI, scope, nonce, challenge, now, now + 60),
        )
    return code


class AuthlibTest(unittest.TestCase):
    def test_discovery_names_the_issuer_and_its_endpoints(self):
        meta = discovery()
        self.assertEqual(meta["issuer"], ISSUER)
        self.assertEqual(meta["token_endpoint"], f"{ISSUER}/oauth/token")
        self.assertEqual(meta["code_challenge_methods_supported"], ["S256"])
        self.assertIn("RS256", meta["id_token_signing_alg_values_supported"])

    def test_client_credentials(self):
        c = cli("clients", "add", "--name", "authlib-machine", "--grant", "client_credentials")
        meta = discovery()
        session = OAuth2Session(c["client_id"], c["client_secret"])
        token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        self.assertEqual(token["token_type"], "Bearer")
        self.assertGreater(token["expires_in"], 0)
        self.assertNotIn("refresh_token", token)
        intro = requests.post(meta["introspection_endpoint"], data={"token": token["access_token"]},
                              auth=(c["client_id"], c["client_secret"]), timeout=10)
        self.assertEqual(intro.status_code, 200, intro.text)
        self.assertEqual(intro.json()["active"], True)
        # A wrong secret: Authlib raises the spec's error.
        wrong = OAuth2Session(c["client_id"], "x" * 43)
        with self.assertRaises(Exception) as refused:
            wrong.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        self.assertIn("invalid_client", str(refused.exception))

    def test_code_exchange_with_pkce(self):
        c = cli("clients", "add", "--name", "authlib-web", "--redirect-uri", REDIRECT_URI)
        meta = discovery()
        sub, email = account()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        nonce = secrets.token_urlsafe(16)
        code = authorization_code(c["client_id"], sub, "openid email offline_access", nonce, challenge)
        session = OAuth2Session(c["client_id"], c["client_secret"], redirect_uri=REDIRECT_URI,
                                code_challenge_method="S256")
        token = session.fetch_token(
            meta["token_endpoint"],
            authorization_response=f"{REDIRECT_URI}?code={code}&iss={ISSUER}",
            code_verifier=verifier,
        )
        self.assertEqual(token["token_type"], "Bearer")
        self.assertIn("refresh_token", token)
        self.assertEqual(token["scope"], "openid email offline_access")
        jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
        claims = jwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                            claims_options={"iss": {"essential": True, "value": ISSUER},
                                            "aud": {"essential": True, "value": c["client_id"]}},
                            claims_params={"nonce": nonce, "client_id": c["client_id"]})
        claims.validate()
        self.assertEqual(claims["sub"], sub)
        self.assertEqual(claims["email"], email)
        # The code again: refused with invalid_grant.
        again = requests.post(meta["token_endpoint"], auth=(c["client_id"], c["client_secret"]), timeout=10,
                              data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
        self.assertEqual(again.status_code, 400, again.text)
        self.assertEqual(again.json()["error"], "invalid_grant")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)
