"""Settings: defaults, twin.toml discovery and validation, environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import twinengine.core
from twinengine.core import ConfigError, Settings, TwinError, load_settings


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ---------------------------------------------------------------------------


def test_defaults_live_under_twin_home(twin_home: Path) -> None:
    settings = load_settings()
    assert settings.home == twin_home.resolve()
    assert settings.database_url == f"sqlite:///{twin_home.resolve() / 'twin.db'}"
    assert settings.store == str(twin_home.resolve() / "store")
    assert settings.executor == "local"
    assert settings.cores == (os.cpu_count() or 1)
    assert settings.ram_mb == 0
    assert settings.dask_address is None
    assert settings.config_file is None
    assert settings.runs_dir == settings.home / "runs"


def test_home_defaults_to_dot_twinengine_in_user_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.delenv("TWIN_HOME")
    monkeypatch.setenv("HOME", str(user))
    assert load_settings().home == (user / ".twinengine").resolve()


def test_empty_twin_home_means_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("TWIN_HOME", "")
    monkeypatch.setenv("HOME", str(user))
    assert load_settings().home == (user / ".twinengine").resolve()


def test_twin_home_is_expanded_and_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user"
    (user / "elsewhere").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("TWIN_HOME", "~/elsewhere/../elsewhere")
    settings = load_settings()
    assert settings.home == (user / "elsewhere").resolve()
    assert settings.home.is_absolute()


def test_relative_twin_home_resolves_against_cwd(twin_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_HOME", "rel-home")
    assert load_settings().home == (twin_home / "rel-home").resolve()


# --- environment --------------------------------------------------------------------------


def test_environment_variables(twin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://db.example/twin")
    monkeypatch.setenv("TWIN_STORE", "s3://bucket/twin")
    monkeypatch.setenv("TWIN_EXECUTOR", "dask")
    monkeypatch.setenv("TWIN_CORES", "3")
    monkeypatch.setenv("TWIN_RAM_MB", "2048")
    monkeypatch.setenv("TWIN_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    settings = load_settings()
    assert settings.home == twin_home.resolve()
    assert settings.database_url == "postgresql://db.example/twin"
    assert settings.store == "s3://bucket/twin"
    assert settings.executor == "dask"
    assert settings.cores == 3
    assert settings.ram_mb == 2048
    assert settings.dask_address == "tcp://127.0.0.1:8786"


def test_twin_home_moves_database_and_store(tmp_path: Path, monkeypatch) -> None:
    other = tmp_path / "other-home"
    monkeypatch.setenv("TWIN_HOME", str(other))
    settings = load_settings()
    assert settings.home == other.resolve()
    assert settings.database_url == f"sqlite:///{other.resolve() / 'twin.db'}"
    assert settings.store == str(other.resolve() / "store")


@pytest.mark.parametrize("name", ["TWIN_DATABASE_URL", "TWIN_STORE", "TWIN_EXECUTOR"])
def test_empty_string_environment_variable_is_ignored(name: str, monkeypatch) -> None:
    monkeypatch.setenv(name, "")
    default = load_settings()
    monkeypatch.delenv(name)
    assert default == load_settings()


@pytest.mark.parametrize("name", ["TWIN_CORES", "TWIN_RAM_MB"])
@pytest.mark.parametrize("raw", ["many", "1.5", "4 cores", "0x10"])
def test_non_integer_environment_variable_is_a_config_error(name: str, raw: str, monkeypatch):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert name in message
    assert repr(raw) in message
    assert "whole number" in message


@pytest.mark.parametrize("name", ["TWIN_CORES", "TWIN_RAM_MB"])
def test_negative_environment_integer_is_a_config_error(name: str, monkeypatch) -> None:
    monkeypatch.setenv(name, "-2")
    with pytest.raises(ConfigError, match=rf"{name} must not be negative, got -2"):
        load_settings()


@pytest.mark.parametrize("name", ["TWIN_CORES", "TWIN_RAM_MB"])
def test_empty_integer_environment_variable_is_ignored(name: str, monkeypatch) -> None:
    monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.cores == (os.cpu_count() or 1)
    assert settings.ram_mb == 0


def test_integer_environment_variables_accept_surrounding_spaces(monkeypatch) -> None:
    monkeypatch.setenv("TWIN_CORES", " 2 ")
    assert load_settings().cores == 2


def test_config_error_is_a_twin_error() -> None:
    assert issubclass(ConfigError, TwinError)
    assert ConfigError.exit_code == 1
    assert ConfigError.http_status == 400


# --- twin.toml discovery ----------------------------------------------------------------


def test_twin_toml_in_cwd(twin_home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    path = write_toml(twin_home / "twin.toml", 'executor = "dask"\ncores = 5\n')
    settings = load_settings()
    assert settings.executor == "dask"
    assert settings.cores == 5
    assert settings.config_file == path


def test_twin_toml_in_twin_home(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TWIN_HOME", str(home))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # somewhere without a twin.toml
    path = write_toml(home / "twin.toml", 'executor = "dask"\nram_mb = 512\n')
    settings = load_settings()
    assert settings.executor == "dask"
    assert settings.ram_mb == 512
    assert settings.config_file == path


def test_cwd_twin_toml_wins_over_the_one_in_twin_home(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    monkeypatch.setenv("TWIN_HOME", str(home))
    monkeypatch.chdir(write_toml(work / "twin.toml", 'executor = "from-cwd"\n').parent)
    write_toml(home / "twin.toml", 'executor = "from-home"\ncores = 7\n')
    settings = load_settings()
    assert settings.executor == "from-cwd"
    assert settings.config_file == work / "twin.toml"
    assert settings.cores == (os.cpu_count() or 1)  # files are not merged


def test_twin_config_wins_over_cwd_and_home(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TWIN_HOME", str(home))
    write_toml(home / "twin.toml", 'executor = "from-home"\n')
    write_toml(tmp_path / "twin.toml", 'executor = "from-cwd"\n')
    explicit = write_toml(tmp_path / "conf" / "mine.toml", 'executor = "from-twin-config"\n')
    monkeypatch.setenv("TWIN_CONFIG", str(explicit))
    settings = load_settings()
    assert settings.executor == "from-twin-config"
    assert settings.config_file == explicit


def test_twin_config_is_expanded(tmp_path: Path, monkeypatch) -> None:
    user = tmp_path / "user"
    explicit = write_toml(user / "cfg.toml", "cores = 2\n")
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("TWIN_CONFIG", "~/cfg.toml")
    settings = load_settings()
    assert settings.cores == 2
    assert settings.config_file == explicit


def test_twin_config_pointing_at_a_missing_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TWIN_CONFIG" in info.value.message
    assert str(tmp_path / "nope.toml") in info.value.message
    assert "not a file" in info.value.message
    assert info.value.hint and "TWIN_CONFIG" in info.value.hint


def test_twin_config_pointing_at_a_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_twin_toml_directory_in_cwd_is_not_a_config_file(twin_home: Path) -> None:
    (twin_home / "twin.toml").mkdir()
    assert load_settings().config_file is None


# --- twin.toml contents -----------------------------------------------------------------

ALL_KEYS_TOML = """
home = "{home}"
database_url = "postgresql://db/twin"
store = "memory://twin"
executor = "dask"
cores = 6
ram_mb = 4096
dask_address = "tcp://scheduler:8786"
"""


@pytest.mark.parametrize("section", [False, True], ids=["top-level", "twinengine-section"])
def test_every_key_from_toml(section: bool, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TWIN_HOME")
    home = tmp_path / "toml-home"
    body = ALL_KEYS_TOML.format(home=home)
    write_toml(tmp_path / "twin.toml", ("[twinengine]\n" if section else "") + body)
    settings = load_settings()
    assert settings == Settings(
        home=home.resolve(),
        database_url="postgresql://db/twin",
        store="memory://twin",
        executor="dask",
        cores=6,
        ram_mb=4096,
        dask_address="tcp://scheduler:8786",
        config_file=tmp_path / "twin.toml",
    )


def test_home_from_toml_moves_default_database_and_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TWIN_HOME")
    write_toml(tmp_path / "twin.toml", f'home = "{tmp_path / "h"}"\n')
    settings = load_settings()
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'h').resolve() / 'twin.db'}"
    assert settings.store == str((tmp_path / "h").resolve() / "store")


def test_home_in_toml_is_expanded(tmp_path: Path, monkeypatch) -> None:
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.delenv("TWIN_HOME")
    monkeypatch.setenv("HOME", str(user))
    write_toml(tmp_path / "twin.toml", 'home = "~/twin-data"\n')
    assert load_settings().home == (user / "twin-data").resolve()


def test_twinengine_section_ignores_other_tables(tmp_path: Path) -> None:
    write_toml(
        tmp_path / "twin.toml",
        '[project]\nname = "x"\n\n[twinengine]\nexecutor = "dask"\n\n[tool.other]\nfoo = 1\n',
    )
    assert load_settings().executor == "dask"


def test_empty_twin_toml_gives_defaults(tmp_path: Path) -> None:
    write_toml(tmp_path / "twin.toml", "# nothing yet\n")
    settings = load_settings()
    assert settings.executor == "local"
    assert settings.config_file == tmp_path / "twin.toml"


def test_empty_twinengine_section_gives_defaults(tmp_path: Path) -> None:
    write_toml(tmp_path / "twin.toml", "[twinengine]\n")
    assert load_settings().executor == "local"


@pytest.mark.parametrize("section", [False, True], ids=["top-level", "twinengine-section"])
def test_unknown_key_is_a_config_error(section: bool, tmp_path: Path) -> None:
    path = write_toml(
        tmp_path / "twin.toml", ("[twinengine]\n" if section else "") + 'databse_url = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    error = info.value
    assert "unknown setting 'databse_url'" in error.message
    assert str(path) in error.message
    assert error.hint is not None
    for key in ("database_url", "store", "executor", "cores", "ram_mb", "home", "dask_address"):
        assert key in error.hint
    assert "hint:" in str(error)


def test_unknown_top_level_table_is_a_config_error(tmp_path: Path) -> None:
    write_toml(tmp_path / "twin.toml", "[database]\nurl = 'sqlite://'\n")
    with pytest.raises(ConfigError, match="unknown setting 'database'"):
        load_settings()


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ("cores = '4'", "cores", "int"),
        ("cores = 2.5", "cores", "int"),
        ("cores = true", "cores", "int"),
        ("ram_mb = false", "ram_mb", "int"),
        ("ram_mb = [1024]", "ram_mb", "int"),
        ("store = 5", "store", "str"),
        ("database_url = true", "database_url", "str"),
        ("executor = ['local']", "executor", "str"),
        ("home = {path = '/x'}", "home", "str"),
        ("dask_address = 8786", "dask_address", "str"),
    ],
)
def test_wrong_type_is_a_config_error(line: str, key: str, expected: str, tmp_path: Path) -> None:
    path = write_toml(tmp_path / "twin.toml", f"[twinengine]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = info.value.message
    assert f"setting {key!r}" in message
    assert str(path) in message
    assert f"must be a {expected}" in message


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "twin.toml", "cores = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "cannot read settings file" in info.value.message
    assert str(path) in info.value.message


def test_undecodable_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "twin.toml").write_bytes(b'executor = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings()


def test_twinengine_key_that_is_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    write_toml(tmp_path / "twin.toml", 'twinengine = "yes"\n')
    with pytest.raises(ConfigError):
        load_settings()


@pytest.mark.parametrize("key", ["cores", "ram_mb"])
def test_negative_integer_in_toml_is_a_config_error(key: str, tmp_path: Path) -> None:
    write_toml(tmp_path / "twin.toml", f"{key} = -4\n")
    with pytest.raises(ConfigError):
        load_settings()


# --- environment wins over twin.toml ------------------------------------------------------


def test_environment_wins_over_toml(tmp_path: Path, monkeypatch) -> None:
    write_toml(
        tmp_path / "twin.toml",
        "[twinengine]\n" + ALL_KEYS_TOML.format(home=tmp_path / "toml-home"),
    )
    env_home = tmp_path / "env-home"
    monkeypatch.setenv("TWIN_HOME", str(env_home))
    monkeypatch.setenv("TWIN_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("TWIN_STORE", "/env/store")
    monkeypatch.setenv("TWIN_EXECUTOR", "local")
    monkeypatch.setenv("TWIN_CORES", "1")
    monkeypatch.setenv("TWIN_RAM_MB", "128")
    monkeypatch.setenv("TWIN_DASK_ADDRESS", "tcp://env:1")
    settings = load_settings()
    assert settings.home == env_home.resolve()
    assert settings.database_url == "sqlite:///env.db"
    assert settings.store == "/env/store"
    assert settings.executor == "local"
    assert settings.cores == 1
    assert settings.ram_mb == 128
    assert settings.dask_address == "tcp://env:1"
    assert settings.config_file == tmp_path / "twin.toml"


def test_toml_fills_what_the_environment_leaves_out(tmp_path: Path, monkeypatch) -> None:
    write_toml(tmp_path / "twin.toml", 'executor = "dask"\ncores = 9\n')
    monkeypatch.setenv("TWIN_CORES", "2")
    settings = load_settings()
    assert settings.cores == 2
    assert settings.executor == "dask"


def test_twin_home_env_wins_over_home_in_toml_for_defaults(tmp_path: Path, monkeypatch) -> None:
    write_toml(tmp_path / "twin.toml", f'home = "{tmp_path / "toml-home"}"\n')
    env_home = tmp_path / "env-home"
    monkeypatch.setenv("TWIN_HOME", str(env_home))
    settings = load_settings()
    assert settings.home == env_home.resolve()
    assert settings.database_url.endswith(str(env_home.resolve() / "twin.db"))


def test_zero_ram_mb_in_environment_wins_over_toml(tmp_path: Path, monkeypatch) -> None:
    write_toml(tmp_path / "twin.toml", "ram_mb = 4096\n")
    monkeypatch.setenv("TWIN_RAM_MB", "0")  # documented: 0 means all physical memory
    assert load_settings().ram_mb == 0


# --- Settings object and process-wide cache ------------------------------------------------


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(AttributeError):
        settings.cores = 99  # type: ignore[misc]


def test_with_overrides_ignores_none() -> None:
    settings = load_settings()
    changed = settings.with_overrides(executor="dask", cores=None, ram_mb=100)
    assert changed.executor == "dask"
    assert changed.ram_mb == 100
    assert changed.cores == settings.cores
    assert settings.executor == "local"  # the original is untouched


def test_with_overrides_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError):
        load_settings().with_overrides(colour="blue")


def test_get_settings_is_cached_until_reset(tmp_path: Path, monkeypatch) -> None:
    first = twinengine.core.get_settings()
    monkeypatch.setenv("TWIN_EXECUTOR", "dask")
    assert twinengine.core.get_settings() is first
    twinengine.core.reset()
    assert twinengine.core.get_settings().executor == "dask"


def test_get_store_and_database_follow_settings(twin_home: Path) -> None:
    store = twinengine.core.get_store()
    assert store.is_local
    assert store.url == str(twin_home.resolve() / "store")
    db = twinengine.core.get_database()
    assert db.is_sqlite
    assert (twin_home / "twin.db").is_file()


def test_get_store_and_database_accept_explicit_settings(tmp_path: Path) -> None:
    settings = load_settings().with_overrides(
        store=str(tmp_path / "s2"), database_url=f"sqlite:///{tmp_path / 'x' / 'other.db'}"
    )
    assert twinengine.core.get_store(settings).url == str(tmp_path / "s2")
    twinengine.core.get_database(settings)
    assert (tmp_path / "x" / "other.db").is_file()
    assert not (tmp_path / "twin.db").exists()
