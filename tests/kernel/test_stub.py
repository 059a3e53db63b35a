"""src/cliprt/_topk.pyi says what the compiled binding is: the same public names, and for
each function the same parameters (names, order, positional or keyword-only, defaults)
and the same kind of result. pybind11 writes each function's signature as the first
line of its __doc__; that line is parsed as Python and compared with the stub."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cliprt import _topk

STUB = Path(__file__).resolve().parents[2] / "src" / "cliprt" / "_topk.pyi"


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def _stub_functions() -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in _stub().body if isinstance(n, ast.FunctionDef)}


def _binding_function(name: str) -> ast.FunctionDef:
    doc = getattr(_topk, name).__doc__ or ""
    signature = doc.strip().splitlines()[0]
    assert signature.startswith(f"{name}("), f"{name}: no signature line in __doc__: {doc!r}"
    node = ast.parse(f"def {signature}: ...").body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def _parameters(fn: ast.FunctionDef) -> list[tuple[str, str, object]]:
    """(name, kind, default) per parameter; default is the literal or "required"."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += list(a.defaults)
    out = [(p.arg, "positional", _literal(d)) for p, d in zip(positional, defaults, strict=True)]
    out += [
        (p.arg, "keyword-only", _literal(d))
        for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
    ]
    return out


def _literal(node: ast.expr | None) -> object:
    return "required" if node is None else ast.literal_eval(node)


def _result_kind(fn: ast.FunctionDef) -> str:
    """The outer type of the result: tuple[...] -> "tuple", list[str] -> "list"."""
    node = fn.returns
    if isinstance(node, ast.Subscript):
        node = node.value
    text = ast.unparse(node) if node is not None else "None"
    return text.rsplit(".", 1)[-1]


def _public_binding_names() -> set[str]:
    return {n for n in vars(_topk) if not n.startswith("_") and callable(getattr(_topk, n))}


def test_stub_and_binding_have_the_same_functions() -> None:
    assert set(_stub_functions()) == _public_binding_names()


def test_stub_declares_the_binding_attributes() -> None:
    declared = {
        n.target.id
        for n in _stub().body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    for name in declared:
        assert hasattr(_topk, name), name
    assert isinstance(_topk.__version__, str)


@pytest.mark.parametrize("name", sorted(_public_binding_names()))
def test_each_signature_matches(name: str) -> None:
    stub = _stub_functions()[name]
    binding = _binding_function(name)
    assert _parameters(stub) == _parameters(binding)
    assert _result_kind(stub) == _result_kind(binding)
