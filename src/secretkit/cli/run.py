"""``secretkit run``: a command started with references resolved into its environment, output masked."""

from __future__ import annotations

import argparse
import os
import subprocess

from .. import _registry
from .._api import _marks_secret, default_store
from .._redact import url_passwords
from .._refs import near_miss
from .._telemetry import traceparent_env
from ._exits import (
    EXIT_CONFIG,
    EXIT_USAGE,
    PROG,
    CliError,
    classify,
)
from ._loaders import is_loader_variable
from ._output import error_message, print_error, shown_name
from ._resolve import as_text, is_reference, read_env_file, resolve_all
from ._signals import SignalForwarder
from ._supervise import Child, Masks
from .watch import supervise, watch_store


def command(args: argparse.Namespace) -> int:
    """Resolve the references, start the command, pass its exit code on."""
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise CliError(f"run needs a command: {PROG} run [--env-file FILE] -- CMD ARGS...", EXIT_USAGE)
    env = dict(os.environ)
    decrypted: list[str] = []
    for path in args.env_file:
        # A SOPS file gives its authenticated entries only (cli/_sops.py); a plain file is
        # whoever last wrote it, so it may not choose what code the command loads.
        entries, encrypted = read_env_file(path)
        if not encrypted:
            _refuse_loader_variables(path, entries)
        env.update(entries)
        if encrypted:
            decrypted.extend(value for value in entries.values() if not is_reference(value))
    _refuse_mistyped_references(env)
    refs = {var: value for var, value in env.items() if is_reference(value)}
    # --watch keeps the store for the child's life: its values live --refresh seconds.
    store = watch_store(args.refresh) if args.watch else default_store()
    resolved, failures = resolve_all(store, list(refs.values()))
    failed = [(var, failures[refs[var]]) for var in sorted(refs) if refs[var] in failures]
    if failed:
        for var, exc in failed:
            print_error(f"{shown_name(var)}: {error_message(exc)}")
        return classify(failed[0][1])[1]
    # A SOPS file's values were secrets at rest: masked like resolved ones.
    injected: list[object] = list(decrypted)
    for var, ref in refs.items():
        value = resolved[ref].reveal()
        text = as_text(value)
        if "\0" in text:
            raise CliError(
                f"{shown_name(var)}: the secret {shown_name(ref)!r} contains a NUL character, which an "
                "environment variable cannot hold; pick a #field or store it without NUL",
                EXIT_CONFIG,
            )
        env[var] = text
        injected.append(value)
    injected.extend(_secret_by_name(env, resolved=refs))
    # The span this process is in (when OpenTelemetry is in use) becomes the child's parent.
    env.update(traceparent_env())
    if args.watch:
        return supervise(
            argv,
            env,
            refs,
            None if args.no_mask else injected,
            store,
            refresh=args.refresh,
            on_rotate=args.on_rotate,
            grace=args.grace,
        )
    # The log redactor's engine, over the values log redaction would mask were the child's
    # environment read through secretkit.getenv.
    return _spawn(argv, env, None if args.no_mask else Masks(injected))


def _secret_by_name(env: dict[str, str], *, resolved: dict[str, str]) -> list[str]:
    """What log redaction's rule makes secret among the values the child gets, beyond those resolved.

    The rule of ``secretkit.getenv``: a variable whose name marks it as secret
    (``SECRET_NAME_MARKERS``), from the environment or an ``--env-file``, and the password
    of any URL-shaped value, whatever its name. ``PORT=8080`` or ``APP_ENV=production``
    stays readable.
    """
    found: list[str] = []
    for var, value in env.items():
        if var not in resolved and _marks_secret(var):
            found.append(value)  # a resolved value is masked whole already
        if "://" in value and "@" in value:
            found.extend(url_passwords(value))
    return found


def _refuse_mistyped_references(env: dict[str, str]) -> None:
    """Stop before the child starts when a variable holds a reference with its scheme mistyped.

    ``DB_PASSWORD=aws-sn://prod/db#password`` would otherwise reach the child as the password.
    """
    known = _registry.known_schemes()
    for var in sorted(env):
        value = env[var]
        if ":/" in value and (miss := near_miss(value, known)) is not None:
            written, meant = miss
            raise CliError(
                f"{shown_name(var)} holds a reference with the scheme {shown_name(written)!r}, which is not "
                f"one secretkit knows: did you mean {meant}://? Fix the variable: it is not passed on",
                EXIT_CONFIG,
            )


def _refuse_loader_variables(path: str, entries: dict[str, str]) -> None:
    loaders = [name for name in entries if is_loader_variable(name)]
    if loaders:
        raise CliError(
            f"--env-file {shown_name(path)!r} sets {', '.join(shown_name(n) for n in loaders[:5])}, which "
            "decides what code the command loads; such a variable is not taken from a plain file: set it "
            "in the environment, or keep it encrypted in a SOPS file",
            EXIT_CONFIG,
        )


def _spawn(argv: list[str], env: dict[str, str], masks: Masks | None) -> int:
    forwarder = SignalForwarder()
    forwarder.install()
    try:
        child = Child(argv, env, masks)
        forwarder.attach(child.proc)
        code = _wait(child.proc)
        # Output still in the pipes (or written by a child that outlives the command) is
        # passed on, masked, until every writer has closed them: as a shell pipeline would.
        child.drain()
    finally:
        forwarder.restore()
    return 128 - code if code < 0 else code


def _wait(proc: subprocess.Popen[bytes]) -> int:
    # Not a bare proc.wait(): the kernel may deliver a signal to a pump thread, and Python runs
    # handlers only when the main thread runs bytecode, which a blocking waitpid() never does.
    while True:
        try:
            return proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
