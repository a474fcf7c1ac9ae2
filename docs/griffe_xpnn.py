"""A Griffe extension for xpnn's API pages: the docstrings as Python shows them, in Markdown.

xpnn's docstrings are written for ``help()`` and Sphinx-minded readers: ``:class:`X```
roles, ``text::`` literal blocks and one RST simple table (:mod:`xpnn.kernels`). Some classes
also build their docstring and signature at import time (each optimizer appends its checked
keywords, :func:`xpnn.optim.hyper.documented`, and sets ``__signature__``). This extension,
run by mkdocstrings once the package is loaded, takes the runtime docstring and signature
where they differ from the source and turns the RST constructs into Markdown:

- a role becomes the name in code, linked where the target is a page entry of the site (an
  optional autorefs reference: no link, and no warning, for a private module);
- ``text::`` plus an indented block becomes ``text:`` plus a fenced ``text`` block;
- a simple table becomes a Markdown table;
- a doctest (``>>>``) becomes a fenced ``pycon`` block.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _runtime(path: str) -> Any:
    """The live object at a dotted path, or None where it does not import."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def _exists(root: griffe.Module, path: str) -> bool:
    if not path.startswith(root.path + ".") and path != root.path:
        return False
    try:
        root[path[len(root.path) + 1 :]] if path != root.path else root
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _target(obj: griffe.Object, root: griffe.Module, name: str) -> str | None:
    """The dotted path a role's target names, seen from ``obj``'s docstring (Sphinx's search
    order: the object, its class, its module, its package, then the package root)."""
    module = obj if obj.is_module else obj.module
    if name.startswith("."):
        places = [module.path, module.parent.path if module.parent else module.path]
        candidates = [place + name for place in places]
    else:
        scopes = [obj.path, obj.parent.path if obj.parent else None, module.path, root.path]
        candidates = [name] + [f"{scope}.{name}" for scope in scopes if scope]
    return next((path for path in candidates if _exists(root, path)), None)


def _roles(text: str, obj: griffe.Object, root: griffe.Module) -> str:
    def link(match: re.Match[str]) -> str:
        short, name = match.group(1) == "~", match.group(2)
        shown = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
        path = _target(obj, root, name)
        if path is None:
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(link, text)


def _literal_blocks(text: str) -> str:
    """``para::`` + indented block -> ``para:`` + a fenced block (RST's literal block)."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            stripped = line.rstrip()[:-2].rstrip()
            if stripped:
                out.append(stripped + ":")
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block = []
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
            ):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                cut = min(len(b) - len(b.lstrip()) for b in block if b.strip())
                out += [
                    "",
                    " " * indent + "```text",
                    *(" " * indent + b[cut:] for b in block),
                    " " * indent + "```",
                    "",
                ]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _doctests(text: str) -> str:
    """A doctest (``>>>`` and ``...`` lines, then the output up to a blank line) -> a fenced
    ``pycon`` block (Markdown would read ``>>>`` as a quotation)."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if not lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = " " * (len(lines[i]) - len(lines[i].lstrip()))
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        out += [indent + "```pycon", *lines[i:j], indent + "```"]
        i = j
    return "\n".join(out)


def _tables(text: str) -> str:
    """RST simple tables (``====  ====`` borders) -> Markdown tables."""
    lines, out, i = text.split("\n"), [], 0
    border = re.compile(r"^\s*=+(\s+=+)+\s*$")
    while i < len(lines):
        if not border.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        spans = [m.span() for m in re.finditer(r"=+", lines[i])]
        rows, j, borders = [], i + 1, 1
        while j < len(lines) and borders < 3:
            if border.match(lines[j]):
                borders += 1
                if borders == 2:
                    rows.append(None)  # the header's end
            else:
                cells = re.split(r"\s{2,}", lines[j].strip())
                if len(cells) != len(spans):  # a cell with two spaces inside: cut at the borders
                    cells = [lines[j][a : (spans[k + 1][0] if k + 1 < len(spans) else None)].strip()
                             for k, (a, _) in enumerate(spans)]  # fmt: skip
                rows.append(cells)
            j += 1
        header, body = rows[: rows.index(None)], rows[rows.index(None) + 1 :]
        cells = [" ".join(column).strip() for column in zip(*header, strict=True)]
        out.append("| " + " | ".join(cells) + " |")
        out.append("|" + "---|" * len(cells))
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body if row]
        i = j
    return "\n".join(out)


class RuntimeDocstrings(griffe.Extension):
    """The docstrings and constructor signatures as at runtime, in Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "xpnn":
            return
        root = str(Path(str(pkg.filepath)).parent.parent)  # the checkout, where xpnn is not installed
        if root not in sys.path:
            sys.path.insert(0, root)
        for obj in [o for o in _walk(pkg) if o.is_module]:
            live = _runtime(obj.path)
            if live is not None:
                _unshadow(obj, live)
        for obj in list(_walk(pkg)):
            live = _runtime(obj.path)
            if obj.is_class and live is not None:
                _take_runtime(obj, live)
            if obj.docstring is not None:
                text = _tables(_literal_blocks(_doctests(obj.docstring.value)))
                obj.docstring.value = _roles(text, obj, pkg)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _unshadow(module: griffe.Object, live: Any) -> None:
    """A package whose public function has the name of one of its submodules
    (``xpnn.functional.gelu``: a function at runtime, and ``xpnn/functional/gelu.py``): static
    analysis sees the submodule; the name is made the function Python binds (an alias where
    it is defined elsewhere, else the function as inspected at runtime)."""
    inspected = None
    for name in getattr(live, "__all__", ()):
        member = module.members.get(name)
        value = getattr(live, name, None)
        if member is None or not member.is_module or inspect.ismodule(value) or not callable(value):
            continue
        home = value.__module__
        if home == f"{module.path}.{name}":
            continue  # xpnn.train.lr_find: the function lives in the submodule; its alias resolves
        if home != module.path:
            module.set_member(name, griffe.Alias(name, f"{home}.{value.__qualname__}", parent=module))
            continue
        if inspected is None:
            inspected = griffe.inspect(module.path)
        module.set_member(name, inspected.members[name])


def _take_runtime(cls: griffe.Object, live: Any) -> None:
    doc = live.__dict__.get("__doc__")
    if doc and (cls.docstring is None or inspect.cleandoc(doc) != cls.docstring.value):
        cls.docstring = griffe.Docstring(inspect.cleandoc(doc), parent=cls)
    signature = live.__dict__.get("__signature__")
    if signature is None:
        return
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
        inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
        inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
        inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
        inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
    }
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for p in signature.parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        annotation = None if p.annotation is inspect.Parameter.empty else str(p.annotation)
        parameters.append(
            griffe.Parameter(p.name, annotation=annotation, kind=kinds[p.kind], default=default)
        )
    init = griffe.Function("__init__", parameters=griffe.Parameters(*parameters), returns="None")
    cls.set_member("__init__", init)
