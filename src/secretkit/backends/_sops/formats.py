"""Reading the five file formats ``sops`` writes into one tree plus its ``sops`` metadata.

The tree keeps the document's key order: the MAC is a hash over the values in that order.
"""

from __future__ import annotations

import configparser
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._errors import ConfigurationError, MissingDependency

__all__ = ["SopsDocument", "looks_like_sops", "parse_document"]

_DOTENV_PREFIX = "sops_"
_FLAT_TOKEN = re.compile(r"(__map_|__list_)")
# Fields that flat formats (dotenv, INI) store as text but sops reads as numbers or flags.
_INT_FIELDS = {"shamir_threshold"}
_BOOL_FIELDS = {"mac_only_encrypted"}


@dataclass
class SopsDocument:
    """A SOPS file as read from disk: still encrypted, not yet verified."""

    path: Path
    format: str  # "yaml", "json", "dotenv", "ini" or "binary"
    tree: dict[str, Any]
    metadata: dict[str, Any]


def looks_like_sops(data: bytes) -> bool:
    """A cheap test on the raw bytes: does this file carry SOPS metadata?"""
    text = data[:1_000_000]
    return (
        b"sops_mac=" in text
        or b"\n[sops]" in text
        or text.startswith(b"[sops]")
        or (b'"sops"' in text and b'"mac"' in text)
        or (re.search(rb"(?m)^sops:\s*$", text) is not None and b"mac:" in text)
    )


def parse_document(path: Path, data: bytes) -> SopsDocument:
    """Parse ``data`` (the bytes of ``path``) in whichever format sops wrote it.

    Raises ``ConfigurationError`` naming the file when it is not a SOPS file.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_sops(path, "it is not UTF-8 text") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        fmt, tree = "json", _load_json(path, text)
    elif re.search(r"(?m)^sops_[A-Za-z0-9_]+=", text):
        fmt, tree = "dotenv", _load_dotenv(path, text)
    elif re.search(r"(?m)^\[sops\]\s*$", text):
        fmt, tree = "ini", _load_ini(path, text)
    else:
        fmt, tree = "yaml", _load_yaml(path, text)
    raw_meta = _pop_metadata(path, fmt, tree)
    if fmt == "json" and set(tree) == {"data"} and isinstance(tree["data"], str) and path.suffix != ".json":
        fmt = "binary"  # `sops encrypt --input-type binary` writes {"data": ..., "sops": ...}
    metadata = _typed_metadata(raw_meta)
    if "mac" not in metadata or "lastmodified" not in metadata:
        raise _not_sops(path, "its sops metadata has no mac or lastmodified")
    return SopsDocument(path, fmt, tree, metadata)


def _not_sops(path: Path, why: str) -> ConfigurationError:
    return ConfigurationError(f"{str(path)!r} is not a file sops wrote: {why}")


def _load_json(path: Path, text: str) -> dict[str, Any]:
    try:
        tree = json.loads(text)
    except ValueError as exc:
        # The position says where; the document may hold plaintext, so no excerpt of it.
        raise _not_sops(path, f"it is not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(tree, dict):
        raise _not_sops(path, "its JSON document is not an object")
    return tree


def _load_dotenv(path: Path, text: str) -> dict[str, Any]:
    # sops's own reading: KEY=VALUE per line, '#' lines are comments, "\n" means a newline.
    tree: dict[str, Any] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            # The line number only: a line without '=' may be a value pasted on its own.
            raise _not_sops(path, f"line {number} has no '='")
        tree[key] = value.replace("\\n", "\n")
    return tree


def _load_ini(path: Path, text: str) -> dict[str, Any]:
    # A default_section no file uses: sops treats [DEFAULT] as an ordinary section.
    parser = configparser.ConfigParser(interpolation=None, strict=False, default_section="\x00")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise _not_sops(path, f"it is not valid INI ({type(exc).__name__})") from None
    return {section: dict(parser[section].items()) for section in parser.sections()}


def _load_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise MissingDependency("sops", "PyYAML", "sops") from None

    try:
        documents = list(yaml.load_all(text, Loader=_loader()))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise _not_sops(path, f"it is not valid YAML{where}") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise _not_sops(path, "it is not one YAML mapping (multi-document files are not supported)")
    return {str(k): v for k, v in documents[0].items()}


def _pop_metadata(path: Path, fmt: str, tree: dict[str, Any]) -> dict[str, Any]:
    if fmt == "dotenv":
        flat = {k[len(_DOTENV_PREFIX) :]: tree.pop(k) for k in list(tree) if k.startswith(_DOTENV_PREFIX)}
        return _unflatten(flat)
    meta = tree.pop("sops", None)
    if not isinstance(meta, dict):
        raise _not_sops(path, "it has no sops metadata")
    if fmt == "ini":
        return _unflatten({k: v.replace("\\n", "\n") for k, v in meta.items()})
    return meta


def _unflatten(flat: dict[str, str]) -> dict[str, Any]:
    # age__list_0__map_enc -> {"age": [{"enc": ...}]}: the flat formats' way to nest metadata.
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = _FLAT_TOKEN.split(key)
        tokens: list[str | int] = [parts[0]]
        for kind, name in zip(parts[1::2], parts[2::2], strict=True):
            tokens.append(int(name) if kind == "__list_" else name)
        node: Any = root
        for token, following in itertools.pairwise(tokens):
            empty: Any = [] if isinstance(following, int) else {}
            if isinstance(token, int):
                while len(node) <= token:
                    node.append(None)
                if node[token] is None:
                    node[token] = empty
                node = node[token]
            else:
                node = node.setdefault(token, empty)
        last = tokens[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append(None)
            node[last] = value
        else:
            node[last] = value
    return root


def _typed_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    typed = dict(meta)
    for name in _INT_FIELDS & typed.keys():
        try:
            typed[name] = int(typed[name])
        except (TypeError, ValueError):
            typed[name] = 0
    for name in _BOOL_FIELDS & typed.keys():
        value = typed[name]
        typed[name] = value if isinstance(value, bool) else str(value).lower() in ("true", "1", "t")
    return typed


def _yaml12_loader() -> Any:
    import yaml

    # libyaml's parser when PyYAML was built with it: the pure-Python one is ~20x slower.
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc]
        """PyYAML's safe loader read as YAML 1.2, as sops (go-yaml v3) reads it.

        ``yes``/``on`` stay strings and timestamps stay text: an unencrypted value enters
        the MAC as sops saw it.
        """

    resolvers = {
        first: [(tag, rx) for tag, rx in entries if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.yaml_implicit_resolvers = resolvers
    Loader.add_implicit_resolver(
        _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return Loader


_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


_loader_cache: list[Any] = []


def _loader() -> Any:
    # Built on first use: `import secretkit` must not import PyYAML.
    if not _loader_cache:
        _loader_cache.append(_yaml12_loader())
    return _loader_cache[0]
