"""``twin serve``, ``twin users``, ``twin tokens`` and ``twin projects``: the server and
who may use it (run on the server's machine, against its database)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors

users_app = typer.Typer(help="Users of twin serve.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
projects_app = typer.Typer(help="Projects and their members.", no_args_is_help=True)
console = LazyConsole(highlight=False)


def _accounts() -> Any:
    from twinengine.api import AccountStore

    return AccountStore()


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8321,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Start the REST API, the web UI and the run dispatcher in one process."""
    from twinengine.api import serve as run_server

    run_server(host=host, port=port, log_level=log_level)


@users_app.command("add")
@handle_errors
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    admin: Annotated[bool, typer.Option("--admin", help="May manage users and projects.")] = False,
    project: Annotated[
        list[str] | None, typer.Option(help="Add to this project (repeat), as --role.")
    ] = None,
    role: Annotated[str, typer.Option(help="viewer, editor or owner.")] = "editor",
) -> None:
    """Create a user (and add them to projects)."""
    accounts = _accounts()
    accounts.add_user(name, admin=admin)
    for item in project or []:
        accounts.set_member(item, name, role)
    console.print(f"user {name} created" + (" (admin)" if admin else ""))


@users_app.command("list")
@handle_errors
def users_list() -> None:
    """List users."""
    accounts = _accounts()
    for user in accounts.users():
        roles = ", ".join(f"{p}:{r}" for p, r in sorted(accounts.roles_of(user["name"]).items()))
        flag = " admin" if user["admin"] else ""
        console.print(f"{user['name']}{flag}  {roles or '(no projects)'}")


@tokens_app.command("create")
@handle_errors
def tokens_create(
    user: Annotated[str, typer.Option(help="Whose token.")] = "admin",
    scope: Annotated[
        list[str] | None, typer.Option(help="read, run or admin (repeat); default read+run.")
    ] = None,
    name: Annotated[str, typer.Option(help="A label to recognise it by.")] = "cli",
    expires_days: Annotated[float | None, typer.Option(help="Expires after N days.")] = None,
) -> None:
    """Create an API token and print it (it is shown only this once)."""
    record, secret = _accounts().create_token(user, name, scope or ["read", "run"], expires_days)
    console.print(f"token {record['id']} for {user} ({', '.join(record['scopes'])}):")
    print(secret)


@tokens_app.command("list")
@handle_errors
def tokens_list(user: Annotated[str | None, typer.Option(help="Only this user's.")] = None) -> None:
    """List tokens (never their secrets)."""
    for tok in _accounts().tokens(user):
        state = "revoked" if tok["revoked_at"] else "active"
        console.print(
            f"{tok['id']}  {tok['user']:<12} {','.join(tok['scopes']):<16} {state:<8} {tok['name']}"
        )


@tokens_app.command("revoke")
@handle_errors
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token: it stops working at once."""
    _accounts().revoke_token(token_id)
    console.print(f"token {token_id} revoked")


@projects_app.command("create")
@handle_errors
def projects_create(
    name: Annotated[str, typer.Argument(help="Project name.")],
    owner: Annotated[str, typer.Option(help="Its first owner.")] = "admin",
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
) -> None:
    """Create a project."""
    _accounts().create_project(name, owner, description)
    console.print(f"project {name} created (owner {owner})")


@projects_app.command("add-member")
@handle_errors
def projects_add_member(
    project: Annotated[str, typer.Argument(help="Project name.")],
    user: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="viewer, editor or owner.")] = "editor",
) -> None:
    """Add a user to a project, or change their role."""
    _accounts().set_member(project, user, role)
    console.print(f"{user} is {role} of {project}")


@projects_app.command("list")
@handle_errors
def projects_list() -> None:
    """List projects and members."""
    for item in _accounts().projects():
        members = ", ".join(f"{m['user']}:{m['role']}" for m in item["members"])
        console.print(f"{item['name']}  {members or '(no members)'}")
