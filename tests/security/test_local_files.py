"""Every local file goes through one bounded reader: attacks with FIFOs, devices, huge files and names.

A path may come from configuration, a reference or an environment variable, so what is
there is not trusted to be a file that ends: a FIFO blocks the reading thread until a writer
appears, ``/dev/zero`` never ends. Each test points a file-reading feature (``.env``,
secret files, SOPS files, age identities, Vault token and JWT files) at such a thing, and
the first test keeps every module but ``secretkit._localfile`` from opening a file at all.
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from secretkit import ConfigurationError, SecretNotFound, SecretRef, SecretStore
from secretkit._localfile import MAX_FILE_BYTES, UnsafeFile, read_local_bytes
from secretkit.backends import EnvBackend
from secretkit.backends.dotenv import MAX_EXPANDED, MAX_LINES, DotenvBackend
from secretkit.backends.files import FileBackend
from secretkit.backends.sops import SopsBackend, describe, is_sops_file
from secretkit.backends.vault_auth import AppRoleAuth, JwtAuth, KubernetesAuth, TokenAuth
from sops.conftest import Sops, new_age_key

SRC = Path(__file__).resolve().parents[2] / "src" / "secretkit"
READER = SRC / "_localfile.py"
# A wait this long means the call blocked: every refusal here takes milliseconds.
BLOCKED = 15.0

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")


# -- One reader, by construction ----------------------------------------------------------------

# Calls that open a local file by name. `x.open(...)` is matched on any receiver: a Path, io,
# codecs; os.open is allowed only for os.devnull (writing, never reading a file).
_READING_METHODS = {"read_text", "read_bytes", "open"}
# python-dotenv opens the path it is given unless it is handed a stream.
_DOTENV_READERS = {"dotenv_values", "load_dotenv"}


def _file_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            yield node.lineno, "open()"
        elif isinstance(func, ast.Attribute) and func.attr in _READING_METHODS:
            if func.attr == "open" and node.args and ast.unparse(node.args[0]) == "os.devnull":
                continue
            yield node.lineno, f"{ast.unparse(func)}()"
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _DOTENV_READERS and not any(k.arg == "stream" for k in node.keywords):
            yield node.lineno, f"{name}() of a path"


def test_no_module_but_the_reader_opens_a_local_file() -> None:
    """open(), os.open, Path.read_text/read_bytes/open and dotenv_values(path) appear in _localfile.py only.

    Anything else reads through read_local_bytes / read_local_text, so a new feature cannot
    forget the FIFO, device and size rules.
    """
    found = [
        f"{path.relative_to(SRC.parent)}:{line}: {call}"
        for path in sorted(SRC.rglob("*.py"))
        if path != READER
        for line, call in _file_reads(ast.parse(path.read_text(), str(path)))
    ]
    assert found == [], "read these through secretkit._localfile instead:\n" + "\n".join(found)


def test_the_scan_sees_every_way_to_open_a_file() -> None:
    """The scan above is not vacuous: each way of opening a file it guards against is caught."""
    code = """
open(p)
Path(p).read_text()
p.read_bytes()
os.open(p, os.O_RDONLY)
io.open(p)
path.open("rb")
dotenv_values(p)
dotenv.dotenv_values(p, encoding="utf-8")
os.open(os.devnull, os.O_WRONLY)
dotenv_values(stream=s)
"""
    assert [line for line, _ in _file_reads(ast.parse(code))] == [2, 3, 4, 5, 6, 7, 8, 9]


# -- Helpers ------------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path
    # Release any reader still waiting (a failing test), so the thread can end.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        pass
    else:
        os.close(fd)


def outcome(call: Callable[[], Any]) -> BaseException | object:
    """``call()``'s exception or result, failing the test if it has not returned within BLOCKED."""
    box: list[BaseException | object] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BLOCKED)
    assert not thread.is_alive(), f"the call blocked for {BLOCKED} s"
    return box[0]


@pytest.fixture
def oversized(tmp_path: Path) -> Path:
    """A sparse file one byte over the limit: no disk used, and its content is never read."""
    path = tmp_path / "oversized"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    return path


# -- The reader itself --------------------------------------------------------------------------


def test_the_reader_refuses_a_fifo_without_waiting_for_a_writer(fifo: Path) -> None:
    """A FIFO is refused at open time, not read: no writer ever comes."""
    result = outcome(lambda: read_local_bytes(fifo))
    assert isinstance(result, UnsafeFile) and "not a regular file" in str(result)


@needs_dev_zero
def test_the_reader_refuses_a_device_that_never_ends() -> None:
    """/dev/zero is refused before one byte is read."""
    result = outcome(lambda: read_local_bytes("/dev/zero"))
    assert isinstance(result, UnsafeFile)


def test_the_reader_stops_at_the_limit_even_when_the_size_lies(tmp_path: Path) -> None:
    """A file that reports a small size (as /proc files report 0) is still read no further than the limit."""
    proc = Path("/proc/self/environ")
    if not proc.exists():
        pytest.skip("no /proc")
    with pytest.raises(UnsafeFile):
        read_local_bytes(proc, max_bytes=1)
    assert read_local_bytes(proc)  # under the limit: read whole, though its st_size is 0


def test_a_symlink_to_a_regular_file_is_read_as_kubernetes_mounts_them(tmp_path: Path) -> None:
    """Secrets mounted by Kubernetes are symlinks (..data/x): followed, then checked."""
    (tmp_path / "real").write_text("mounted-secret")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_local_bytes(tmp_path / "link") == b"mounted-secret"


# -- SOPS files ---------------------------------------------------------------------------------


@needs_dev_zero
def test_sops_dev_zero_is_refused_at_once() -> None:
    """``sops:///dev/zero`` is refused before anything is read, not read until memory runs out."""
    store = SecretStore([], reference_backends=[SopsBackend()])
    result = outcome(lambda: store.get("sops:///dev/zero"))
    assert isinstance(result, ConfigurationError), result
    assert "not a regular file" in str(result)


def test_a_fifo_named_by_sops_references_blocks_no_worker(fifo: Path, tmp_path: Path) -> None:
    """Twenty reads of a FIFO are refused at once, and the store's SOPS reads still answer after them.

    Before, each read held one of the backend's workers forever; nine blocked every SOPS read.
    """
    store = SecretStore([], reference_backends=[SopsBackend()], deadline=BLOCKED)
    for attempt in range(20):
        result = outcome(lambda attempt=attempt: store.get(f"sops://{fifo}#k{attempt}"))
        assert isinstance(result, ConfigurationError), result
    missing = outcome(lambda: store.get(f"sops://{tmp_path}/absent.yaml#k"))
    assert isinstance(missing, SecretNotFound)


def test_is_sops_file_does_not_wait_on_a_fifo(fifo: Path) -> None:
    """``check`` and ``run`` ask is_sops_file() about paths they are given: a FIFO is simply not one."""
    assert outcome(lambda: is_sops_file(fifo)) is False


def test_describe_reports_a_fifo_without_reading_it(fifo: Path) -> None:
    """``doctor`` describes a FIFO as unreadable, at once."""
    lines = outcome(lambda: describe(fifo))
    assert isinstance(lines, list) and "not a regular file" in lines[0]


def test_an_oversized_sops_file_is_refused_without_being_read(oversized: Path) -> None:
    """A SOPS file over the limit is refused, naming the limit."""
    with pytest.raises(ConfigurationError, match="byte limit"):
        SopsBackend().fetch(SecretRef(f"sops://{oversized}#k"))
    assert is_sops_file(oversized) is False


# -- .env files ---------------------------------------------------------------------------------


def test_a_dotenv_fifo_is_refused_at_once(fifo: Path) -> None:
    """A .env path that is a FIFO gives a ConfigurationError, not a blocked reader."""
    result = outcome(lambda: DotenvBackend(fifo).values())
    assert isinstance(result, ConfigurationError) and "not a regular file" in str(result)


@needs_dev_zero
def test_a_dotenv_device_is_refused_at_once() -> None:
    """DotenvBackend("/dev/zero") is refused, not read until memory runs out."""
    result = outcome(lambda: DotenvBackend("/dev/zero").values())
    assert isinstance(result, ConfigurationError)


def test_an_oversized_dotenv_file_is_refused(oversized: Path) -> None:
    """A .env file over the limit is refused, naming the limit."""
    with pytest.raises(ConfigurationError, match="byte limit"):
        DotenvBackend(oversized).values()


def test_a_dotenv_interpolation_bomb_is_refused_before_it_grows(tmp_path: Path) -> None:
    """``B=${A}${A}...`` nested 20 deep (1 KB) would expand to 10^20 characters: refused at the cap."""
    lines = ["V0=xxxxxxxxxx"] + [f"V{i}=" + f"${{V{i - 1}}}" * 10 for i in range(1, 20)]
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    result = outcome(lambda: DotenvBackend(env).values())
    assert isinstance(result, ConfigurationError) and f"expands past {MAX_EXPANDED}" in str(result)


def test_unclosed_interpolations_cannot_make_the_parse_quadratic(tmp_path: Path) -> None:
    """400,000 ``${`` without a ``}`` (python-dotenv rescans to the end from each) are refused at once.

    Before, 20,000 of them (40 KB) took python-dotenv ~45 s.
    """
    env = tmp_path / ".env"
    env.write_text("A=" + "${" * 400_000 + "\n")
    result = outcome(lambda: DotenvBackend(env).values())
    assert isinstance(result, ConfigurationError) and "without a closing }" in str(result)


def test_a_long_run_of_spaces_cannot_make_the_dotenv_parse_quadratic(tmp_path: Path) -> None:
    """``K=a<200,000 spaces>b`` is refused at once: python-dotenv's inline-comment strip would take hours."""
    env = tmp_path / ".env"
    env.write_text("K=a" + " " * 200_000 + "b\n")
    result = outcome(lambda: DotenvBackend(env).values())
    assert isinstance(result, ConfigurationError) and "runs of spaces" in str(result)


def test_a_dotenv_file_of_endless_lines_is_refused(tmp_path: Path) -> None:
    """A .env file of more than MAX_LINES lines is refused: python-dotenv's resolver was quadratic in them.

    Before, 100,000 keys took 212 s to read.
    """
    env = tmp_path / ".env"
    env.write_text("".join(f"K{i}=v\n" for i in range(MAX_LINES + 1)))
    result = outcome(lambda: DotenvBackend(env).values())
    assert isinstance(result, ConfigurationError) and f"more than {MAX_LINES} lines" in str(result)


def test_dotenv_interpolation_still_works_as_python_dotenv_defines_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier entries win over the environment; defaults and missing names behave as before."""
    monkeypatch.setenv("SK_LF_HOST", "env-host")
    monkeypatch.setenv("SK_LF_USER", "env-user")
    env = tmp_path / ".env"
    env.write_text(
        "SK_LF_HOST=file-host\r\n"
        'URL="https://${SK_LF_USER}@${SK_LF_HOST}/${SK_LF_DB:-app}"\r\n'
        "EMPTY=${SK_LF_NOT_SET}\r\n"
        "BARE\r\n"
        'MULTI="a\r\nb"\r\n'
    )
    assert DotenvBackend(env).values() == {
        "SK_LF_HOST": "file-host",
        "URL": "https://env-user@file-host/app",
        "EMPTY": "",
        "MULTI": "a\nb",
    }


# -- Secret files, age identities, Vault token and JWT files ------------------------------------


def test_a_secret_file_that_is_a_fifo_is_refused(fifo: Path) -> None:
    """file:// and FileBackend names read through the same reader."""
    result = outcome(lambda: FileBackend(fifo.parent).fetch(SecretRef("file", "fifo")))
    assert isinstance(result, ConfigurationError)


def test_an_age_identity_file_that_is_a_fifo_is_refused(fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SOPS_AGE_KEY_FILE pointing at a FIFO names the variable, at once."""
    from secretkit.backends._sops.age import age_identity_sources

    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.delenv("SOPS_AGE_KEY_CMD", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(fifo))
    result = outcome(age_identity_sources)
    assert isinstance(result, ConfigurationError) and "SOPS_AGE_KEY_FILE" in str(result)


@needs_dev_zero
def test_an_ssh_key_file_that_never_ends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOPS_AGE_SSH_PRIVATE_KEY_FILE=/dev/zero is refused, not read until memory runs out."""
    from secretkit.backends._sops.age import _ssh_sources

    monkeypatch.delenv("SOPS_AGE_SSH_PRIVATE_KEY_CMD", raising=False)
    monkeypatch.setenv("SOPS_AGE_SSH_PRIVATE_KEY_FILE", "/dev/zero")
    result = outcome(lambda: _ssh_sources(""))
    assert isinstance(result, ConfigurationError) and "SOPS_AGE_SSH_PRIVATE_KEY_FILE" in str(result)


@pytest.mark.parametrize(
    "auth",
    [
        lambda path: TokenAuth(token_file=path),
        lambda path: AppRoleAuth("role-id", secret_id_file=path),
        lambda path: JwtAuth("ci", jwt_file=path),
        lambda path: KubernetesAuth("app", jwt_file=path),
    ],
    ids=["token_file", "secret_id_file", "jwt_file", "kubernetes"],
)
def test_vault_credential_files_that_never_end_are_refused_before_any_login(
    auth: Callable[[Path], Any], fifo: Path, oversized: Path
) -> None:
    """A token, secret_id or JWT file that is a FIFO or over the limit fails as configuration, at once."""
    pytest.importorskip("hvac")
    for path in (fifo, oversized):
        # The file is read before the client is touched: no client is needed to see the refusal.
        result = outcome(lambda path=path: auth(path).login(None))
        assert isinstance(result, ConfigurationError), result


# -- A plain name comes from the configured SOPS file only ---------------------------------------


@pytest.fixture
def attacker_file_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    """A working directory whose ``API_KEY`` is a SOPS file encrypted to the application's recipient."""
    pytest.importorskip("pyrage")
    key = new_age_key()
    key_file = tmp_path / "keys.txt"
    key_file.write_text(key.identity + "\n")
    for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE", "API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    work = tmp_path / "work"
    work.mkdir()
    sops = Sops(work, dict(os.environ))
    flags = ["--age", key.recipient]
    sops.encrypt(work / "API_KEY", "API_KEY=attacker-chosen-value\n", fmt="dotenv", keys=flags)
    monkeypatch.chdir(work)
    yield work, lambda name, text: sops.encrypt(work / name, text, fmt="dotenv", keys=flags)


@pytest.mark.parametrize("allow", [None, ["API_KEY", "DB_PASSWORD"]], ids=["no allow-list", "allow=API_KEY"])
def test_a_plain_name_never_comes_from_a_file_of_that_name_in_the_working_directory(
    attacker_file_in_cwd: tuple[Path, Any], allow: list[str] | None
) -> None:
    """get("API_KEY") with SopsBackend("config/x.enc.env") in a chain reads config/x.enc.env only.

    The file ./API_KEY, encrypted to the application's own recipient, was served before.
    """
    _work, encrypt = attacker_file_in_cwd
    encrypt("config/x.enc.env", "DB_PASSWORD=configured-db-password\n")
    store = SecretStore([EnvBackend(), SopsBackend("config/x.enc.env")], allow=allow, negative_ttl=0)
    assert store.get("DB_PASSWORD").reveal() == "configured-db-password"
    with pytest.raises(SecretNotFound):
        store.get("API_KEY")
    # The configured file's own API_KEY is the one served once it has one.
    encrypt("config/x.enc.env", "API_KEY=configured-api-key\n")
    store.invalidate("API_KEY")
    assert store.get("API_KEY").reveal() == "configured-api-key"


def test_a_reference_still_names_another_file_explicitly(attacker_file_in_cwd: tuple[Path, Any]) -> None:
    """With a configured file, another file is read when the reference says so: a #field or a ./ path."""
    _work, encrypt = attacker_file_in_cwd
    encrypt("config/x.enc.env", "DB_PASSWORD=configured-db-password\n")
    encrypt("other.enc.env", "TOKEN=other-file-token\n")
    store = SecretStore([SopsBackend("config/x.enc.env")])
    assert store.get("sops://other.enc.env#TOKEN").reveal() == "other-file-token"
    assert "other-file-token" in store.get("sops://./other.enc.env").reveal()
    with pytest.raises(SecretNotFound):
        store.get("sops://other.enc.env")  # a name in config/x.enc.env, which has none such
