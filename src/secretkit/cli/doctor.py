"""``secretkit doctor``: the chain, the extras, the backends and where each name comes from."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from .. import _registry
from .._api import default_store
from .._errors import ConfigurationError, SecretNotFound
from .._refs import SecretRef, near_miss, reference_scheme
from .._store import SecretStore
from ._exits import EXIT_FAILED, EXIT_OK
from ._inventory import backends_report, check_reachability, extras_report
from ._output import error_message, say, say_block, say_json, shown_name
from ._resolve import is_reference, references_in_environment, resolve_all
from ._sops import describe_files, sops_paths
from ._status import status_row


def command(args: argparse.Namespace) -> int:
    """Report the set-up and trace each name through the chain; 1 if a problem is found."""
    from .. import __version__

    store = default_store()
    problems: list[str] = []
    dotenv = True
    try:
        references = references_in_environment()
    except ConfigurationError as exc:  # a malformed ./.env is a finding, not the end of the report
        problems.append(error_message(exc))
        references = references_in_environment(dotenv=False)
        dotenv = False
    mistyped = mistyped_references(dotenv=dotenv)
    problems += [_mistyped_problem(entry) for entry in mistyped]
    chain = [{"scheme": b.scheme, "detail": _describe_backend(b)} for b in store.backends]
    extras = extras_report()
    backends = backends_report(references)
    check_reachability(backends, args.timeout)
    for report in backends:
        if report.referenced_by and not report.installed:
            problems.append(
                f"{', '.join(report.referenced_by)} use {report.scheme}://, but that backend is not installed"
                + (f': pip install "secretkit[{report.extra}]"' if report.extra else "")
            )
        if report.reach is not None and not report.reach.ok:
            problems.append(
                f"{report.scheme}: {report.reach.target} is not reachable ({report.reach.detail})"
            )
    traces = [_trace(name, store) for name in args.names]
    for trace in traces:
        if trace["status"] != "ok":
            problems.append(f"{trace['name']}: {trace['error'] or trace['status']}")
    # The SOPS files the set-up uses: those references point to, names given, and ./.env itself.
    sops_files = describe_files(sops_paths([*references.values(), *args.names, ".env"]))
    for sops_file in sops_files:
        if not sops_file["sops"]:
            problems.append(f"sops://{shown_name(sops_file['path'])}: {sops_file['description'][0]}")
    if args.json:
        say_json(
            {
                "secretkit": __version__,
                "python": sys.version.split()[0],
                "chain": chain,
                "extras": extras,
                "backends": [b.as_json() for b in backends],
                "references": sorted(shown_name(var) for var in references),
                "mistyped_references": mistyped,
                "names": traces,
                "sops_files": sops_files,
                "problems": problems,
            }
        )
        return EXIT_FAILED if problems else EXIT_OK
    say(f"secretkit {__version__} on Python {sys.version.split()[0]} ({sys.executable})")
    say()
    say("chain for plain names (first that has a name wins):")
    for i, item in enumerate(chain, 1):
        say(f"  {i}. {item['scheme']:<8} {item['detail']}")
    say()
    say("extras:")
    for extra, packages in extras.items():
        shown = ", ".join(f"{dist} {ver}" if ver else f"{dist} missing" for dist, ver in packages.items())
        state = "installed" if all(packages.values()) else f'not installed (pip install "secretkit[{extra}]")'
        say(f"  {extra:<9} {state}: {shown}")
    say()
    say("backends:")
    for report in backends:
        installed = "installed" if report.installed else "not installed"
        say(f"  {report.scheme:<9} {installed}")
        if report.configured:
            say(f"            configured: {', '.join(report.configured)}")
        if report.referenced_by:
            say(f"            referenced by: {', '.join(report.referenced_by)}")
        if report.note:
            say(f"            {report.note}")
        if report.reach is not None:
            state = "reachable" if report.reach.ok else "NOT reachable"
            say(f"            {state}: {report.reach.target} ({report.reach.detail})")
    if sops_files:
        say()
        say_block("sops files:", [line for report in sops_files for line in report["description"]])
    for trace in traces:
        say()
        _print_trace(trace)
    say()
    if problems:
        say(f"{len(problems)} problem(s):")
        for problem in problems:
            say(f"  - {problem}")
        return EXIT_FAILED
    say("no problems found")
    return EXIT_OK


def mistyped_references(*, dotenv: bool = True) -> list[dict[str, str]]:
    """Variables holding a reference whose scheme is mistyped (``aws-sn://``, ``AWS-SM://``, ``aws-sm:/``).

    The library, ``check`` and ``run`` refuse such a value rather than use it as the secret;
    here each is named with the scheme it was meant to be and where it is set (the
    environment, else ./.env, as the default chain reads them). Never the value, nor the
    scheme as written: the rest of a mistyped value may be anything.
    """
    from ..backends.dotenv import DotenvBackend

    known = _registry.known_schemes()
    sources: list[tuple[str, Mapping[str, str]]] = [("environment", os.environ)]
    if dotenv:
        sources.append(("./.env", DotenvBackend(".env").values()))
    found: dict[str, dict[str, str]] = {}
    for where, variables in sources:
        for var, value in variables.items():
            if var in found or (where != "environment" and var in os.environ):
                continue  # the environment wins over ./.env, as in the default chain
            if ":/" in value and (miss := near_miss(value, known)) is not None:
                written, meant = miss
                kind = "slash" if written == meant else "scheme"
                found[var] = {"name": shown_name(var), "meant": meant, "mistake": kind, "where": where}
    return [found[var] for var in sorted(found)]


def _mistyped_problem(entry: Mapping[str, str]) -> str:
    meant = entry["meant"]
    if entry["mistake"] == "slash":
        what = f"its reference to {meant}:// has one slash (write {meant}://...)"
    else:
        what = f"the scheme of its reference is mistyped (did you mean {meant}://?)"
    where = "" if entry["where"] == "environment" else f" in {entry['where']}"
    return f"{entry['name']}{where}: {what}; secretkit refuses the value rather than use it as the secret"


def _describe_backend(backend: Any) -> str:
    from ..backends.dotenv import DotenvBackend
    from ..backends.env import EnvBackend
    from ..backends.files import FileBackend

    if isinstance(backend, EnvBackend):
        return f"process environment ({len(os.environ)} variables; NAME_FILE points to a file)"
    if isinstance(backend, DotenvBackend):
        return f"{backend.path} ({'present' if backend.path.is_file() else 'absent'})"
    if isinstance(backend, FileBackend):
        return f"{backend.root} ({'present' if backend.root.is_dir() else 'absent'})"
    return repr(backend)


def _trace(name: str, store: SecretStore) -> dict[str, Any]:
    """Where ``name`` is found in the chain, which backend wins, and what it resolves to."""
    sources: list[dict[str, Any]] = []
    winner: str | None = None
    points_to: str | None = None
    if "://" in name and reference_scheme(name):
        points_to = shown_name(name)
    else:
        for backend in store.backends:
            entry: dict[str, Any] = {"backend": backend.scheme, "found": False}
            try:
                fetched = backend.fetch(SecretRef(backend.scheme, name))
            except SecretNotFound:
                pass
            except Exception as exc:  # reported per backend
                entry["error"] = error_message(exc)
            else:
                entry["found"] = True
                if isinstance(fetched.value, str) and is_reference(fetched.value):
                    # A reference is a pointer, not a value: safe to show, and what a user needs to see.
                    entry["reference"] = shown_name(fetched.value)
                if winner is None:
                    winner = backend.scheme
                    points_to = entry.get("reference")
            sources.append(entry)
    resolved, failures = resolve_all(store, [name])
    row = status_row(name, resolved.get(name), failures.get(name))
    return {
        "name": shown_name(name),
        "sources": sources,
        "winner": winner,
        "reference": points_to,
        "status": row.status.replace(" ", "_"),
        "source": row.source,
        "version": row.version,
        "error": row.error,
    }


def _print_trace(trace: Mapping[str, Any]) -> None:
    say(f"{trace['name']}:")
    for entry in trace["sources"]:
        if entry.get("error"):
            state = f"error: {entry['error']}"
        elif entry["found"]:
            state = "has it"
            if entry.get("reference"):
                state += f" (a reference to {entry['reference']})"
        else:
            state = "-"
        mark = "  <- wins" if trace["winner"] == entry["backend"] and entry["found"] else ""
        say(f"  {entry['backend']:<8} {state}{mark}")
    status = trace["status"].replace("_", " ")
    line = f"  resolves: {status}"
    if trace["status"] == "ok":
        line += f" from {trace['source']}" + (f", version {trace['version']}" if trace["version"] else "")
    elif trace["error"]:
        line += f" ({trace['error']})"
    say(line)
