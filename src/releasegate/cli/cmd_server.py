"""``serve`` (the team server) and ``token create|list|revoke`` (its API tokens).

A token's secret is printed once, by ``token create``, and stored only hashed; ``list``
and ``revoke`` never show it. Creating and revoking are audited. Exit codes: 0 done,
1 refused (a name already active, a token already revoked), 2 bad input (an unknown
role, a bad name, no such token): nothing written.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from releasegate.cli._common import JsonOpt, app, command, console, emit, token_app
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import server


@command(app, served=None)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port.")] = 1,
    max_body: Annotated[
        int, typer.Option("--max-body", metavar="BYTES", help="Largest request body (413 above).")
    ] = 16 * 1024 * 1024,
    token_ttl: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="How long a checked token is remembered."),
    ] = 5.0,
    resolve_ttl: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="How long a resolved version is served from memory."),
    ] = 1.0,
    access_log: Annotated[
        bool,
        typer.Option("--access-log/--no-access-log", help="Log one line per request on stdout."),
    ] = True,
    log_format: Annotated[
        str,
        typer.Option(metavar="text|json", help="Log lines as text, or as one JSON object each."),
    ] = "text",
    log_level: Annotated[
        str, typer.Option(metavar="debug|info|warning|error", help="The least severe logged.")
    ] = "info",
    graceful_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            help="On SIGTERM/SIGINT, how long requests in flight may take to finish.",
        ),
    ] = 30.0,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            metavar="IPS",
            help="Proxies whose X-Forwarded-For is believed (comma-separated, or '*').",
        ),
    ] = None,
    allow_python: Annotated[
        str,
        typer.Option(
            metavar="MODULES",
            help="Packages whose code a workflow or suite sent to the server may run "
            "(comma-separated, or '*'); none by default.",
        ),
    ] = "",
    allow_model_host: Annotated[
        str,
        typer.Option(
            metavar="HOSTS",
            help="Hosts a sent workflow or suite may name in a model's base_url "
            "(comma-separated, or '*'); none by default.",
        ),
    ] = "",
    allow_key_env: Annotated[
        str,
        typer.Option(
            metavar="NAMES",
            help="Environment variables a sent document may name as api_key_env "
            "(comma-separated patterns).",
        ),
    ] = "*_API_KEY",
    oidc_client_id: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            envvar="RELEASEGATE_OIDC_CLIENT_ID",
            help="The dashboard's client id at the identity provider: turns on its "
            "'Sign in with' button (its secret only from RELEASEGATE_OIDC_CLIENT_SECRET).",
        ),
    ] = None,
    oidc_redirect_base: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            envvar="RELEASEGATE_OIDC_REDIRECT_BASE",
            help="This server's address as browsers reach it; the provider sends them back "
            "to URL/web/login/callback.",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn) over this project's store."""
    import os

    from releasegate.errors import InputError
    from releasegate.server.app import Settings
    from releasegate.server.oidc import OidcConfig
    from releasegate.server.run import Launch
    from releasegate.server.run import serve as run

    launch = Launch(
        host,
        port,
        workers,
        log_format,
        log_level,
        access_log,
        graceful_timeout,
        forwarded_allow_ips,
    )
    launch.check()
    if max_body < 1:
        raise InputError("must be at least 1 byte", field="--max-body")
    if token_ttl < 0 or resolve_ttl < 0:
        raise InputError("a TTL cannot be negative", field="--token-ttl/--resolve-ttl")
    for name, value in (("CLIENT_ID", oidc_client_id), ("REDIRECT_BASE", oidc_redirect_base)):
        if value:  # the app (and each worker) reads the provider's settings from the environment
            os.environ[f"RELEASEGATE_OIDC_{name}"] = value
    OidcConfig.from_env()  # a half-configured provider: exit 2 before listening
    store(create=False).close()  # no store, or an outdated schema: say so before listening
    if log_format == "text":  # a JSON log has only JSON lines: uvicorn's say where it listens
        print(
            f"releasegate serve: http://{host}:{port} (docs at /docs, {workers} worker(s))",
            file=sys.stderr,
        )
    settings = Settings(
        max_body,
        token_ttl,
        resolve_ttl,
        allow_python=allow_python,
        allow_model_hosts=allow_model_host,
        allow_key_envs=allow_key_env,
    )
    run(launch, settings)


@command(token_app, "create", served=True)
def token_create(
    name: Annotated[str, typer.Option(help="Who the token acts as (an approver's name).")],
    role: Annotated[str, typer.Option(help="viewer, builder, operator, approver or admin.")],
    as_json: JsonOpt = False,
) -> None:
    """Create an API token; its secret is shown this once and stored only hashed."""
    if (srv := server()) is not None:
        created = srv.post("v1", "tokens", body={"name": name, "role": role})
    else:
        from releasegate.release.tokens import create_token

        created = create_token(store(create=False), name, role).to_dict()
    if as_json:
        emit(created)
        return
    sys.stdout.write(created["token"] + "\n")
    console(stderr=True).print(
        f"token {created['token_id']} for {created['name']} ({created['role']}): keep it now, "
        "it is not shown again",
        markup=False,
    )


@command(token_app, "list", served=True)
def token_list(
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked tokens.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (never their secrets)."""
    if (srv := server()) is not None:
        tokens = srv.get("v1", "tokens", revoked=revoked)
    else:
        from releasegate.release.tokens import list_tokens

        tokens = [t.to_dict() for t in list_tokens(store(create=False), include_revoked=revoked)]
    if as_json:
        emit(tokens)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("id", "name", "role", "created", "by", "revoked"):
        table.add_column(col, no_wrap=True)
    for t in tokens:
        cells = (
            t["token_id"],
            t["name"],
            t["role"],
            t["created_at"][:19].replace("T", " "),
            t["created_by"],
            (t["revoked_at"] or "")[:19].replace("T", " "),
        )
        table.add_row(*(Text(c) for c in cells))  # names are the users' words, never markup
    console().print(table)


@command(token_app, "revoke", served=True)
def token_revoke(
    token: Annotated[str, typer.Argument(metavar="TOKEN", help="The token's name or id.")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API token: the server refuses it from then on."""
    if (srv := server()) is not None:
        done = srv.delete("v1", "tokens", token)
    else:
        from releasegate.release.tokens import revoke_token

        done = revoke_token(store(create=False), token).to_dict()
    if as_json:
        emit(done)
    else:
        console().print(
            f"revoked token {done['token_id']} of {done['name']} ({done['role']})", markup=False
        )
