//! CI gate for the floor plan (DESIGN.md, "Layers"): a module never
//! imports a layer above it, io_uring stays inside its driver, and no
//! source file grows past 1 500 lines.
//!
//! Reads `src/` as text. Comments (doc comments included) and test modules
//! (from the first `#[cfg(test)]` / `#[cfg(all(test, ...))]` on, which is
//! where this crate keeps them) are ignored: tests may use any layer.
//! A path counts as an import of module `m` when the code names
//! `crate::m` (also inside a `crate::{..}` group).
//!
//! The simulated machine lives under `src/sys/sim` and so obeys the seam's
//! rule (nothing above `sys`); the sim runner (`src/sim`) may use the
//! runtime and the drivers but not the writer.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Most lines a file under `src/` may have.
const MAX_LINES: usize = 1500;

/// Files allowed past [`MAX_LINES`], with the size they may not exceed
/// (none today).
const OVERSIZED: &[(&str, usize)] = &[];

/// Known violations, each `(file, imported module)` (none today).
const EXCEPTIONS: &[(&str, &str)] = &[];

/// The modules a file may not import, by where it lives. `io_uring` stands
/// for the io-uring crate.
fn forbidden(file: &str) -> &'static [&'static str] {
    const ABOVE_SYS: &[&str] = &[
        "op", "driver", "runtime", "io", "fs", "net", "writer", "sim", "io_uring",
    ];
    let under = |dir: &str| file.starts_with(dir);
    if under("src/sys/real/") {
        // The real kernel's FFI may use the io-uring crate (the ring probe).
        return &[
            "op", "driver", "runtime", "io", "fs", "net", "writer", "sim",
        ];
    }
    if file == "src/sys/ring.rs" {
        // The ring seam carries the prepared io_uring entry.
        return &[
            "op", "driver", "runtime", "io", "fs", "net", "writer", "sim",
        ];
    }
    if under("src/sys/") {
        return ABOVE_SYS;
    }
    if under("src/op/") || under("src/buf/") {
        return &[
            "driver", "runtime", "io", "fs", "net", "writer", "sim", "io_uring",
        ];
    }
    if under("src/driver/uring/") {
        return &["runtime", "io", "fs", "net", "writer", "sim"];
    }
    if under("src/driver/") {
        return &["runtime", "io", "fs", "net", "writer", "sim", "io_uring"];
    }
    if under("src/runtime/") {
        return &["io", "fs", "net", "writer", "sim", "io_uring"];
    }
    if under("src/io/") || under("src/fs/") || under("src/net/") {
        return &["writer", "sim", "io_uring"];
    }
    if under("src/writer/") {
        return &["sim", "io_uring"];
    }
    if under("src/sim/") {
        return &["writer", "io_uring"];
    }
    &[]
}

/// `text` without comments, string-literal contents left alone (a comment
/// marker inside a string is rare enough here not to matter), and without
/// the test modules at the end of the file.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") || trimmed.starts_with("#[cfg(all(test") {
            break;
        }
        code.push_str(line);
        code.push('\n');
    }
    strip_comments(&code)
}

fn strip_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let bytes = code.as_bytes();
    let (mut i, mut depth, mut in_string) = (0, 0usize, false);
    while i < bytes.len() {
        let rest = &bytes[i..];
        if depth > 0 {
            if rest.starts_with(b"*/") {
                depth -= 1;
                i += 2;
            } else if rest.starts_with(b"/*") {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        if in_string {
            if rest.starts_with(b"\\") && rest.len() > 1 {
                out.push_str(&code[i..i + 2]);
                i += 2;
                continue;
            }
            if rest[0] == b'"' {
                in_string = false;
            }
        } else if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if rest.starts_with(b"/*") {
            depth = 1;
            i += 2;
            continue;
        } else if rest[0] == b'"' && !(i > 0 && bytes[i - 1] == b'\'') {
            in_string = true;
        }
        let ch = code[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The top-level modules `code` names: `crate::m` and `crate::{m, n::..}`,
/// plus `io_uring` for the io-uring crate.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = &rest[at + "crate::".len()..];
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                // Split the group at its own commas (not nested ones).
                let mut depth = 0;
                let mut item_start = 0;
                for (k, c) in group.char_indices() {
                    let end_of_item = match c {
                        '{' => {
                            depth += 1;
                            false
                        }
                        '}' if depth == 0 => true,
                        '}' => {
                            depth -= 1;
                            false
                        }
                        ',' => depth == 0,
                        _ => false,
                    };
                    if end_of_item {
                        let name = ident(group[item_start..k].trim_start());
                        if !name.is_empty() {
                            found.insert(name);
                        }
                        item_start = k + 1;
                        if c == '}' {
                            break;
                        }
                    }
                }
            } else {
                let name = ident(after);
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
        rest = after;
    }
    let mut rest = code;
    while let Some(at) = rest.find("io_uring::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !preceded_by_ident {
            found.insert("io_uring".to_string());
        }
        rest = &rest[at + "io_uring::".len()..];
    }
    found
}

/// Every violation in the file at `rel` (a path like `src/op/mod.rs`)
/// whose text is `text`.
fn violations(rel: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lines = text.lines().count();
    let cap = OVERSIZED
        .iter()
        .find(|(file, _)| *file == rel)
        .map_or(MAX_LINES, |&(_, cap)| cap);
    if lines > cap {
        found.push(format!(
            "{rel}: {lines} lines, more than {cap}: split it by what it owns"
        ));
    }
    let imported = imports(&code_of(text));
    for module in forbidden(rel) {
        if imported.contains(*module) && !EXCEPTIONS.contains(&(rel, *module)) {
            found.push(format!(
                "{rel} imports `{module}`, a layer it may not use (DESIGN.md, Layers)"
            ));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_layer_above_it_and_no_file_is_too_long() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(
        files.len() > 40,
        "found only {} files under src/",
        files.len()
    );
    let mut all = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(root)
            .expect("under the crate")
            .to_string_lossy()
            .replace('\\', "/");
        let text =
            fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        all.extend(violations(&rel, &text));
    }
    assert!(all.is_empty(), "layer violations:\n{}", all.join("\n"));
}

#[test]
fn exceptions_are_still_needed() {
    // An exception that no longer matches anything must be deleted, so the
    // list only ever shrinks.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, module) in EXCEPTIONS {
        let text = fs::read_to_string(root.join(file)).expect("excepted file exists");
        assert!(
            imports(&code_of(&text)).contains(*module),
            "{file} no longer imports `{module}`: remove the exception"
        );
    }
    for (file, _) in OVERSIZED {
        let text = fs::read_to_string(root.join(file)).expect("oversized file exists");
        assert!(
            text.lines().count() > MAX_LINES,
            "{file} fits in {MAX_LINES} lines now: remove it from OVERSIZED"
        );
    }
}

#[test]
fn the_checker_catches_what_it_must_and_ignores_comments_and_tests() {
    let upward = "use crate::runtime::context;\nfn f() {}\n";
    assert_eq!(violations("src/driver/op.rs", upward).len(), 1);
    assert_eq!(violations("src/op/mod.rs", upward).len(), 1);
    assert!(violations("src/io/mod.rs", upward).is_empty());
    let grouped = "use crate::{buf::IoBuf, driver::Driver};\n";
    assert_eq!(violations("src/op/file.rs", grouped).len(), 1);
    assert!(violations("src/runtime/mod.rs", grouped).is_empty());
    let inline = "fn f() { let k = crate::writer::encode_v1(1, 2); }\n";
    assert_eq!(violations("src/sys/real/kernel.rs", inline).len(), 1);
    assert_eq!(violations("src/sim/net.rs", inline).len(), 1);
    let uring = "fn e() -> io_uring::squeue::Entry { todo!() }\n";
    assert_eq!(violations("src/op/path.rs", uring).len(), 1);
    assert_eq!(violations("src/driver/pool/mod.rs", uring).len(), 1);
    assert!(violations("src/driver/uring/ops.rs", uring).is_empty());
    let commented = "//! See `crate::runtime` for the loop.\n/* crate::writer */\n\
                     // use crate::runtime;\nlet s = \"crate::driver\";\n";
    assert_eq!(
        violations("src/op/mod.rs", commented).len(),
        1,
        "comments are ignored, code (even a string) is not"
    );
    let in_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::sim;\n}\n";
    assert!(violations("src/driver/completion.rs", in_tests).is_empty());
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    assert_eq!(violations("src/io/mod.rs", &long).len(), 1);
    assert!(violations("src/io/mod.rs", &"\n".repeat(MAX_LINES)).is_empty());
}
