"""Behaviour of the core backends beyond the contract: NAME_FILE, .env parsing, secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secretkit import AccessDenied, ConfigurationError, SecretNotFound, SecretRef, SecretStore
from secretkit.backends import DotenvBackend, EnvBackend, FileBackend
from secretkit.testing import assert_no_value_in_error


def ref(scheme: str, path: str, field: str | None = None) -> SecretRef:
    return SecretRef(scheme, path, field)


def test_env_name_file_convention(tmp_path: Path) -> None:
    """NAME_FILE points to a file holding NAME; its trailing newline is stripped."""
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-held-password\n")
    backend = EnvBackend({"DB_PASSWORD_FILE": str(secret_file)})
    assert backend.fetch(ref("env", "DB_PASSWORD")).value == "file-held-password"


def test_env_name_beats_name_file(tmp_path: Path) -> None:
    """When both NAME and NAME_FILE are set, NAME wins."""
    (tmp_path / "pw").write_text("from-file")
    backend = EnvBackend({"X": "direct", "X_FILE": str(tmp_path / "pw")})
    assert backend.fetch(ref("env", "X")).value == "direct"


def test_env_name_file_pointing_nowhere_is_a_configuration_error(tmp_path: Path) -> None:
    """A NAME_FILE whose file is missing says which variable and path to fix."""
    backend = EnvBackend({"X_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigurationError, match="X_FILE"):
        backend.fetch(ref("env", "X"))


def test_dotenv_quotes_comments_export_and_interpolation(tmp_path: Path) -> None:
    """python-dotenv's syntax is honoured: quotes, comments, export, ${VAR} interpolation."""
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n"
        "export PLAIN=plain-value\n"
        'QUOTED="with spaces # not a comment"\n'
        "SINGLE='$NOT_INTERPOLATED'\n"
        "BASE=base\n"
        "DERIVED=${BASE}-derived\n"
        'MULTI="line1\\nline2"\n'
        "EMPTY=\n"
        "BARE\n"
    )
    backend = DotenvBackend(env)
    values = {
        k: backend.fetch(ref("dotenv", k)).value
        for k in ["PLAIN", "QUOTED", "SINGLE", "DERIVED", "MULTI", "EMPTY"]
    }
    assert values == {
        "PLAIN": "plain-value",
        "QUOTED": "with spaces # not a comment",
        "SINGLE": "$NOT_INTERPOLATED",
        "DERIVED": "base-derived",
        "MULTI": "line1\nline2",
        "EMPTY": "",
    }
    with pytest.raises(SecretNotFound):
        backend.fetch(ref("dotenv", "BARE"))  # a key with no '=' has no value


def test_dotenv_is_never_exported(tmp_path: Path) -> None:
    """Reading .env does not put its keys into os.environ."""
    (tmp_path / ".env").write_text("SK_NEVER_EXPORTED=x\n")
    DotenvBackend(tmp_path / ".env").fetch(ref("dotenv", "SK_NEVER_EXPORTED"))
    assert "SK_NEVER_EXPORTED" not in os.environ


def test_malformed_dotenv_names_the_file_and_line_but_not_the_content(tmp_path: Path) -> None:
    """A line python-dotenv cannot parse is an error naming file and line, without its text."""
    env = tmp_path / ".env"
    env.write_text('GOOD=1\nBROKEN="unterminated-secret-value\nLATER=2\n')
    backend = DotenvBackend(env)
    with pytest.raises(ConfigurationError, match=r"line 2") as info:
        backend.fetch(ref("dotenv", "GOOD"))
    assert str(env) in str(info.value)
    assert_no_value_in_error(info.value, "unterminated-secret-value")
    assert env.read_text().startswith("GOOD=1")  # nothing was rewritten


def test_missing_dotenv_file_means_not_found(tmp_path: Path) -> None:
    """No .env file is not an error: every key is simply absent."""
    with pytest.raises(SecretNotFound):
        DotenvBackend(tmp_path / ".env").fetch(ref("dotenv", "X"))


def test_dotenv_reference_to_another_file(tmp_path: Path) -> None:
    """dotenv://path/to/file.env#KEY reads a key of another file, relative to the backend's directory."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "prod.env").write_text("API_KEY=prod-key\n")
    (tmp_path / ".env").write_text('JSONISH={"a": "b-value"}\n')
    store = SecretStore([DotenvBackend(tmp_path / ".env")])
    assert store.get("dotenv://config/prod.env#API_KEY").reveal() == "prod-key"
    assert store.get("dotenv://JSONISH#a").reveal() == "b-value"  # a plain key: #a is a JSON field


def test_dotenv_path_is_fixed_when_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default ./.env is resolved against the working directory at construction."""
    (tmp_path / ".env").write_text("K=here\n")
    monkeypatch.chdir(tmp_path)
    backend = DotenvBackend()
    monkeypatch.chdir("/")
    assert backend.fetch(ref("dotenv", "K")).value == "here"


def test_file_backend_plain_names_and_docker_lowercase(tmp_path: Path) -> None:
    """A plain name reads <root>/<name>, falling back to the lower-case file name."""
    (tmp_path / "db_password").write_text("docker-secret\n")
    backend = FileBackend(tmp_path)
    assert backend.fetch(ref("file", "DB_PASSWORD")).value == "docker-secret"
    assert backend.fetch(ref("file", "db_password")).value == "docker-secret"


def test_file_backend_strips_only_one_newline(tmp_path: Path) -> None:
    """Exactly one trailing newline (\\n or \\r\\n) is stripped; other whitespace is kept."""
    (tmp_path / "a").write_bytes(b"value\n\n")
    (tmp_path / "b").write_bytes(b"value \r\n")
    backend = FileBackend(tmp_path)
    assert backend.fetch(ref("file", "a")).value == "value\n"
    assert backend.fetch(ref("file", "b")).value == "value "


def test_file_backend_refuses_to_walk_out_of_its_root(tmp_path: Path) -> None:
    """A plain name with a path separator or '..' is not found, never read."""
    root = tmp_path / "secrets"
    root.mkdir()
    (tmp_path / "outside").write_text("outside")
    backend = FileBackend(root)
    for name in ["../outside", "..", "sub/x"]:
        with pytest.raises(SecretNotFound):
            backend.fetch(ref("file", name))


def test_file_backend_absolute_reference_and_missing_root(tmp_path: Path) -> None:
    """file:///abs/path reads that file; a missing root means not found."""
    (tmp_path / "k").write_text("abs")
    store = SecretStore([FileBackend(tmp_path / "no-such-dir")])
    assert store.get(f"file://{tmp_path / 'k'}").reveal() == "abs"
    with pytest.raises(SecretNotFound):
        store.get("k")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_file_backend_permission_denied_is_access_denied(tmp_path: Path) -> None:
    """An unreadable file raises AccessDenied naming the path."""
    f = tmp_path / "locked"
    f.write_text("x")
    f.chmod(0)
    with pytest.raises(AccessDenied, match="locked"):
        FileBackend(tmp_path).fetch(ref("file", "locked"))
