"""Verification of OIDC bearer tokens (e.g. from EGI Check-in) for ``twin serve``.

:class:`OidcVerifier` checks a JWT access or ID token against one configured issuer: it
discovers the issuer's JWKS (or uses an explicit URL), caches the keys, refetches them
when a token names an unknown key (key rotation), accepts only asymmetric signature
algorithms and validates ``iss``, ``exp``, ``nbf``, ``iat`` and, when configured,
``aud``. Every failure, including an unreachable issuer, is an :class:`AuthError` whose
message names the problem, so the API answers 401 and never 500.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx
import jwt

from twinengine.core.errors import AuthError, ConfigError

#: signature algorithms a token may use; symmetric ones (HS*) and ``none`` never
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: an unknown ``kid`` may trigger a JWKS refetch once the cache is this old (seconds)
ROTATION_COOLDOWN = 10.0

_JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class OidcVerifier:
    """Verifies JWTs signed by one OIDC issuer; safe to share between threads."""

    def __init__(
        self,
        issuer: str,
        audience: str | None = None,
        jwks_url: str | None = None,
        *,
        timeout: float = 5.0,
        leeway: float = 30.0,
        refresh_interval: float = 300.0,
    ) -> None:
        if not issuer.startswith(("https://", "http://")):
            raise ConfigError(
                f"the OIDC issuer {issuer!r} is not an http(s) URL",
                hint="set it to e.g. https://aai.egi.eu/auth/realms/egi",
            )
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.timeout = timeout
        self.leeway = leeway
        self.refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] | None = None  # kid ("" when absent) -> JWK
        self._fetched_at = 0.0  # time.monotonic() of the last successful JWKS fetch

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        """Whether ``token`` has the shape of a JWS: three base64url parts separated by dots."""
        # a base64url string never has a length of 1 modulo 4
        return bool(_JWT_RE.match(token)) and all(len(p) % 4 != 1 for p in token.split("."))

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token; AuthError naming the problem otherwise."""
        if not self.looks_like_jwt(token):
            raise AuthError("malformed token: an OIDC token is three base64url parts and dots")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg is None:
            raise AuthError("malformed token: its header names no signature algorithm")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthError(
                f"the OIDC token uses the signature algorithm {alg!r}, which is not accepted",
                hint="only asymmetric algorithms (RS*, PS*, ES*, EdDSA) are allowed; "
                "'none' and HS* are refused",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed token: its key id (kid) is not a string")
        jwk = self._key_for(kid)
        if jwk.get("alg") not in (None, alg):
            raise AuthError(f"the OIDC token is signed with {alg} but its key is for {jwk['alg']}")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError as exc:
            raise AuthError(f"the OIDC token's key does not fit algorithm {alg}: {exc}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": False, "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the OIDC token has expired", hint="log in again") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the OIDC token is not valid yet (nbf/iat in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the OIDC token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the OIDC token's signature is invalid") from None
        except jwt.DecodeError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the OIDC token is invalid: {exc}") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """Check ``iss`` (ignoring a trailing slash) and, when configured, ``aud``."""
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss.rstrip("/") != self.issuer.rstrip("/"):
            raise AuthError(f"the OIDC token was issued by {iss!r}, not {self.issuer!r}")
        if self.audience is None:
            return
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in auds:
            raise AuthError(
                f"the OIDC token is for audience {aud!r}, not {self.audience!r}",
                hint="request a token for this service's client id",
            )

    def _key_for(self, kid: str | None) -> dict[str, Any]:
        """The JWK that signed a token, refetching the JWKS when it is stale or lacks ``kid``."""
        with self._lock:
            age = time.monotonic() - self._fetched_at
            fresh = self._keys is None or age >= self.refresh_interval
            if self._keys is None:
                self._keys = self._fetch_keys()
            elif fresh:
                try:
                    self._keys = self._fetch_keys()
                except AuthError:
                    pass  # the issuer is briefly unreachable: keep the keys we have
            found = self._pick(self._keys, kid)
            if found is None and not fresh and age >= min(ROTATION_COOLDOWN, self.refresh_interval):
                self._keys = self._fetch_keys()  # an unknown kid: the issuer may have rotated
                found = self._pick(self._keys, kid)
        if found is None:
            raise AuthError(
                f"the OIDC token is signed with an unknown key (kid {kid!r})",
                hint=f"the key is not in the JWKS of {self.issuer}",
            )
        return found

    @staticmethod
    def _pick(keys: dict[str, dict[str, Any]], kid: str | None) -> dict[str, Any] | None:
        """The key named ``kid``; without a kid, the only key if there is exactly one."""
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    def _fetch_keys(self) -> dict[str, dict[str, Any]]:
        """Fetch the JWKS (discovering its URL first if needed); signature keys by kid."""
        if self.jwks_url is None:
            url = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            jwks_uri = self._get_json(url).get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise AuthError(f"could not reach the OIDC issuer: {url} names no jwks_uri")
            self.jwks_url = jwks_uri
        found = self._get_json(self.jwks_url).get("keys")
        if not isinstance(found, list):
            raise AuthError(f"could not reach the OIDC issuer: {self.jwks_url} has no 'keys'")
        keys = {
            str(k.get("kid", "")): k
            for k in found
            if isinstance(k, dict) and k.get("use", "sig") == "sig" and k.get("kty") != "oct"
        }
        self._fetched_at = time.monotonic()
        return keys

    def _get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object; any failure is an AuthError saying the issuer is unreachable."""
        try:
            response = httpx.get(url, timeout=self.timeout, follow_redirects=True)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthError(
                f"could not reach the OIDC issuer at {url}: {str(exc) or type(exc).__name__}",
                hint="check the configured issuer URL and the network",
            ) from None
        if not isinstance(data, dict):
            raise AuthError(f"could not reach the OIDC issuer: {url} did not return a JSON object")
        return data
