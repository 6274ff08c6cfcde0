#!/usr/bin/env python3
"""Rebuilds the seed corpora in tests/fuzz/corpus/<target>/ from realistic inputs:

* filter_parser   -- filters, PATCH paths and attribute paths from the e2e tests
                     (test_users_filter_ops.py, test_users_patch.py, test_idp_*.py) and the
                     IdP research notes (shared/research/idp-clients.md);
* patch_engine    -- PatchOp bodies from the same tests and notes;
* request_body    -- User and Group POST/PUT bodies from the same tests and notes;
* drupal_response -- Drupal JSON:API response bodies from shared/drupal-transcripts/,
                     plus the plain-text bodies Envoy answers with when Drupal is down.

The corpus is committed; this script only documents (and can redo) where it came from:

    python3 tests/fuzz/make_corpus.py [--shared /work/shared]

Each target keeps at most MAX_PER_TARGET (filters: MAX_FOR) files (dozens, not thousands): libFuzzer grows its
own working corpus from these, in a scratch directory (see scripts/fuzz).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote_plus

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
E2E = REPO / "tests" / "e2e"
MAX_PER_TARGET = 80
# Filters are short and the grammar is large: more of them.
MAX_FOR = {"filter_parser": 120}
# Sources that cover most of a grammar get more picks per round.
WEIGHT = {"users_filter_ops": 4, "users_filter": 2, "users_patch": 2}

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
OPERATOR = re.compile(r"\s(eq|ne|co|sw|ew|gt|ge|lt|le)\s|\spr(\s|\)|$)|\[", re.I)

E2E_FILES = [
    "test_users_filter_ops.py",
    "test_users_filter.py",
    "test_users_patch.py",
    "test_users_create.py",
    "test_users_put.py",
    "test_groups_crud.py",
    "test_groups_patch.py",
    "test_idp_entra.py",
    "test_idp_okta.py",
    "test_idp_onelogin.py",
    "test_idp_jumpcloud.py",
]


class Unknown(Exception):
    pass


_NO_VALUE = object()


def _op(o, path=None, value=_NO_VALUE):
    d = {"op": o}
    if path is not None:
        d["path"] = path
    if value is not _NO_VALUE:
        d["value"] = value
    return d


class Evaluator:
    """Evaluates the literal parts of a test module: constants, containers, f-strings, the
    `op(...)` helper and names bound to such values."""

    def __init__(self, env: dict):
        self.env = dict(env)

    def eval(self, node):
        match node:
            case ast.Constant(value=v):
                return v
            case ast.Name(id=name):
                if name in self.env:
                    return self.env[name]
                raise Unknown(name)
            case ast.JoinedStr(values=parts):
                return "".join(self.eval(p) if isinstance(p, ast.Constant) else str(self.eval(p.value)) for p in parts)
            case ast.Dict(keys=keys, values=values):
                out = {}
                for k, v in zip(keys, values):
                    if k is None:
                        out.update(self.eval(v))
                    else:
                        out[self.eval(k)] = self.eval(v)
                return out
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                return [self.eval(e) for e in elts]
            case ast.UnaryOp(op=ast.USub(), operand=o):
                return -self.eval(o)
            case ast.BinOp(left=l, op=ast.Add(), right=r):
                return self.eval(l) + self.eval(r)
            case ast.BinOp(left=l, op=ast.Mult(), right=r):
                a, b = self.eval(l), self.eval(r)
                if isinstance(b, int) and b > 5000 or isinstance(a, int) and a > 5000:
                    raise Unknown("too large")
                return a * b
            case ast.Call(func=ast.Name(id="op"), args=args, keywords=kws):
                return _op(*[self.eval(a) for a in args], **{k.arg: self.eval(k.value) for k in kws})
            case ast.Call(func=ast.Attribute(attr="deepcopy"), args=[a]):
                return self.eval(a)
            case _:
                raise Unknown(type(node).__name__)


def module_env(path: Path, base: dict) -> tuple[ast.Module, dict]:
    tree = ast.parse(path.read_text())
    ev = Evaluator(base)
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                ev.env[stmt.targets[0].id] = ev.eval(stmt.value)
            except Unknown:
                pass
    return tree, ev.env


def literals(tree: ast.Module, env: dict):
    """Every evaluable dict, list and string in the module."""
    ev = Evaluator(env)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Dict, ast.List, ast.Constant, ast.JoinedStr)):
            try:
                yield ev.eval(node)
            except (Unknown, TypeError, ValueError):
                pass


class Corpus:
    def __init__(self):
        self.items: dict[str, dict[bytes, str]] = {
            t: {} for t in ("filter_parser", "patch_engine", "request_body", "drupal_response")
        }

    def add(self, target: str, data: bytes | str, label: str, source: str | None = None):
        """`label` names the file; `source` (default: the label) is what the round-robin
        selection in `write` balances over."""
        if isinstance(data, str):
            data = data.encode()
        self.items[target].setdefault(data, (label, source or label))

    def add_json(self, target: str, value, label: str):
        self.add(target, json.dumps(value, ensure_ascii=False), label)

    def classify(self, value, label: str):
        if isinstance(value, str):
            if 0 < len(value) < 400 and OPERATOR.search(value) and "\n" not in value:
                self.add("filter_parser", value, label)
        elif isinstance(value, dict):
            if "Operations" in value:
                self.add_json("patch_engine", value, label)
            elif "schemas" in value or "userName" in value or "displayName" in value:
                self.add_json("request_body", value, label)
            if isinstance(value.get("path"), str) and "op" in value:
                self.add("filter_parser", value["path"], label + "-path")
        elif isinstance(value, list) and value and all(isinstance(o, dict) and "op" in o for o in value):
            self.add_json("patch_engine", {"schemas": [PATCH_OP], "Operations": value}, label)

    def write(self):
        for target, items in self.items.items():
            out = HERE / "corpus" / target
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            # Round-robin over the sources, so one large test file does not crowd out the rest.
            by_source: dict[str, list[tuple[bytes, str]]] = {}
            for data, (label, source) in items.items():
                by_source.setdefault(source, []).append((data, label))
            chosen = []
            limit = MAX_FOR.get(target, MAX_PER_TARGET)
            while len(chosen) < limit and any(by_source.values()):
                for source, queue in by_source.items():
                    for _ in range(WEIGHT.get(source, 1)):
                        if queue and len(chosen) < limit:
                            chosen.append(queue.pop(0))
            for data, label in chosen:
                digest = hashlib.sha1(data).hexdigest()[:8]
                (out / f"{label}-{digest}").write_bytes(data)
            print(f"{target}: {len(chosen)} seeds (of {len(items)} found)")


def from_e2e(corpus: Corpus):
    _, harness_env = module_env(E2E / "harness.py", {})
    base = {k: v for k, v in harness_env.items() if k.isupper()}
    for name in E2E_FILES:
        path = E2E / name
        if not path.exists():
            continue
        tree, env = module_env(path, base)
        label = path.stem.removeprefix("test_")
        for value in literals(tree, env):
            corpus.classify(value, label)


def from_research(corpus: Corpus, shared: Path):
    path = shared / "research" / "idp-clients.md"
    if not path.exists():
        print(f"skipped: {path} not found", file=sys.stderr)
        return
    text = path.read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        try:
            value = json.loads(block)
        except json.JSONDecodeError:
            continue
        corpus.classify(value, "idp-notes")
    for raw in re.findall(r"filter=([^`&|]+)", text):
        flt = unquote_plus(raw.strip()) if "%" in raw or "+" in raw else raw.strip()
        corpus.classify(flt, "idp-notes")


def from_transcripts(corpus: Corpus, shared: Path):
    folder = shared / "drupal-transcripts"
    if not folder.is_dir():
        print(f"skipped: {folder} not found", file=sys.stderr)
        return
    seen_kinds = set()
    for path in sorted(folder.glob("*.json")):
        try:
            t = json.loads(path.read_text())
            response = t["response"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        body, status = response.get("body"), response.get("status")
        if body is None:
            continue
        # One transcript per kind of answer: status, and the shape of `data`.
        data = body.get("data") if isinstance(body, dict) else None
        shape = (
            status,
            type(data).__name__,
            (data[0] if data else {}).get("type") if isinstance(data, list) else (data or {}).get("type") if isinstance(data, dict) else None,
            bool(isinstance(body, dict) and body.get("included")),
            bool(isinstance(body, dict) and body.get("errors")),
            t.get("name", "").split("_")[1] if "_" in t.get("name", "") else "",
        )
        if shape in seen_kinds:
            continue
        seen_kinds.add(shape)
        raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        corpus.add("drupal_response", raw, f"transcript-{path.stem[:3]}-{status}", f"status-{status}")
    # What Envoy itself answers when Drupal is unreachable, and an empty 204 body.
    corpus.add("drupal_response", "upstream connect error or disconnect/reset before headers. reset reason: connection failure", "envoy-503")
    corpus.add("drupal_response", "no healthy upstream", "envoy-503")
    corpus.add("drupal_response", "", "empty")


def synthetic(corpus: Corpus):
    """Bodies the tests build with helpers (harness.full_user) or that use every attribute of
    the fuzz mapping (src/lib.rs), so the fuzzer starts from fully populated inputs."""
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    user = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent],
        "userName": "pat.patch@example.org",
        "name": {"givenName": "Pat", "familyName": "Patch"},
        "displayName": "Pat Patch",
        "externalId": "ext-pat",
        "title": "Tester",
        "userType": "true",
        "emails": [{"value": "pat.patch@example.org", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "+1 555 0111", "type": "work"}, {"value": "+1 555 0122", "type": "mobile"}],
        "addresses": [{"type": "work", "postalCode": 94105, "primary": True}],
        ent: {"employeeNumber": "E-100", "department": "QA", "costCenter": 4711},
        "active": True,
        "password": "Pa55-word!",
    }
    corpus.add_json("request_body", user, "synthetic-full-user")
    corpus.add_json("request_body", {"schemas": [GROUP], "displayName": "Sales", "externalId": "g-1",
                                     "members": [{"value": "3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b", "display": "Pat"}]},
                    "synthetic-group")
    corpus.add_json("request_body", {"schemas": [GROUP], "displayName": "Empty", "members": []}, "synthetic-group")
    corpus.add_json("patch_engine", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": 'addresses[type eq "work"].postalCode', "value": "10115"},
        {"op": "replace", "path": "userType", "value": "False"},
        {"op": "replace", "path": f"{ent}:costCenter", "value": 42},
        {"op": "remove", "path": 'phoneNumbers[type eq "work" or value co "0122"]'},
        {"op": "replace", "path": "password", "value": "n3w-Pass"},
    ]}, "synthetic-patch")
    for flt in [
        'userType eq true and addresses[type eq "work" and postalCode gt 9999]',
        f'{ent}:costCenter le 4711 or not ({ent}:department sw "Q")',
        'meta.lastModified gt "2024-01-01T00:00:00Z" and id eq "3f9c1b7e-2a4d-4e8f-9b6a-1c2d3e4f5a6b"',
        'title eq "Tester" and phoneNumbers[type eq "mobile"].value ew "22"',
    ]:
        corpus.add("filter_parser", flt, "synthetic-filter")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    corpus = Corpus()
    from_e2e(corpus)
    from_research(corpus, args.shared)
    from_transcripts(corpus, args.shared)
    synthetic(corpus)
    corpus.write()


if __name__ == "__main__":
    main()
