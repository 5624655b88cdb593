"""Environment variables that decide what code a child runs, which ``run --env-file`` takes only encrypted.

A plain ``--env-file`` (or a SOPS file swapped for a plain one) is text anyone who can write
the file controls; through these variables it would run code in the child (``BASH_ENV``,
``LD_PRELOAD``, ``PYTHONSTARTUP``, a ``HOME`` with a planted ``.pth`` file, ...). The list is a
floor: every plain entry is the file writer's choice.
"""

from __future__ import annotations

__all__ = ["is_loader_variable"]

_EXACT = frozenset(
    {
        "BASHOPTS",
        "BASH_ENV",
        "CDPATH",
        "CLASSPATH",
        "EDITOR",
        "ENV",
        "GIT_ASKPASS",
        "GIT_EDITOR",
        "GIT_EXEC_PATH",
        "GIT_EXTERNAL_DIFF",
        "GIT_PAGER",
        "GIT_PROXY_COMMAND",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_TEMPLATE_DIR",
        "GCONV_PATH",
        "GLOBIGNORE",
        "HOME",
        "HOSTALIASES",
        "IFS",
        "LOCPATH",
        "NLSPATH",
        "NODE_OPTIONS",
        "NODE_PATH",
        "NODE_REPL_EXTERNAL_MODULE",
        "PAGER",
        "PATH",
        "PATHEXT",
        "PROMPT_COMMAND",
        "PS4",
        "SHELL",
        "SHELLOPTS",
        "SSH_ASKPASS",
        "VISUAL",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "ZDOTDIR",
    }
)
_PREFIXES = (
    "BASH_FUNC_",
    "DYLD_",
    "GIT_CONFIG",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "LD_",
    "LUA_",
    "PERL",
    "PYTHON",
    "RUBY",
    "_JAVA_OPTIONS",
)


def is_loader_variable(name: str) -> bool:
    """Whether ``name`` changes which code a program loads or runs (compared case-blind, as Windows does)."""
    upper = name.upper()
    return upper in _EXACT or upper.startswith(_PREFIXES)
