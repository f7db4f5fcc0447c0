#!/usr/bin/env python3
"""Tests for scripts/check-module-cycles.py on small crates written to a temporary folder.

Run: python3 scripts/test_check_module_cycles.py
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-module-cycles.py")


class CheckModuleCycles(unittest.TestCase):
    def crate(self, files):
        """Write {relative path under src/: source} to a temp crate; returns its src dir."""
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        src = os.path.join(tmp.name, "src")
        for rel, text in files.items():
            path = os.path.join(src, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(text).lstrip("\n"))
        return src

    def check(self, files, *flags):
        src = self.crate(files)
        run = subprocess.run([sys.executable, SCRIPT, *flags, src], capture_output=True, text=True, timeout=30)
        self.assertIn(run.returncode, (0, 1), run.stderr)
        return run.returncode, run.stdout

    def assert_clean(self, files, edges):
        """No cycle, and exactly `edges` file edges (so the edges that must exist were seen)."""
        rc, out = self.check(files)
        self.assertEqual(rc, 0, out)
        self.assertIn(f" {edges} file edges;", out)
        self.assertIn("no module cycles", out)
        self.assertNotIn("cycle 1", out)

    def test_clean_crate_passes(self):
        self.assert_clean(
            {
                "lib.rs": """
                    pub mod error;
                    pub mod image;
                    pub mod pipeline;
                    pub use error::Result;
                """,
                "error.rs": "pub type Result<T> = std::result::Result<T, String>;\n",
                "image/mod.rs": """
                    mod resize;
                    pub use resize::crop;
                    use crate::error::Result;
                    pub fn load() -> Result<()> { Ok(()) }
                """,
                "image/resize.rs": "pub fn crop() {}\n",
                "pipeline/mod.rs": """
                    mod txt2img;
                    pub use txt2img::run;
                """,
                "pipeline/txt2img.rs": """
                    use crate::image;
                    use crate::Result;
                    pub fn run() -> Result<()> { image::crop(); crate::image::load() }
                """,
            },
            edges=4,
        )

    def test_two_file_cycle_through_super_fails_and_names_both_lines(self):
        rc, out = self.check(
            {
                "lib.rs": "mod m;\n",
                "m/mod.rs": "mod a;\nmod b;\n",
                "m/a.rs": """
                    use std::fmt;

                    use super::b::B;
                    pub struct A(B);
                """,
                "m/b.rs": """
                    pub struct B;
                    pub fn make() -> super::a::A { todo!() }
                """,
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("file cycle 1 (2 files): m/a.rs m/b.rs", out)
        self.assertIn("m/a.rs:3 -> m/b.rs  super::b::B", out)
        self.assertIn("m/b.rs:2 -> m/a.rs  super::a::A", out)
        self.assertNotIn("top-level cycle 1", out)  # both files are under `m`

    def test_cycle_only_visible_through_a_re_export(self):
        rc, out = self.check(
            {
                "lib.rs": "mod m;\n",
                "m/mod.rs": """
                    mod a;
                    mod b;
                    pub use a::X;
                """,
                "m/a.rs": """
                    use super::b::Y;
                    pub struct X(Y);
                """,
                "m/b.rs": """
                    use super::X;
                    pub struct Y;
                    pub fn f(_: X) {}
                """,
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("file cycle 1 (2 files): m/a.rs m/b.rs", out)
        self.assertIn("m/b.rs:1 -> m/a.rs  super::X", out)
        self.assertIn("m/a.rs:1 -> m/b.rs  super::b::Y", out)
        self.assertNotIn("m/mod.rs", out)  # the re-export line is no edge

    def test_re_export_chains_and_globs_are_followed(self):
        rc, out = self.check(
            {
                "lib.rs": "pub mod p;\npub mod q;\n",
                "p/mod.rs": """
                    mod inner;
                    pub use inner::*;
                """,
                "p/inner/mod.rs": """
                    mod deep;
                    pub(crate) use self::deep::{Deep as Renamed};
                """,
                "p/inner/deep.rs": """
                    pub struct Deep;
                    pub fn g() -> crate::q::Q { crate::q::Q }
                """,
                "q.rs": """
                    pub struct Q;
                    pub fn h(_: crate::p::Renamed) {}
                """,
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("p/inner/deep.rs q.rs", out)
        self.assertIn("q.rs:2 -> p/inner/deep.rs  crate::p::Renamed", out)
        self.assertIn("top-level cycle 1: p <-> q", out)

    def test_parent_re_exporting_children_used_one_way_is_no_cycle(self):
        self.assert_clean(
            {
                "lib.rs": "pub mod m;\n",
                "m/mod.rs": """
                    mod a;
                    mod b;
                    pub use a::{A, make_a};
                    pub use b::B;

                    /// The parent's own type, used by its children.
                    pub struct Shared;
                """,
                "m/a.rs": """
                    use super::Shared;
                    pub struct A(pub Shared);
                    pub fn make_a() -> A { A(Shared) }
                """,
                "m/b.rs": """
                    use super::{A, Shared};
                    pub struct B(A, Shared);
                    pub fn make() -> B { B(super::make_a(), Shared) }
                """,
            },
            edges=3,
        )

    def test_parent_using_what_it_re_exports_is_an_edge(self):
        rc, out = self.check(
            {
                "lib.rs": "pub mod m;\n",
                "m/mod.rs": """
                    mod a;
                    pub use a::{Item, build};
                    pub enum Stage { Item, Other }
                    pub struct Shared;
                    pub fn both() -> Item { build() }
                """,
                "m/a.rs": """
                    pub struct Item(super::Shared);
                    pub fn build() -> Item { Item(super::Shared) }
                """,
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("m/mod.rs:5 -> m/a.rs  Item", out)  # line 3's enum variant `Item` is not a use
        self.assertNotIn("m/mod.rs:3", out)

    def test_comments_and_strings_make_no_edge(self):
        self.assert_clean(
            {
                "lib.rs": "pub mod a;\npub mod b;\n",
                "a.rs": '''
                    //! Module docs: see [`crate::b::B`] and crate::b::make().
                    /// Uses `crate::b::B` in prose.
                    pub struct A;
                    /* block comment crate::b::B /* nested crate::b::B */ still comment crate::b::B */
                    pub fn f() -> (&'static str, &'static str, char, char) {
                        let _ = r#"raw "crate::b::B" { "#;
                        ("crate::b::B", "super::b::make()", '{', '"')
                    }
                    #[doc = "crate::b::B"]
                    pub fn g() {}
                ''',
                "b.rs": """
                    use crate::a::A;
                    pub struct B(A);
                    pub fn make() -> B { B(A) }
                """,
            },
            edges=1,
        )

    def test_cfg_test_code_makes_no_edge(self):
        self.assert_clean(
            {
                "lib.rs": "pub mod a;\npub mod b;\n",
                "a.rs": """
                    use crate::b::B;
                    pub struct A(B);
                """,
                "b.rs": """
                    pub struct B;

                    #[cfg(test)]
                    use crate::a::A;

                    #[cfg(test)]
                    fn helper() -> crate::a::A { todo!() }

                    #[cfg(test)]
                    #[allow(clippy::all)]
                    mod tests {
                        use super::*;
                        use crate::a::A;

                        #[test]
                        fn t() {
                            let _ = crate::a::A(B);
                            let _ = '}';
                        }
                    }

                    #[cfg(test)]
                    mod file_tests;

                    pub fn after_tests() {}
                """,
                "b/file_tests.rs": "use crate::a::A;\n",
            },
            edges=1,
        )

    def test_top_level_cycle_without_a_file_cycle(self):
        rc, out = self.check(
            {
                "lib.rs": "mod image;\nmod pipeline;\n",
                "image/mod.rs": "pub mod control;\npub mod resize;\n",
                "image/control.rs": "use crate::pipeline::Progress;\npub fn depth(_: Progress) {}\n",
                "image/resize.rs": "pub fn crop() {}\n",
                "pipeline/mod.rs": "mod vae;\npub struct Progress;\n",
                "pipeline/vae.rs": "pub fn decode() { crate::image::resize::crop() }\n",
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("0 file cycle(s), 1 top-level cycle(s)", out)
        self.assertIn("top-level cycle 1: image <-> pipeline", out)
        self.assertIn("image/control.rs:1 -> pipeline/mod.rs  crate::pipeline::Progress", out)
        self.assertIn("pipeline/vae.rs:1 -> image/resize.rs  crate::image::resize::crop", out)

    def test_crate_root_is_no_node(self):
        files = {
            "main.rs": """
                mod generate;
                pub struct Args;
                fn main() { generate::run(Args) }
            """,
            "generate.rs": "use crate::Args;\npub fn run(_: Args) {}\n",
        }
        rc, out = self.check(files)
        self.assertEqual(rc, 0, out)
        rc, out = self.check(files, "--include-root")
        self.assertEqual(rc, 1, out)
        self.assertIn("file cycle 1 (2 files): generate.rs main.rs", out)

    def test_module_binding_and_inline_modules_resolve(self):
        rc, out = self.check(
            {
                "lib.rs": "pub mod a;\npub mod b;\n",
                "a.rs": """
                    use crate::b;
                    mod inner {
                        pub fn f() { super::super::b::g() }
                    }
                    pub fn h() { b::g(); }
                    pub fn k() {}
                """,
                "b.rs": """
                    use crate::a::{self as other};
                    pub fn g() { other::k() }
                    pub fn external() -> image::RgbImage { image::RgbImage::new(1, 1) }
                """,
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("a.rs:3 -> b.rs  super::super::b::g", out)
        self.assertIn("a.rs:5 -> b.rs  b::g", out)
        self.assertIn("b.rs:2 -> a.rs  other::k", out)
        self.assertNotIn("b.rs:1 ", out)  # importing a module is no edge by itself
        self.assertNotIn("image::", out)  # another crate

    def test_path_attribute_and_missing_module_file(self):
        rc, out = self.check(
            {
                "lib.rs": '#[path = "elsewhere/impl_a.rs"]\nmod a;\nmod b;\nmod gone;\n',
                "elsewhere/impl_a.rs": "pub fn f() { crate::b::g() }\n",
                "b.rs": "pub fn g() { crate::a::f() }\n",
            }
        )
        self.assertEqual(rc, 1, out)
        self.assertIn("file cycle 1 (2 files): b.rs elsewhere/impl_a.rs", out)
        self.assertIn("warning: lib.rs:4: `mod gone;` has no file", out)

    def test_default_dirs_on_this_repository_run_fast(self):
        repo = os.path.dirname(os.path.dirname(SCRIPT))
        if not os.path.isfile(os.path.join(repo, "crates", "engine", "src", "lib.rs")):
            self.skipTest("not in the Pigment repository")
        run = subprocess.run([sys.executable, SCRIPT], cwd=repo, capture_output=True, text=True, timeout=30)
        self.assertIn(run.returncode, (0, 1), run.stderr)
        self.assertIn("check-module-cycles:", run.stdout)


if __name__ == "__main__":
    unittest.main()
