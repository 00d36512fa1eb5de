"""Tests of :mod:`twinengine.api.oidc` against a real HTTP issuer on loopback (no mocks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from twinengine.api import oidc
from twinengine.api.oidc import OidcVerifier
from twinengine.core.errors import AuthError, ConfigError

AUDIENCE = "twinengine"


@dataclass
class Issuer:
    """A fake OIDC issuer served over real HTTP; ``hits`` counts GETs per path."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"


def _jwk(public_key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    return {**algorithm.to_jwk(public_key, as_dict=True), "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def issuer(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[Issuer]:
    """Serve a discovery document and a JWKS (RSA kid ``rsa1``, EC kid ``ec1``)."""
    state = Issuer(keys=[_jwk(rsa_key.public_key(), "rsa1"), _jwk(ec_key.public_key(), "ec1")])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits[self.path] += 1
            if self.path == "/.well-known/openid-configuration":
                body: Any = {"issuer": state.url, "jwks_uri": state.jwks_url}
            elif self.path == "/jwks":
                body = {"keys": list(state.keys)}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _claims(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": issuer.url, "sub": "alice@egi.eu", "aud": AUDIENCE, "iat": now}
    claims["exp"] = now + 600
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key: Any, claims: dict[str, Any], kid: str = "rsa1", alg: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _error(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    assert info.value.http_status == 401
    return info.value.message


def test_valid_rs256_token_through_discovery_fetches_once(
    issuer: Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    token = _token(rsa_key, _claims(issuer))
    assert verifier.verify(token)["sub"] == "alice@egi.eu"
    assert verifier.verify(token)["aud"] == AUDIENCE
    assert issuer.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


def test_valid_es256_token_with_explicit_jwks_url(
    issuer: Issuer, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = OidcVerifier(issuer.url + "/", AUDIENCE, jwks_url=issuer.jwks_url)
    token = _token(ec_key, _claims(issuer), kid="ec1", alg="ES256")
    assert verifier.verify(token)["iss"] == issuer.url
    assert verifier.verify(token)["sub"] == "alice@egi.eu"
    assert issuer.hits == {"/jwks": 1}


def test_concurrent_verifies_share_one_fetch(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    token = _token(rsa_key, _claims(issuer))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(verifier.verify(token)["sub"]))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["alice@egi.eu"] * 8
    assert issuer.hits["/jwks"] == 1


def test_expired_token(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    now = int(time.time())
    expired = _token(rsa_key, _claims(issuer, iat=now - 900, exp=now - 120))
    assert _error(verifier, expired) == "the OIDC token has expired"
    within_leeway = _token(rsa_key, _claims(issuer, iat=now - 900, exp=now - 10))
    assert verifier.verify(within_leeway)["sub"] == "alice@egi.eu"


def test_token_without_exp(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    assert "'exp'" in _error(verifier, _token(rsa_key, _claims(issuer, exp=None)))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid_token(issuer: Issuer, rsa_key: rsa.RSAPrivateKey, claim: str) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    token = _token(rsa_key, _claims(issuer, **{claim: int(time.time()) + 120}))
    assert "not valid yet" in _error(verifier, token)


def test_wrong_issuer(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    message = _error(verifier, _token(rsa_key, _claims(issuer, iss="https://evil.example")))
    assert message == f"the OIDC token was issued by 'https://evil.example', not '{issuer.url}'"
    # a trailing slash on either side is tolerated
    assert verifier.verify(_token(rsa_key, _claims(issuer, iss=issuer.url + "/")))


def test_wrong_audience(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    message = _error(verifier, _token(rsa_key, _claims(issuer, aud="other-service")))
    assert message == "the OIDC token is for audience 'other-service', not 'twinengine'"
    assert "audience None" in _error(verifier, _token(rsa_key, _claims(issuer, aud=None)))


def test_audience_list_containing_ours(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    token = _token(rsa_key, _claims(issuer, aud=["other-service", AUDIENCE]))
    assert verifier.verify(token)["aud"] == ["other-service", AUDIENCE]
    bad = _token(rsa_key, _claims(issuer, aud=["a", "b"]))
    assert "for audience ['a', 'b']" in _error(verifier, bad)


def test_no_audience_configured_accepts_any(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url)
    assert verifier.verify(_token(rsa_key, _claims(issuer, aud="anything")))


def test_token_signed_by_a_key_not_in_the_jwks(issuer: Issuer) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = _error(verifier, _token(rogue, _claims(issuer), kid="rogue"))
    assert message == "the OIDC token is signed with an unknown key (kid 'rogue')"
    # a forged token claiming a known kid fails the signature check
    assert "signature is invalid" in _error(verifier, _token(rogue, _claims(issuer)))


def test_key_rotation_refetches_after_the_cooldown(
    issuer: Issuer, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc, "ROTATION_COOLDOWN", 0.3)
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    assert verifier.verify(_token(rsa_key, _claims(issuer)))
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.keys = [_jwk(new_key.public_key(), "rsa2")]
    token = _token(new_key, _claims(issuer), kid="rsa2")
    # within the cooldown an unknown kid does not hit the issuer again
    assert "unknown key" in _error(verifier, token)
    assert issuer.hits["/jwks"] == 1
    time.sleep(0.35)
    assert verifier.verify(token)["sub"] == "alice@egi.eu"
    assert verifier.verify(token)
    assert issuer.hits["/jwks"] == 2


def test_stale_cache_is_refreshed(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE, refresh_interval=0.2)
    token = _token(rsa_key, _claims(issuer))
    assert verifier.verify(token)
    time.sleep(0.25)
    assert verifier.verify(token)
    assert issuer.hits["/jwks"] == 2


def test_alg_none_is_rejected(issuer: Issuer) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    token = jwt.encode(_claims(issuer), None, algorithm="none", headers={"kid": "rsa1"})
    assert "algorithm 'none'" in _error(verifier, token)
    assert issuer.hits["/jwks"] == 0


def test_hs256_with_the_public_key_as_secret_is_rejected(
    issuer: Issuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The classic algorithm-confusion attack: HMAC keyed with the issuer's public key."""
    secret = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode())
    payload = _b64(json.dumps(_claims(issuer)).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{_b64(signature)}"
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    assert "algorithm 'HS256'" in _error(verifier, token)


def test_key_type_must_fit_the_algorithm(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    token = _token(rsa_key, _claims(issuer), kid="ec1", alg="RS256")
    assert "does not fit algorithm RS256" in _error(verifier, token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "!!.??.##",
        "eyJhbGciOi.e30.sig",
        "e30.e30.",
        "bm9wZQ.e30.c2ln",
    ],
)
def test_garbage_token_is_malformed(issuer: Issuer, token: str) -> None:
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    assert _error(verifier, token).startswith("malformed token")


def test_unreachable_issuer_is_an_auth_error(rsa_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    verifier = OidcVerifier(url, AUDIENCE, timeout=2.0)
    token = _token(rsa_key, {"iss": url, "exp": int(time.time()) + 60})
    assert _error(verifier, token).startswith("could not reach the OIDC issuer")


def test_issuer_without_discovery_document(issuer: Issuer, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = OidcVerifier(issuer.url + "/missing", AUDIENCE)
    message = _error(verifier, _token(rsa_key, _claims(issuer)))
    assert message.startswith("could not reach the OIDC issuer at ")
    assert "404" in message


def test_issuer_must_be_a_url() -> None:
    with pytest.raises(ConfigError):
        OidcVerifier("aai.egi.eu")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl", True),
        ("eyJhbGciOiJub25lIn0.e30.", True),
        ("abc.defg.gh-_", True),
        ("", False),
        ("opaque-access-token", False),
        ("a.b", False),
        ("a.b.c.d", False),
        ("ab+/.cd.ef", False),
        ("ab cd.ef.gh", False),
        ("abcde.ab.ab", False),
    ],
)
def test_looks_like_jwt(token: str, expected: bool) -> None:
    assert OidcVerifier.looks_like_jwt(token) is expected
