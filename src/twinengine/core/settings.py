"""Settings: where TwinEngine keeps its state and how much of the machine it may use.

Values come, in increasing priority, from built-in defaults, a ``twin.toml`` file
(``$TWIN_CONFIG``, else ``./twin.toml``, else ``$TWIN_HOME/twin.toml``) and environment
variables (``TWIN_HOME``, ``TWIN_DATABASE_URL``, ``TWIN_STORE``, ``TWIN_EXECUTOR``,
``TWIN_CORES``, ``TWIN_RAM_MB``). The embedded defaults need no set-up: SQLite at
``$TWIN_HOME/twin.db`` and a local object store at ``$TWIN_HOME/store``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twinengine.core.errors import ConfigError

#: the user ids sandboxes of a root server run as by default: one per running sandbox,
#: in a block that no account, no subordinate-id range of useradd (100000-600100000) and
#: no systemd range uses
SANDBOX_UIDS = (2000000000, 2000065535)

_TOML_KEYS = {
    "home": str,
    "database_url": str,
    "store": str,
    "executor": str,
    "cores": int,
    "ram_mb": int,
    "dask_address": str,
    "max_upload_mb": int,
    "max_request_kb": int,
    "max_prov_mb": int,
    "max_runs": int,
    "oidc_issuer": str,
    "oidc_audience": str,
    "oidc_jwks_url": str,
    "oidc_scopes": str,
    "input_roots": str,
    "fetch_hosts": str,
    "fetch_timeout": int,
    "watch_roots": str,
    "event_queue": str,
    "sandbox": str,
    "sandbox_user": str,
    "sandbox_network": str,
    "sandbox_network_deny": str,
    "sandbox_uids": str,
    "sandbox_processes": int,
    "sandbox_memory_mb": int,
    "sandbox_file_mb": int,
    "sandbox_tmp_mb": int,
    "sandbox_output_mb": int,
    "sandbox_output_files": int,
    "secret_key_file": str,
    "mlflow_access": str,
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one TwinEngine process."""

    home: Path
    database_url: str
    store: str
    executor: str = "local"
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    ram_mb: int = 0  # 0: all physical memory
    dask_address: str | None = None
    config_file: Path | None = None
    max_upload_mb: int = 100  # twin serve: largest upload accepted
    max_request_kb: int = 1024  # twin serve: largest body of a route that takes no files
    max_prov_mb: int = 16  # twin serve: largest PROV document accepted
    max_runs: int = 0  # twin serve: runs executing at once (0: as many as cores)
    oidc_issuer: str | None = None  # accept OIDC bearer tokens from this issuer
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None  # default: from the issuer's discovery document
    oidc_scopes: tuple[str, ...] = ("read", "run")  # what an OIDC user's token may do
    input_roots: tuple[Path, ...] = ()  # server folders API users may name as inputs
    fetch_hosts: tuple[str, ...] = ()  # hosts uploaded CWL documents may fetch from
    fetch_timeout: int = 10  # seconds for each URL a CWL document fetches
    watch_roots: tuple[Path, ...] = ()  # folders non-admins' folder sources may watch
    event_queue: str | None = None  # nats:// or redis:// URL backing the event queue
    sandbox: str = "auto"  # twin serve: how steps are confined (auto, bwrap, podman, none)
    sandbox_user: str = "nobody"  # twin serve as root: the user sandboxed steps run as
    sandbox_network: str = "slirp4netns"  # how network-allowed sandboxes reach out (or "host")
    sandbox_network_deny: tuple[str, ...] = ()  # IPv4 networks sandboxes never reach
    sandbox_uids: tuple[int, int] | None = SANDBOX_UIDS  # as root: one uid of these per sandbox
    sandbox_processes: int = 1024  # processes (and threads) of one sandbox (0: no limit)
    sandbox_memory_mb: int = 0  # address space of one sandboxed process (0: the machine's memory)
    sandbox_file_mb: int = 16384  # largest file a sandboxed process writes (0: no limit)
    sandbox_tmp_mb: int = 1024  # size of a sandbox's /tmp and /var/tmp (0: kernel default)
    sandbox_output_mb: int = 4096  # bytes of a sandboxed step's outputs the server reads (0: any)
    sandbox_output_files: int = 10000  # output files of one sandboxed step (0: any number)
    secret_key_file: Path | None = None  # seals stored secrets (None: $TWIN_HOME/secret.key)
    mlflow_access: str = "admins"  # twin serve: who uses /mlflow (admins, or members of a project)

    @property
    def secret_key_path(self) -> Path:
        """The file whose key seals the secrets stored in the database."""
        return self.secret_key_file or self.home / "secret.key"

    @property
    def runs_dir(self) -> Path:
        """Folder holding each run's working directories."""
        return self.home / "runs"

    def with_overrides(self, **kwargs: Any) -> Settings:
        """Return a copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})


def _find_config(home: Path) -> Path | None:
    explicit = os.environ.get("TWIN_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"TWIN_CONFIG points at {path}, which is not a file",
                hint="unset TWIN_CONFIG or point it at an existing twin.toml",
            )
        return path
    for candidate in (Path.cwd() / "twin.toml", home / "twin.toml"):
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
    section = data.get("twinengine", data)
    if not isinstance(section, dict):
        raise ConfigError(
            f"[twinengine] in {path} must be a table of settings, got {section!r}",
            hint="write it as a section: [twinengine] on its own line, then key = value lines",
        )
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key not in _TOML_KEYS:
            raise ConfigError(
                f"unknown setting {key!r} in {path}",
                hint="known settings: " + ", ".join(sorted(_TOML_KEYS)),
            )
        expected = _TOML_KEYS[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(
                f"setting {key!r} in {path} must be a {expected.__name__}, got {value!r}"
            )
        if expected is int and value < 0:
            raise ConfigError(f"setting {key!r} in {path} must not be negative, got {value}")
        values[key] = value
    return values


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _first_set(*values: int | None) -> int | None:
    """The first value that is not None (0 is a real setting, not 'unset')."""
    return next((v for v in values if v is not None), None)


SANDBOXES = ("auto", "bwrap", "podman", "none")
SANDBOX_NETWORKS = ("slirp4netns", "host")


def _sandbox_network(value: str | None) -> str:
    """The ``sandbox_network`` setting: ``slirp4netns`` (default) or ``host``."""
    choice = (value or "slirp4netns").strip().lower()
    if choice not in SANDBOX_NETWORKS:
        raise ConfigError(
            f"unknown sandbox_network {value!r}",
            hint="set TWIN_SANDBOX_NETWORK (or sandbox_network in twin.toml) to slirp4netns, or "
            "host (network-allowed steps share the server's network: unsafe on a shared server)",
        )
    return choice


def _sandbox_deny(value: str | None) -> tuple[str, ...]:
    """The ``sandbox_network_deny`` setting: comma-separated IPv4 networks (``10.0.0.0/8``)."""
    networks = []
    for item in (value or "").split(","):
        if not item.strip():
            continue
        try:
            network = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            network = None
        if not isinstance(network, ipaddress.IPv4Network):
            raise ConfigError(
                f"sandbox_network_deny: {item.strip()!r} is not an IPv4 network",
                hint="write IPv4 addresses or networks separated by commas, e.g. "
                "10.0.0.0/8,192.168.0.0/16 (sandboxes have no IPv6)",
            )
        networks.append(str(network))
    return tuple(networks)


def _sandbox_uids(value: str | None) -> tuple[int, int] | None:
    """The ``sandbox_uids`` setting: ``FIRST-LAST`` (default :data:`SANDBOX_UIDS`) or
    ``none`` (every sandbox runs as ``sandbox_user``)."""
    text = (value or "").strip().lower()
    if not text:
        return SANDBOX_UIDS
    if text in ("none", "off"):
        return None
    first, _, last = text.partition("-")
    try:
        bounds = (int(first), int(last))
    except ValueError:
        bounds = (0, -1)
    if not 0 < bounds[0] <= bounds[1] < 2**32 - 1:
        raise ConfigError(
            f"sandbox_uids must be a range FIRST-LAST of user ids above 0, got {value!r}",
            hint="e.g. sandbox_uids = 2000000000-2000065535 (ids no account uses), or none",
        )
    return bounds


def _sandbox_choice(value: str | None) -> str:
    """The ``sandbox`` setting, checked: one of :data:`SANDBOXES` (default ``auto``)."""
    choice = (value or "auto").strip().lower()
    if choice not in SANDBOXES:
        raise ConfigError(
            f"unknown sandbox {value!r}",
            hint="set TWIN_SANDBOX (or sandbox in twin.toml) to one of: " + ", ".join(SANDBOXES),
        )
    return choice


def _sandbox_limits(values: dict[str, Any]) -> dict[str, int]:
    """The sandbox's size settings that are set (environment first, then ``twin.toml``)."""
    found = {}
    for key in (
        "sandbox_processes",
        "sandbox_memory_mb",
        "sandbox_file_mb",
        "sandbox_tmp_mb",
        "sandbox_output_mb",
        "sandbox_output_files",
    ):
        value = _first_set(_env_int(f"TWIN_{key.upper()}"), values.get(key))
        if value is not None:
            found[key] = value
    return found


def _mlflow_access(value: str | None) -> str:
    """The ``mlflow_access`` setting, checked: ``admins`` (default) or ``members``."""
    choice = (value or "admins").strip().lower()
    if choice not in ("admins", "members"):
        raise ConfigError(
            f"unknown mlflow_access {value!r}",
            hint="set TWIN_MLFLOW_ACCESS (or mlflow_access in twin.toml) to admins or members",
        )
    return choice


def load_settings() -> Settings:
    """Resolve the settings from defaults, ``twin.toml`` and the environment."""
    home = Path(os.environ.get("TWIN_HOME") or "~/.twinengine").expanduser()
    config = _find_config(home)
    values = _read_toml(config) if config else {}
    if "home" in values and not os.environ.get("TWIN_HOME"):
        home = Path(values["home"]).expanduser()
    home = home.resolve()
    database_url = (
        os.environ.get("TWIN_DATABASE_URL")
        or values.get("database_url")
        or f"sqlite:///{home / 'twin.db'}"
    )
    store = os.environ.get("TWIN_STORE") or values.get("store") or str(home / "store")
    executor = os.environ.get("TWIN_EXECUTOR") or values.get("executor") or "local"
    cores = _first_set(_env_int("TWIN_CORES"), values.get("cores"))
    if not cores:  # unset or 0: every CPU of the machine
        cores = os.cpu_count() or 1
    ram_mb = _first_set(_env_int("TWIN_RAM_MB"), values.get("ram_mb")) or 0
    dask_address = os.environ.get("TWIN_DASK_ADDRESS") or values.get("dask_address")

    def text(key: str) -> str | None:
        return os.environ.get(f"TWIN_{key.upper()}") or values.get(key) or None

    max_upload_mb = _first_set(_env_int("TWIN_MAX_UPLOAD_MB"), values.get("max_upload_mb"))
    max_runs = _first_set(_env_int("TWIN_MAX_RUNS"), values.get("max_runs")) or 0
    max_request_kb = _first_set(_env_int("TWIN_MAX_REQUEST_KB"), values.get("max_request_kb"))
    max_prov_mb = _first_set(_env_int("TWIN_MAX_PROV_MB"), values.get("max_prov_mb"))
    scopes = tuple(s.strip() for s in (text("oidc_scopes") or "read,run").split(",") if s.strip())
    roots = tuple(
        Path(r).expanduser().resolve() for r in (text("input_roots") or "").split(os.pathsep) if r
    )
    return Settings(
        home=home,
        database_url=database_url,
        store=store,
        executor=executor,
        cores=cores,
        ram_mb=ram_mb,
        dask_address=dask_address,
        config_file=config,
        max_upload_mb=100 if max_upload_mb is None else max_upload_mb,
        max_request_kb=1024 if max_request_kb is None else max_request_kb,
        max_prov_mb=16 if max_prov_mb is None else max_prov_mb,
        max_runs=max_runs,
        oidc_issuer=text("oidc_issuer"),
        oidc_audience=text("oidc_audience"),
        oidc_jwks_url=text("oidc_jwks_url"),
        oidc_scopes=scopes,
        input_roots=roots,
        fetch_hosts=tuple(h.strip() for h in (text("fetch_hosts") or "").split(",") if h.strip()),
        fetch_timeout=_first_set(_env_int("TWIN_FETCH_TIMEOUT"), values.get("fetch_timeout")) or 10,
        watch_roots=tuple(
            Path(r).expanduser().resolve()
            for r in (text("watch_roots") or "").split(os.pathsep)
            if r
        ),
        event_queue=text("event_queue"),
        sandbox=_sandbox_choice(text("sandbox")),
        sandbox_user=text("sandbox_user") or "nobody",
        sandbox_network=_sandbox_network(text("sandbox_network")),
        sandbox_network_deny=_sandbox_deny(text("sandbox_network_deny")),
        sandbox_uids=_sandbox_uids(text("sandbox_uids")),
        **_sandbox_limits(values),
        secret_key_file=Path(key_file).expanduser()
        if (key_file := text("secret_key_file"))
        else None,
        mlflow_access=_mlflow_access(text("mlflow_access")),
    )
