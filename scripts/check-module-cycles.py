#!/usr/bin/env python3
"""Fail when a crate's modules depend on each other in a cycle.

Usage: scripts/check-module-cycles.py [--include-root] [CRATE_SRC_DIR ...]
  (default dirs: crates/engine/src crates/gallery/src crates/server/src crates/cli/src src-tauri/src)
Exit 0 when no cycle, 1 when any cycle, 2 on a usage error. Python 3.11 standard library only.

Semantics:
- Each crate root (src/lib.rs, src/main.rs, src/bin/*.rs) is walked through its `mod x;` declarations; a
  node is a module file (`x.rs` or `x/mod.rs`). Inline `mod x { }` blocks belong to their file. Test code is
  skipped entirely: items under `#[cfg(test)]` (e.g. `mod tests { }`, `mod contract_tests;`), `#[test]` fns,
  files starting `#![cfg(test)]`. tests/, examples/, benches/ are never reached.
- Comments (doc comments included) and string/char literals are removed before scanning.
- Edge A -> B: code in A refers to an item DEFINED in B, via `use crate::/super::/self::/child::...` or a path
  written inline (`crate::model::LoadedModel`, `super::vae::decode(..)`, `image::crop(..)` after
  `use crate::image;`). Paths are resolved much as rustc does, through re-exports (`pub use`, `pub(crate) use`,
  plain `use` too: a parent's private import is visible to its children), chains followed, `pub use x::*`
  searched. A path that stops at a module resolves through its following segments; one that cannot be resolved
  to a definition goes to the deepest module file it reaches. `mod` lines and re-export lines (`pub use`) make
  no edge, but a name a file re-exports and also uses itself (`Foo::new`, `foo(..)`) does. Paths into other
  crates (std, pigment_engine, ...) are ignored.
- Level 1: strongly connected components of more than one file. Level 2: every file collapsed to its first
  path segment under src/ (src/image/control/depth.rs -> `image`) and cycles among those top-level modules.
  The crate root file is no node at either level (`--include-root` makes it one at the file level).
- Every edge of each cycle is printed, one line per referencing line: `file:line -> file  path`.
"""

import bisect
import os
import re
import sys
import time

DEFAULT_DIRS = ["crates/engine/src", "crates/gallery/src", "crates/server/src", "crates/cli/src", "src-tauri/src"]

# ---------------------------------------------------------------------------------------------------- lexing

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lc>//[^\n]*)
  | (?P<bc>/\*)
  | (?P<raw>b?r(?P<h>\#*)"(?s:.*?)"(?P=h))
  | (?P<str>[bc]?"(?:[^"\\]|\\.)*")
  | (?P<chr>b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]{1,6}\}|.))')
  | (?P<life>'[^\W\d]\w*)
  | (?P<id>r\#[^\W\d]\w*|[^\W\d]\w*)
  | (?P<num>\d\w*)
  | (?P<path>::)
  | (?P<p>.)
    """,
    re.X | re.S,
)


def tokenize(text):
    """Tokens as (kind, value, offset); comments and whitespace dropped, literals reduced to a placeholder."""
    out = []
    pos, n = 0, len(text)
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        kind = m.lastgroup
        if kind == "bc":  # nested block comments
            depth, j = 1, pos + 2
            while depth and j < n:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            pos = j
            continue
        if kind == "h":  # raw string (the inner group name can be lastgroup)
            kind = "raw"
        if kind in ("ws", "lc"):
            pass
        elif kind == "id":
            v = m.group()
            out.append(("id", v[2:] if v.startswith("r#") else v, pos))
        elif kind == "str":  # the text is kept for `#[path = "..."]` only
            out.append(("lit", m.group()[1:-1] if m.group().startswith('"') else "", pos))
        elif kind in ("raw", "chr"):
            out.append(("lit", "", pos))
        elif kind == "path":
            out.append(("::", "::", pos))
        elif kind == "p":
            out.append(("p", m.group(), pos))
        else:  # num, lifetime
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


# ---------------------------------------------------------------------------------------------------- model

ITEM_KW = {"fn", "struct", "enum", "union", "trait", "type", "const", "static"}
PATH_HEADS = {"crate", "super", "self"}
DEFINERS = {".", "fn", "struct", "enum", "trait", "type", "const", "static", "mod", "let"}
NOT_NAMES = {"Self", "self", "super", "crate", "mut", "fn", "unsafe", "async", "extern", "_"}


class Module:
    __slots__ = ("path", "file", "parent", "children", "items", "bindings", "globs", "root", "test", "bare")

    def __init__(self, path, file, parent):
        self.path = path  # tuple of names from the crate root
        self.file = file  # the File it lives in
        self.parent = parent
        self.children = {}  # name -> Module (file or inline, test modules excluded)
        self.items = {}  # name -> line, items defined at module level
        self.bindings = {}  # name -> [UseEntry]
        self.globs = []  # UseEntry of `use x::*` at module level
        self.root = parent.root if parent else self
        self.test = False
        self.bare = {}  # name -> first line it is used bare (for names this module re-exports)


class UseEntry:
    __slots__ = ("module", "segs", "alias", "glob", "pub", "level", "line", "selfmod")

    def __init__(self, module, segs, alias, glob, pub, level, line, selfmod):
        self.module, self.segs, self.alias, self.glob = module, segs, alias, glob
        self.pub, self.level, self.line, self.selfmod = pub, level, line, selfmod


class File:
    __slots__ = ("rel", "path", "module", "refs", "uses", "tokens", "lines")

    def __init__(self, rel, path):
        self.rel, self.path = rel, path
        self.module = None
        self.refs = []  # inline paths: (Module, segs, line)
        self.uses = []  # UseEntry


def is_test_attr(toks):
    """`#[test]`, `#[cfg(test)]`, `#[cfg(all(test, ...))]`; not `#[cfg(not(test))]`."""
    names = [t[1] for t in toks if t[0] == "id"]
    if not names:
        return False
    if names[0] == "test":
        return True
    if names[0] != "cfg":
        return False
    for k, t in enumerate(toks):
        if t[0] == "id" and t[1] == "test":
            if not (k >= 2 and toks[k - 1][1] == "(" and toks[k - 2][1] == "not"):
                return True
    return False


class Crate:
    def __init__(self, src_dir, root_file, include_root):
        self.src_dir = src_dir
        self.include_root = include_root
        self.files = {}  # rel -> File
        self.problems = []
        self.memo = {}
        self.root = self._load_module(root_file, (), None)

    # -------------------------------------------------------------- parsing

    def _load_module(self, path, modpath, parent):
        rel = os.path.relpath(path, self.src_dir)
        f = File(rel, path)
        self.files[rel] = f
        mod = Module(modpath, f, parent)
        f.module = mod
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        f.tokens = tokenize(text)
        f.lines = [i for i, c in enumerate(text) if c == "\n"] if "\n" in text else []
        base = os.path.basename(path)
        if base in ("mod.rs", "lib.rs", "main.rs") or parent is None:
            child_dir = os.path.dirname(path)
        else:
            child_dir = os.path.join(os.path.dirname(path), base[:-3])
        self._parse(f, mod, child_dir)
        return mod

    def _line(self, f, offset):
        return bisect.bisect_left(f.lines, offset) + 1

    def _parse(self, f, filemod, child_dir):
        toks = f.tokens
        n = len(toks)
        stack = [(filemod, 0, child_dir)]  # (module, brace depth of its items, dir of its child files)
        depth = 0
        attrs_test = False
        enum_next = False
        mod_path_attr = None  # `#[path = "x.rs"]` on the next `mod x;`
        enum_depths = set()  # brace depths that are enum bodies (their idents are variant names)
        i = 0
        while i < n:
            kind, val, off = toks[i]
            mod, mdepth, mdir = stack[-1]
            if kind == "p":
                if val == "#" and i + 1 < n and toks[i + 1][1] in ("[", "!"):
                    inner = toks[i + 1][1] == "!"
                    j = i + 2 if inner else i + 1
                    if j >= n or toks[j][1] != "[":
                        i += 1
                        continue
                    k, lvl = j, 0
                    while k < n:
                        if toks[k][1] == "[":
                            lvl += 1
                        elif toks[k][1] == "]":
                            lvl -= 1
                            if lvl == 0:
                                break
                        k += 1
                    attr = toks[j + 1 : k]
                    if len(attr) == 3 and attr[0][1] == "path" and attr[1][1] == "=" and attr[2][0] == "lit":
                        mod_path_attr = attr[2][1]
                    if is_test_attr(attr):
                        if inner:
                            if depth == mdepth and mod is filemod:
                                filemod.test = True
                                return
                        else:
                            attrs_test = True
                    i = k + 1
                    continue
                if attrs_test:
                    attrs_test = False
                    i = self._skip_item(toks, i)
                    continue
                if val == "{":
                    depth += 1
                    if enum_next:
                        enum_depths.add(depth)
                        enum_next = False
                elif val == "}":
                    enum_depths.discard(depth)
                    depth -= 1
                    if len(stack) > 1 and depth < mdepth:
                        stack.pop()
                i += 1
                continue
            if attrs_test:
                attrs_test = False
                i = self._skip_item(toks, i)
                continue
            if kind != "id":
                i += 1
                continue
            nxt = toks[i + 1] if i + 1 < n else ("", "", 0)
            prev = toks[i - 1] if i else ("", "", 0)
            if val == "enum" and nxt[0] == "id":
                enum_next = True
            if val == "mod" and nxt[0] == "id" and i + 2 < n:
                name = nxt[1]
                after = toks[i + 2][1]
                if after == ";":
                    self._declare_file_module(mod, name, mdir, f, toks[i + 1][2], mod_path_attr)
                    mod_path_attr = None
                    i += 3
                    continue
                if after == "{":
                    mod_path_attr = None
                    child = Module(mod.path + (name,), f, mod)
                    mod.children[name] = child
                    depth += 1
                    stack.append((child, depth, os.path.join(mdir, name)))
                    i += 3
                    continue
            if val == "use" and prev[1] != "." and prev[0] != "::":
                pub = prev[1] == "pub" or (prev[1] == ")" and self._pub_paren_before(toks, i - 1))
                i = self._parse_use(f, mod, toks, i + 1, pub, depth == mdepth)
                continue
            if depth == mdepth and prev[1] not in ("<", ",", "::", "."):
                name = None
                if val in ITEM_KW:
                    j = i + 1
                    while j < n and toks[j][0] == "id" and toks[j][1] in ("mut", "fn", "unsafe", "async", "extern"):
                        j += 1
                    if j < n and toks[j][0] == "id" and toks[j][1] not in NOT_NAMES:
                        name = toks[j][1]
                elif val == "macro_rules" and nxt[1] == "!" and i + 2 < n and toks[i + 2][0] == "id":
                    name = toks[i + 2][1]
                if name is not None:
                    mod.items.setdefault(name, self._line(f, off))
            # inline path: ident :: ident ...
            if nxt[0] == "::" and prev[0] != "::" and i + 2 < n and toks[i + 2][0] == "id":
                if not (prev[1] == "in" and i >= 2 and toks[i - 2][1] == "("):  # pub(in crate::x)
                    segs = [val]
                    j = i + 1
                    while j + 1 < n and toks[j][0] == "::" and toks[j + 1][0] == "id":
                        segs.append(toks[j + 1][1])
                        j += 2
                    f.refs.append((mod, segs, self._line(f, off)))
                    i = j
                    continue
            if not (depth in enum_depths and prev[1] in ("{", ",", "]")):
                self._note_bare(mod, val, prev, nxt, f, off)
            i += 1

    def _note_bare(self, mod, name, prev, nxt, f, off):
        """First line a name is used bare (not after `.`, not a definition), kept in case it is re-exported here."""
        if name in mod.bare or prev[1] in DEFINERS:
            return
        if name[0].islower() and nxt[1] not in ("(", "::"):
            return  # a lower-case name counts when called or a path head (not a field, variable, ...)
        if nxt[1] == ":" or nxt[1] == "!":
            return
        mod.bare[name] = self._line(f, off)

    @staticmethod
    def _pub_paren_before(toks, k):
        """toks[k] is `)`: is it the end of `pub(...)`?"""
        lvl = 0
        while k >= 0:
            v = toks[k][1]
            if v == ")":
                lvl += 1
            elif v == "(":
                lvl -= 1
                if lvl == 0:
                    return k > 0 and toks[k - 1][1] == "pub"
            k -= 1
        return False

    @staticmethod
    def _skip_item(toks, i):
        """Index after the item (or field, variant, statement) starting at toks[i]."""
        n = len(toks)
        j = i
        while j < n and (toks[j][1] in ("pub", "unsafe", "async", "extern", "default") or toks[j][0] == "lit"):
            if toks[j][1] == "pub" and j + 1 < n and toks[j + 1][1] == "(":
                j += 1
                while j < n and toks[j][1] != ")":
                    j += 1
            j += 1
        first = toks[j][1] if j < n else ""
        is_item = first in ITEM_KW or first in ("mod", "use", "impl", "let", "macro_rules", "fn")
        semi_after_brace = first in ("const", "static", "let", "type", "use")
        lvl = 0
        k = i
        while k < n:
            v = toks[k][1] if toks[k][0] == "p" else None
            if v in ("(", "[", "{"):
                lvl += 1
            elif v in (")", "]", "}"):
                lvl -= 1
                if lvl < 0:
                    return k  # the enclosing list or block ends
                if lvl == 0 and v == "}" and not semi_after_brace:
                    nk = k + 1
                    return nk + 1 if nk < n and toks[nk][1] == ";" and first == "macro_rules" else nk
            elif lvl == 0 and v == ";":
                return k + 1
            elif lvl == 0 and v == "," and not is_item:
                return k + 1
            k += 1
        return n

    def _declare_file_module(self, parent, name, mdir, f, off, path_attr=None):
        cands = [os.path.join(mdir, name + ".rs"), os.path.join(mdir, name, "mod.rs")]
        if path_attr:
            cands = [os.path.normpath(os.path.join(os.path.dirname(f.path), path_attr))]
        for c in cands:
            if os.path.isfile(c):
                child = self._load_module(c, parent.path + (name,), parent)
                if not child.test:
                    parent.children[name] = child
                else:
                    del self.files[child.file.rel]
                return
        self.problems.append(f"{f.rel}:{self._line(f, off)}: `mod {name};` has no file (looked for {', '.join(cands)})")

    def _parse_use(self, f, mod, toks, i, pub, level):
        """Parse a use tree from toks[i] to `;`; returns the index after the `;`."""
        n = len(toks)
        end = i
        lvl = 0
        while end < n and not (toks[end][1] == ";" and lvl == 0):
            if toks[end][1] == "{":
                lvl += 1
            elif toks[end][1] == "}":
                lvl -= 1
            end += 1
        entries = []

        def tree(k, prefix):
            segs = list(prefix)
            if k < end and toks[k][0] == "::":
                k += 1
            while k < end:
                kind, v, off = toks[k]
                if v == "{":
                    k += 1
                    while k < end and toks[k][1] != "}":
                        k = tree(k, segs)
                        if k < end and toks[k][1] == ",":
                            k += 1
                    return k + 1
                if v == "*":
                    entries.append((segs, None, True, off, False))
                    return k + 1
                if kind != "id":
                    return k + 1
                segs = segs + [v]
                k += 1
                if k < end and toks[k][0] == "::":
                    k += 1
                    continue
                alias = None
                if k + 1 < end and toks[k][1] == "as":
                    alias = toks[k + 1][1]
                    k += 2
                selfmod = segs[-1] == "self" and len(segs) > 1  # `a::{self}` imports the module only
                if selfmod:
                    segs = segs[:-1]
                entries.append((segs, alias or segs[-1], False, off, selfmod))
                return k
            return k

        tree(i, [])
        for segs, alias, glob, off, selfmod in entries:
            e = UseEntry(mod, segs, alias, glob, pub, level, self._line(f, off), selfmod)
            f.uses.append(e)
            if glob:
                if level:
                    mod.globs.append(e)
            elif alias != "_":
                mod.bindings.setdefault(alias, []).append(e)
        return end + 1

    # -------------------------------------------------------------- resolution
    # A target is ("item", Module) for a definition, ("mod", Module) for a module, ("far", Module) for a path
    # that stops resolving inside Module; None for a name from another crate.

    def lookup(self, mod, name, local, want_mod, seen):
        """Resolve one name in a module's namespace."""
        key = (id(mod), name, local, want_mod)
        if key in self.memo:
            return self.memo[key]
        if key in seen:
            return None  # a re-export loop
        top = not seen
        seen.add(key)
        res = None
        child = mod.children.get(name)
        if child is not None and want_mod:
            res = ("mod", child)
        elif name in mod.items:
            res = ("item", mod)
        if res is None:
            for e in mod.bindings.get(name, ()):
                if not (local or e.level):
                    continue
                r = self.resolve(e.module, e.segs, True, seen, want_mod or e.selfmod)
                if r is not None:
                    res = r
                    break
        if res is None and child is not None:
            res = ("mod", child)
        if res is None:
            for g in mod.globs:
                gm = self.resolve(g.module, g.segs, True, seen, True)
                if gm is not None and gm[0] == "mod":
                    r = self.lookup(gm[1], name, False, want_mod, seen)
                    if r is not None:
                        res = r
                        break
        seen.discard(key)
        if res is not None or top:  # a miss below a loop cut short is not final
            self.memo[key] = res
        return res

    def resolve(self, mod, segs, local, seen=None, want_mod_last=False):
        seen = set() if seen is None else seen
        head = segs[0]
        rest = segs[1:]
        if head == "crate":
            cur = mod.root
        elif head == "super" or head == "self":
            cur = mod
            k = 0
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    if cur.parent is None:
                        return None
                    cur = cur.parent
                k += 1
            rest = segs[k:]
        else:
            t = self.lookup(mod, head, local, bool(rest) or want_mod_last, seen)
            if t is None:
                return None
            if t[0] != "mod":
                return t
            cur = t[1]
        for k, seg in enumerate(rest):
            t = self.lookup(cur, seg, False, k + 1 < len(rest) or want_mod_last, seen)
            if t is None:
                return ("far", cur)
            if t[0] != "mod":
                return t
            cur = t[1]
        return ("mod", cur)

    # -------------------------------------------------------------- edges

    def edges(self):
        """[(src_rel, dst_rel, line, text)]"""
        out = []
        for f in self.files.values():
            src = f.rel
            for e in f.uses:
                if e.pub:
                    continue  # a re-export line
                r = self.resolve(e.module, e.segs, True, None, e.glob or e.selfmod)
                if r is None or (r[0] == "mod" and not e.glob):
                    continue  # a module imported by name: its uses are the inline paths
                dst = r[1].file.rel
                if dst != src:
                    text = "::".join(e.segs) + ("::*" if e.glob else "")
                    if e.alias and e.alias != e.segs[-1]:
                        text += " as " + e.alias
                    out.append((src, dst, e.line, text))
            for mod, segs, line in f.refs:
                head = segs[0]
                if head not in PATH_HEADS:
                    t = self.lookup(mod, head, True, True, set())
                    if t is None:
                        continue
                    if t[0] != "mod" and not self._pub_bound(mod, head):
                        continue  # `Foo::new` after a plain `use ..::Foo`: the use line is the edge
                r = self.resolve(mod, segs, True)
                if r is None:
                    continue
                dst = r[1].file.rel
                if dst != src:
                    out.append((src, dst, line, "::".join(segs)))
            # names this file re-exports and also uses itself
            for mod in self._modules_of(f):
                for name, line in mod.bare.items():
                    if self._pub_bound(mod, name) and name not in mod.items:
                        r = self.lookup(mod, name, True, False, set())
                        if r is not None and r[1].file.rel != src and r[0] != "mod":
                            out.append((src, r[1].file.rel, line, name))
        return out

    @staticmethod
    def _pub_bound(mod, name):
        es = mod.bindings.get(name)
        return bool(es) and all(e.pub for e in es)

    def _modules_of(self, f):
        todo = [f.module]
        while todo:
            m = todo.pop()
            yield m
            todo.extend(c for c in m.children.values() if c.file is f)


# ---------------------------------------------------------------------------------------------------- graphs


def sccs(nodes, adj):
    """Tarjan; components of more than one node, each sorted, in a stable order."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: c[0])


def top_of(rel):
    """First path segment under src/: `image/control/depth.rs` -> `image`, `rng.rs` -> `rng`."""
    first = rel.replace(os.sep, "/").split("/")[0]
    return first[:-3] if first.endswith(".rs") else first


def merge_refs(refs):
    """[(src, dst, line, text)] -> one (src, dst, line, text) per referencing line, `a::b::{C, D}` merged."""
    by = {}
    for src, dst, line, text in refs:
        by.setdefault((src, line, dst), []).append(text)
    out = []
    for (src, line, dst), texts in by.items():
        texts = list(dict.fromkeys(texts))
        if len(texts) > 1:
            heads = {t.rsplit("::", 1)[0] for t in texts if "::" in t}
            if len(heads) == 1 and all("::" in t for t in texts):
                h = heads.pop()
                texts = [h + "::{" + ", ".join(t.rsplit("::", 1)[1] for t in texts) + "}"]
        out.append((src, dst, line, ", ".join(texts)))
    return sorted(out)


def check_crate(src_dir, root, include_root, lines):
    crate = Crate(src_dir, root, include_root)
    root_rel = crate.root.file.rel
    refs = crate.edges()
    nodes = {rel for rel in crate.files if include_root or rel != root_rel}
    refs = [r for r in refs if r[0] in nodes and r[1] in nodes]
    name = f"{src_dir.rstrip('/')}/{root_rel}" if root_rel not in ("lib.rs",) else src_dir.rstrip("/")
    # files
    fadj = {}
    for src, dst, _, _ in refs:
        fadj.setdefault(src, set()).add(dst)
    fcycles = sccs(nodes, fadj)
    # top-level modules (the crate root is never one)
    trefs = []
    for r in refs:
        if r[0] == root_rel or r[1] == root_rel:
            continue
        a, b = top_of(r[0]), top_of(r[1])
        if a != b:
            trefs.append((a, b) + r)
    tadj = {}
    for a, b, *_ in trefs:
        tadj.setdefault(a, set()).add(b)
    tnodes = {top_of(rel) for rel in nodes if rel != root_rel}
    tcycles = sccs(tnodes, tadj)
    status = "FAIL" if fcycles or tcycles else "ok"
    lines.append(
        f"{status} {name}: {len(crate.files)} files, {len({(r[0], r[1]) for r in refs})} file edges; "
        f"{len(fcycles)} file cycle(s), {len(tcycles)} top-level cycle(s)"
    )
    for p in crate.problems:
        lines.append(f"  warning: {p}")
    for k, comp in enumerate(fcycles, 1):
        members = set(comp)
        lines.append(f"  file cycle {k} ({len(comp)} files): {' '.join(comp)}")
        for src, dst, line, text in merge_refs(r for r in refs if r[0] in members and r[1] in members):
            lines.append(f"    {src}:{line} -> {dst}  {text}")
    for k, comp in enumerate(tcycles, 1):
        members = set(comp)
        lines.append(f"  top-level cycle {k}: {' <-> '.join(comp)}")
        inner = [t for t in trefs if t[0] in members and t[1] in members]
        for a, b in sorted({(t[0], t[1]) for t in inner}):
            sub = merge_refs(t[2:] for t in inner if t[0] == a and t[1] == b)
            lines.append(f"    {a} -> {b} ({len(sub)} line(s)):")
            for src, dst, line, text in sub:
                lines.append(f"      {src}:{line} -> {dst}  {text}")
    return len(fcycles), len(tcycles)


def crate_roots(src_dir):
    roots = [os.path.join(src_dir, r) for r in ("lib.rs", "main.rs") if os.path.isfile(os.path.join(src_dir, r))]
    bin_dir = os.path.join(src_dir, "bin")
    if os.path.isdir(bin_dir):
        for e in sorted(os.listdir(bin_dir)):
            p = os.path.join(bin_dir, e)
            if e.endswith(".rs") and os.path.isfile(p):
                roots.append(p)
            elif os.path.isfile(os.path.join(p, "main.rs")):
                roots.append(os.path.join(p, "main.rs"))
    return roots


def main(argv):
    started = time.monotonic()
    args = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    if any(f not in ("--include-root", "--help") for f in flags):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if "--help" in flags:
        print(__doc__)
        return 0
    include_root = "--include-root" in flags
    dirs = args or DEFAULT_DIRS
    lines, failed = [], False
    for d in dirs:
        roots = crate_roots(d)
        if not roots:
            print(f"error: {d}: no lib.rs, main.rs or bin/ crate root", file=sys.stderr)
            return 2
        for root in roots:
            f, t = check_crate(d, root, include_root, lines)
            failed = failed or bool(f or t)
    print("\n".join(lines))
    verdict = "module cycles found" if failed else "no module cycles"
    print(f"check-module-cycles: {verdict} ({len(dirs)} crate dir(s), {time.monotonic() - started:.2f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
