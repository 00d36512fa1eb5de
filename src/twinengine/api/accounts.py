"""Users, API tokens, projects and memberships: who may do what, stored in the metadata DB.

:class:`AccountStore` owns the access-control tables. A token is ``twin_`` plus 43
random URL-safe characters; only its SHA-256 is stored, so a leaked database does not
leak usable tokens, and a presented token is found by the index on that digest (no
comparison of secrets whose time depends on how much of them matches).
:meth:`AccountStore.authenticate` turns a presented token into a :class:`Principal`
(user, scopes, project roles, when the credential expires) or raises :class:`AuthError`;
a token made by a caller never outlives the caller's own credential; the API,
the CLI (``twin users``, ``twin tokens``) and OIDC sign-in all go through this class.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from twinengine.core import (
    AuthError,
    Database,
    ForbiddenError,
    NotFoundError,
    StateError,
    TwinError,
    get_database,
    new_id,
)
from twinengine.core.models import memberships, projects, tokens, users
from twinengine.core.times import as_utc as _aware
from twinengine.core.times import utcnow

SCOPES = ("read", "run", "admin")
ROLES = ("viewer", "editor", "owner")
DEFAULT_PROJECT = "default"
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_LAST_USED_EVERY = dt.timedelta(seconds=60)  # write last_used_at at most this often


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a user, the token's scopes and the user's projects."""

    user: str
    admin: bool
    scopes: frozenset[str]
    roles: dict[str, str] = field(default_factory=dict)  # project -> role
    token_id: str | None = None
    kind: str = "token"  # token, oidc, local (the CLI on this machine)
    expires_at: dt.datetime | None = None  # when the presented credential stops working

    @property
    def is_admin(self) -> bool:
        """An admin user acting with an admin-scope token."""
        return self.admin and "admin" in self.scopes

    def require_scope(self, scope: str) -> None:
        if scope == "admin" and not self.is_admin:
            raise ForbiddenError(
                "this needs an admin user with a token of the 'admin' scope",
                hint="ask an administrator",
            )
        if scope not in self.scopes and not self.is_admin:
            raise ForbiddenError(
                f"this token lacks the {scope!r} scope",
                hint=f"create a token with `twin tokens create --scope {scope}`",
            )

    def role_in(self, project: str) -> str | None:
        if self.is_admin:
            return "owner"
        return self.roles.get(project)

    def visible_projects(self) -> list[str] | None:
        """Projects the caller may read; ``None`` means all (an admin)."""
        if self.is_admin:
            return None
        return sorted(self.roles)

    def check_project(self, project: str | None, need: str = "viewer") -> None:
        """404 for a project the caller is not in; 403 when the role is too low."""
        role = self.role_in(project or "")
        if role is None:
            raise NotFoundError(f"no project {project!r}", hint="`GET /api/v1/me` lists yours")
        if ROLES.index(role) < ROLES.index(need):
            raise ForbiddenError(f"your role in project {project!r} is {role}; this needs {need}")


class AccountStore:
    """Read and change users, tokens, projects and memberships."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db or get_database()

    # -- users --------------------------------------------------------------------
    def add_user(self, name: str, admin: bool = False, oidc_subject: str | None = None) -> dict:
        if not _USER_NAME.match(name or ""):
            raise TwinError(
                f"invalid user name {name!r}",
                hint="1-64 letters, digits or . _ @ + -, starting with a letter or digit",
            )
        row = {"name": name, "admin": admin, "created_at": utcnow(), "oidc_subject": oidc_subject}
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(users).values(disabled=False, **row))
        except IntegrityError:
            raise StateError(f"user {name!r} already exists") from None
        return self.user(name)

    def user(self, name: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no user {name!r}", hint="`twin users list` shows them")
        return _public_user(dict(row._mapping))

    def users(self) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.name))
            return [_public_user(dict(r._mapping)) for r in rows]

    def has_users(self) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(select(users.c.name).limit(1)).first() is not None

    # -- tokens -------------------------------------------------------------------
    def create_token(
        self,
        user: str,
        name: str = "token",
        scopes: list[str] | tuple[str, ...] = ("read", "run"),
        expires_days: float | None = None,
        not_after: dt.datetime | None = None,
    ) -> tuple[dict[str, Any], str]:
        """A new token for ``user``: ``(its record, the secret shown once)``; it expires
        after ``expires_days`` and never after ``not_after`` (its maker's expiry)."""
        account = self.user(user)
        scopes = sorted(set(scopes))
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise TwinError(
                f"unknown scope(s): {', '.join(unknown) or '(none given)'}",
                hint="scopes are: " + ", ".join(SCOPES),
            )
        if "admin" in scopes and not account["admin"]:
            raise ForbiddenError(f"user {user!r} is not an admin; an admin token needs one")
        if expires_days is not None and not 0 < expires_days <= 3650:
            raise TwinError("expires_days must be between 0 and 3650")
        secret = "twin_" + secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + dt.timedelta(days=expires_days) if expires_days else None
        if not_after is not None:
            limit = _aware(not_after)
            if limit <= now:
                raise AuthError("the token making this one has expired", hint="create a new one")
            expires = limit if expires is None else min(expires, limit)
        row = {
            "id": new_id(),
            "user_name": user,
            "name": (name or "token")[:255],
            "hash": hash_token(secret),
            "scopes": scopes,
            "created_at": now,
            "expires_at": expires,
        }
        with self.db.engine.begin() as conn:
            conn.execute(insert(tokens).values(**row))
        return _public_token(row), secret

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        query = select(tokens).order_by(tokens.c.created_at.desc())
        if user is not None:
            query = query.where(tokens.c.user_name == user)
        with self.db.engine.connect() as conn:
            return [_public_token(dict(r._mapping)) for r in conn.execute(query)]

    def revoke_token(self, token_id: str, by: Principal | None = None) -> None:
        with self.db.engine.begin() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
            if row is None or (by is not None and not _may_manage(by, row.user_name)):
                raise NotFoundError(f"no token {token_id!r}", hint="`twin tokens list`")
            conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )

    def authenticate(self, secret: str) -> Principal:
        """The principal of an API token, or AuthError saying why it is not accepted."""
        if not secret.startswith("twin_"):
            raise AuthError("unknown token", hint="API tokens start with twin_")
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(tokens, users.c.admin, users.c.disabled)
                .join(users, users.c.name == tokens.c.user_name)
                .where(tokens.c.hash == hash_token(secret))
            ).first()
        if row is None:
            raise AuthError("unknown token", hint="create one with `twin tokens create`")
        now = utcnow()
        if row.revoked_at is not None:
            raise AuthError("this token was revoked")
        expires = _aware(row.expires_at)
        if expires is not None and expires <= now:
            raise AuthError("this token has expired", hint="create a new one")
        if row.disabled:
            raise AuthError(f"user {row.user_name!r} is disabled")
        last = _aware(row.last_used_at)
        if last is None or now - last > _LAST_USED_EVERY:
            with self.db.engine.begin() as conn:
                conn.execute(update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
        return Principal(
            user=row.user_name,
            admin=bool(row.admin),
            scopes=frozenset(row.scopes or ()),
            roles=self.roles_of(row.user_name),
            token_id=row.id,
            expires_at=expires,
        )

    def principal_for(
        self, user: str, scopes: frozenset[str], kind: str, expires_at: dt.datetime | None = None
    ) -> Principal:
        account = self.user(user)
        if account["disabled"]:
            raise AuthError(f"user {user!r} is disabled")
        if not account["admin"]:
            scopes = scopes - {"admin"}
        roles = self.roles_of(user)
        return Principal(user, account["admin"], scopes, roles, None, kind, expires_at)

    def oidc_principal(self, claims: dict[str, Any], scopes: frozenset[str]) -> Principal:
        """The user of a verified OIDC token (created on first sign-in)."""
        subject = str(claims.get("sub") or "")
        name = str(claims.get("preferred_username") or subject)
        name = re.sub(r"[^A-Za-z0-9._@+-]", "_", name)[:64]
        if not subject or not name:
            raise AuthError("the OIDC token names no subject (sub)")
        with self.db.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            try:
                self.add_user(name, oidc_subject=subject)
            except StateError:
                pass  # another request created it just now
        elif row.oidc_subject != subject:
            raise AuthError(f"user {name!r} exists and is not linked to this OIDC identity")
        exp = claims.get("exp")
        expires = dt.datetime.fromtimestamp(exp, dt.UTC) if isinstance(exp, (int, float)) else None
        return self.principal_for(name, scopes, "oidc", expires)

    # -- projects -----------------------------------------------------------------
    def create_project(self, name: str, owner: str | None, description: str | None = None) -> dict:
        if not _PROJECT_NAME.match(name or ""):
            raise TwinError(
                f"invalid project name {name!r}",
                hint="1-64 lower-case letters, digits, _ or -, starting with a letter or digit",
            )
        try:
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(projects).values(name=name, description=description, created_at=utcnow())
                )
                if owner:
                    conn.execute(
                        insert(memberships).values(project=name, user_name=owner, role="owner")
                    )
        except IntegrityError:
            raise StateError(f"project {name!r} already exists") from None
        return self.project(name)

    def project(self, name: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(projects).where(projects.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no project {name!r}")
            members = conn.execute(
                select(memberships.c.user_name, memberships.c.role)
                .where(memberships.c.project == name)
                .order_by(memberships.c.user_name)
            )
            item = dict(row._mapping)
            item["members"] = [{"user": m.user_name, "role": m.role} for m in members]
        return item

    def projects(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            query = select(projects.c.name).order_by(projects.c.name)
            if names is not None:
                query = query.where(projects.c.name.in_(names))
            found = [r.name for r in conn.execute(query)]
        return [self.project(name) for name in found]

    def roles_of(self, user: str) -> dict[str, str]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(memberships.c.project, memberships.c.role).where(
                    memberships.c.user_name == user
                )
            )
            return {r.project: r.role for r in rows}

    def set_member(self, project: str, user: str, role: str) -> dict[str, str]:
        if role not in ROLES:
            raise TwinError(f"unknown role {role!r}", hint="roles are: " + ", ".join(ROLES))
        self.project(project)
        self.user(user)
        with self.db.engine.begin() as conn:
            conn.execute(
                delete(memberships).where(
                    memberships.c.project == project, memberships.c.user_name == user
                )
            )
            conn.execute(insert(memberships).values(project=project, user_name=user, role=role))
        return {"project": project, "user": user, "role": role}

    def remove_member(self, project: str, user: str) -> None:
        with self.db.engine.begin() as conn:
            gone = conn.execute(
                delete(memberships).where(
                    memberships.c.project == project, memberships.c.user_name == user
                )
            )
        if not gone.rowcount:
            raise NotFoundError(f"user {user!r} is not a member of project {project!r}")

    # -- first start ----------------------------------------------------------------
    def bootstrap(self) -> str | None:
        """On an empty database: user ``admin``, project ``default``, and an admin token
        (returned, to be shown once). ``None`` when users already exist."""
        if self.has_users():
            return None
        try:
            self.add_user("admin", admin=True)
        except StateError:
            return None  # another process bootstrapped at the same moment
        try:
            self.create_project(DEFAULT_PROJECT, "admin", "the default project")
        except StateError:
            self.set_member(DEFAULT_PROJECT, "admin", "owner")
        _, secret = self.create_token("admin", "first-start admin token", SCOPES)
        return secret


def _may_manage(by: Principal, owner: str) -> bool:
    return by.user == owner or by.is_admin


def _public_user(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "admin": bool(row["admin"]),
        "created_at": _aware(row["created_at"]),
        "oidc": row.get("oidc_subject") is not None,
        "disabled": bool(row.get("disabled")),
    }


def _public_token(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "user": row["user_name"],
        "scopes": list(row["scopes"]),
        "created_at": _aware(row["created_at"]),
        "expires_at": _aware(row.get("expires_at")),
        "revoked_at": _aware(row.get("revoked_at")),
        "last_used_at": _aware(row.get("last_used_at")),
    }
