"""schemathesis hooks for scripts/fuzz.sh: real credentials, so the fuzzer gets past
the door of every authenticated route and tests what lies behind it.

- Routes that take an account token get a live one: each worker thread signs up an
  account of its own and keeps its token until a case ends that session (a generated
  `POST /auth/logout` with scope `global` ends every session of the account, a
  `DELETE /auth/sessions/{id}` may end this one) or a route answers 401; then it signs
  in again. One token for the whole run made every case after the first logout a 401;
  one account for both workers let one worker's logout end the other's session.
- `POST /api/v1/selfkey/auth/challenge` gets a live challenge token; the routes behind
  a wallet token get one of the tokens that tests/interop/wallet-tokens.mjs signed in
  with ethers wallets.
- The three OwnID calls are signed with the server's shared secret over the exact
  bytes sent, three cases in four; the fourth keeps the generated (wrong) signature.
  Half of them name the fuzz account as their `loginId`.
- `POST /auth/refresh` gets a real refresh token in place of the generated one, one
  case in two.

- Each worker's account has a wallet linked to it (a link token, then the wallet's
  sign-up with it in its `meta`), one of FUZZ_LINK_WALLETS that no other route is
  given; `GET /api/v1/selfkey/wallets/{address}` names it one case in two (`DELETE`
  one in four), so they answer `200` too, not only `400`/`404`. Without it the
  operation never answered 2xx, so schemathesis never counted it as authenticated and
  flagged it as "only 401" after the coverage phase's scenario of missing and garbled
  `Authorization` headers (more than one case, so not exempted). A removed wallet, or
  a deleted account's, is linked again before the next case.
- `POST /auth/password/change` gets the account's real current password one case in
  two, so a change can succeed (the new password is then the account's).

Configured by the environment fuzz.sh sets: FUZZ_BASE_URL, FUZZ_EMAIL, FUZZ_PASSWORD,
FUZZ_OWNID_SECRET (base64), FUZZ_WALLET_TOKENS and FUZZ_LINK_WALLETS (JSON arrays of
`{address, token}`).
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import threading
import time
import urllib.request
import uuid

import schemathesis

BASE = os.environ["FUZZ_BASE_URL"]
EMAIL = os.environ["FUZZ_EMAIL"]
PASSWORD = os.environ["FUZZ_PASSWORD"]
OWNID_KEY = base64.b64decode(os.environ["FUZZ_OWNID_SECRET"])
WALLET_TOKENS = itertools.cycle(w["token"] for w in json.loads(os.environ["FUZZ_WALLET_TOKENS"]))
LINK_WALLETS = iter(json.loads(os.environ["FUZZ_LINK_WALLETS"]))
SELFKEY = "/api/v1/selfkey"
EMAIL_SCHEMA = "http://platform.selfkey.org/schema/attribute/email.json"
_link_wallets_lock = threading.Lock()

ACCOUNT_ROUTES = (
    r"^/auth/(me|logout|sessions.*|passkeys(/register.*|/\{id\})?)$"
    r"|^/auth/(password/change|email/change|verify-email/send)$"
    r"|^/api/v1/selfkey/(link-token|wallets.*)$"
)
WALLET_ROUTES = r"^/api/v1/selfkey/(auth/token|users/token|users)$"


def _call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


_worker = threading.local()


def _sign_in():
    """A new session of this worker's account (signed up on first use)."""
    if not hasattr(_worker, "email"):
        _worker.email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        _worker.password = PASSWORD
        _worker.linked = False
        _call("POST", "/auth/register", {"email": _worker.email, "password": PASSWORD})
    return _call("POST", "/auth/login", {"email": _worker.email, "password": _worker.password})


def _link_wallet(token):
    """Links this worker's wallet to the account of `token`, as a signed-in person does."""
    if not hasattr(_worker, "wallet"):
        with _link_wallets_lock:
            _worker.wallet = next(LINK_WALLETS)
    link = _call("POST", f"{SELFKEY}/link-token", token=token)["linkToken"]
    attributes = [
        {"id": EMAIL_SCHEMA, "schemaId": EMAIL_SCHEMA, "data": {"value": _worker.email}}
    ]
    _call(
        "POST",
        f"{SELFKEY}/users",
        {"attributes": attributes, "meta": {"linkToken": link}},
        token=_worker.wallet["token"],
    )
    _worker.linked = True


def _account_token():
    if getattr(_worker, "token", None) is None:
        _worker.token = _sign_in()["token"]
    if not _worker.linked:
        _link_wallet(_worker.token)
    return _worker.token


def _one_in(n, *parts):
    """A choice that depends on the case only, so a run stays reproducible."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return digest[0] % n == 0


def _bearer(case, token):
    case.headers = dict(case.headers or {})
    case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.auth(refresh_interval=None).apply_to(path_regex=ACCOUNT_ROUTES)
class AccountToken:
    def get(self, case, ctx):
        return _account_token()

    def set(self, case, data, ctx):
        _bearer(case, data)


@schemathesis.auth(refresh_interval=None).apply_to(
    path_regex=r"^/api/v1/selfkey/auth/challenge$", method="POST"
)
class ChallengeToken:
    def get(self, case, ctx):
        # The secp256k1 generator point: a valid public key, as the wallet sends one.
        key = (
            "0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
            "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
        )
        request = urllib.request.Request(
            f"{BASE}/api/v1/selfkey/auth/challenge/{key}", headers={"origin": "IDW"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["jwt"]

    def set(self, case, data, ctx):
        _bearer(case, data)


@schemathesis.auth(refresh_interval=None).apply_to(path_regex=WALLET_ROUTES)
class WalletToken:
    def get(self, case, ctx):
        return next(WALLET_TOKENS)

    def set(self, case, data, ctx):
        _bearer(case, data)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    path = case.operation.path
    if path.startswith("/ownid/") and type(case.body).__name__ != "NotSet":
        body = case.body
        # Half the cases name the fuzz account, so they reach an account, not a 404.
        if isinstance(body, dict) and "loginId" in body and _one_in(2, path, repr(body)):
            body = {**body, "loginId": EMAIL}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = dict(case.headers or {})
        if not _one_in(4, path, raw):
            timestamp = str(int(time.time() * 1000))
            tag = hmac.new(OWNID_KEY, raw + b"." + timestamp.encode(), hashlib.sha256)
            headers["ownid-signature"] = base64.b64encode(tag.digest()).decode()
            headers["ownid-timestamp"] = timestamp
        # Sent as these bytes, so the signature covers exactly what the server reads.
        case.body = raw
        case.headers = headers
    elif path == f"{SELFKEY}/wallets/{{address}}" and hasattr(_worker, "wallet"):
        # Fewer removals than reads: each removal costs a link before the next case.
        if _one_in(2 if case.method.upper() == "GET" else 4, case.method, repr(case.path_parameters)):
            case.path_parameters = {**(case.path_parameters or {}), "address": _worker.wallet["address"]}
    elif path == "/auth/password/change" and isinstance(case.body, dict):
        if "current_password" in case.body and _one_in(2, json.dumps(case.body, sort_keys=True)):
            case.body = {**case.body, "current_password": _worker.password}
    elif path == "/auth/refresh" and isinstance(case.body, dict) and "refresh_token" in case.body:
        if _one_in(2, json.dumps(case.body, sort_keys=True)):
            case.body = {**case.body, "refresh_token": _sign_in()["refresh_token"]}


@schemathesis.hook
def after_call(ctx, case, response):
    path = case.operation.path
    if path in ("/auth/logout", "/auth/sessions/{id}") or response.status_code == 401:
        _worker.token = None
    if path == "/auth/me" and case.method.upper() == "DELETE" and response.status_code == 204:
        # The account is gone (its wallet unlinked): the next case signs a new one up.
        del _worker.email
        _worker.token = None
    if path == f"{SELFKEY}/wallets/{{address}}" and case.method.upper() == "DELETE":
        if response.status_code == 200:
            _worker.linked = False
    # POST only: the coverage phase also sends other methods (an OPTIONS is answered 200).
    if path == "/auth/password/change" and case.method.upper() == "POST":
        if response.status_code == 200:
            _worker.password = case.body["new_password"]
