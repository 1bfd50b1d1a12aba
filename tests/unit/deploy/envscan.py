"""Finds the environment variables PainCare's code reads, by reading its sources (AST).

A read is a call whose first argument names the variable:
  os.environ.get("X"), os.environ["X"], os.getenv("X"), os.environ.setdefault("X", ...),
  settings.setting("X", ...) (any `.setting(...)`), and any function of the same file that
  passes its first parameter to one of those (shared/config.py's _env/_env_int/_env_float,
  the notifier's `get(name, default)`), and any name bound to one of those
  (`setting = self.runtime.settings.setting`), found to a fixed point so wrappers of
  wrappers count.
A name built by an f-string (f"{prefix}_DATABASE_URL", f"REFERRALS_TARGET_DAYS_{p}") is
kept as a pattern: each `{...}` matches one or more of [A-Z0-9_].
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass
class EnvReads:
    names: dict[str, set[str]] = field(default_factory=dict)     # name -> files reading it
    patterns: dict[str, set[str]] = field(default_factory=dict)  # regex -> files

    def merge(self, other: EnvReads) -> None:
        for src, dst in ((other.names, self.names), (other.patterns, self.patterns)):
            for key, files in src.items():
                dst.setdefault(key, set()).update(files)


def _from_os(tree: ast.Module) -> set[str]:
    """Names the module imports from os (`from os import environ, getenv`)."""
    return {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "os"
            for alias in node.names}


def _is_environ(node: ast.expr, from_os: set[str]) -> bool:
    """`os.environ`, or a bare `environ` imported from os; not a WSGI `environ` or
    `request.environ`, which hold a request's headers, not the process's settings."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os") or \
        (isinstance(node, ast.Name) and node.id == "environ" and "environ" in from_os)


def _is_direct_reader(func: ast.expr, from_os: set[str]) -> bool:
    if isinstance(func, ast.Attribute):
        if func.attr in ("get", "setdefault", "pop") and _is_environ(func.value, from_os):
            return True
        if func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os":
            return True
        if func.attr == "setting":      # Settings.setting(name, default)
            return True
    return isinstance(func, ast.Name) and func.id == "getenv" and "getenv" in from_os


def _first_arg(node: ast.Call | ast.Subscript) -> ast.expr | None:
    if isinstance(node, ast.Subscript):
        return node.slice
    if node.args:
        return node.args[0]
    for kw in node.keywords:
        if kw.arg in ("name", "key"):
            return kw.value
    return None


def _pattern(node: ast.JoinedStr) -> str | None:
    parts: list[str] = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(re.escape(value.value))
        else:
            parts.append("[A-Z0-9_]+")
    regex = "".join(parts)
    return regex if re.search(r"[A-Z]", regex) else None


def scan_source(source: str, filename: str = "<source>") -> EnvReads:
    tree = ast.parse(source, filename)
    from_os = _from_os(tree)
    readers: set[str] = set()

    def is_reader(call: ast.Call) -> bool:
        return _is_direct_reader(call.func, from_os) or (
            isinstance(call.func, ast.Name) and call.func.id in readers)

    def is_reader_ref(value: ast.expr) -> bool:
        """`settings.setting`, `os.environ.get`, `os.getenv` or a known reader, uncalled."""
        return _is_direct_reader(value, from_os) or (
            isinstance(value, ast.Name) and value.id in readers)

    # functions of this file that pass their first parameter on to a reader, and names
    # bound to a reader (`setting = self.runtime.settings.setting`), to a fixed point
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    aliases = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)]
    changed = True
    while changed:
        changed = False
        for assign in aliases:
            target = assign.targets[0].id  # type: ignore[attr-defined]
            if target not in readers and is_reader_ref(assign.value):
                readers.add(target)
                changed = True
        for fn in functions:
            if fn.name in readers or not fn.args.args:
                continue
            param = fn.args.args[0].arg
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                arg = _first_arg(call)
                if is_reader(call) and isinstance(arg, ast.Name) and arg.id == param:
                    readers.add(fn.name)
                    changed = True
                    break

    reads = EnvReads()
    for node in ast.walk(tree):
        call = isinstance(node, ast.Call) and is_reader(node)
        lookup = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
            and _is_environ(node.value, from_os)
        if not (call or lookup):
            continue
        arg = _first_arg(node)  # type: ignore[arg-type]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                and _ENV_NAME.match(arg.value):
            reads.names.setdefault(arg.value, set()).add(filename)
        elif isinstance(arg, ast.JoinedStr):
            regex = _pattern(arg)
            if regex:
                reads.patterns.setdefault(regex, set()).add(filename)
    return reads


def scan_files(paths: list[Path], root: Path) -> EnvReads:
    reads = EnvReads()
    for path in paths:
        reads.merge(scan_source(path.read_text(), str(path.relative_to(root))))
    return reads
