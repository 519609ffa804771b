//! `iok merge` inputs beyond a list of files (issue 13): a directory
//! stands for its `*.pfw` / `*.pfw.gz` files sorted by name, and
//! `--inputs-from FILE` reads paths one a line; both with and without
//! `--mpi`. Without the `mpi` feature `--mpi` is a clear error naming the
//! feature and the build command; with it, `--mpi` outside mpirun is one
//! rank (an MPI singleton) and must merge exactly like a plain run.
//!
//! Runs the built `iok` like `tests/cli.rs`; every merge is `--ordered`,
//! so the expected output is the inputs' concatenation in the order the
//! command line (after expansion) gives them.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

const IOK: &str = env!("CARGO_BIN_EXE_iok");

fn iok(args: &[&str]) -> Output {
    Command::new(IOK)
        .args(args)
        .env_remove("IOKERNEL_MIMIC_LUSTRE")
        .output()
        .expect("run iok")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstderr: {}",
        out.status,
        stderr_of(out)
    );
}

fn assert_fails_naming(args: &[&str], needles: &[&str]) {
    let out = iok(args);
    assert!(!out.status.success(), "iok {} succeeded", args.join(" "));
    let err = stderr_of(&out);
    for needle in needles {
        assert!(
            err.contains(needle),
            "iok {}: stderr does not mention {needle:?}:\n{err}",
            args.join(" ")
        );
    }
}

/// `count` JSON lines tagged `tag`.
fn lines(tag: &str, count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| {
            format!(
                "{{\"name\":\"{tag}\",\"i\":{i},\"pad\":\"{}\"}}\n",
                "x".repeat(i % 97)
            )
            .into_bytes()
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A directory with `b.pfw`, `a.pfw.gz`, `C.pfw` (sorts first: bytes),
/// and files a directory input must skip: `notes.txt`, `x.pfw.bak`, and
/// `sub/d.pfw` (not recursive). Returns the expected ordered output.
fn trace_dir(dir: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let (a, b, c) = (lines("a", 3000), lines("b", 2000), lines("C", 500));
    std::fs::write(dir.join("a.pfw.gz"), gzip(&a)).unwrap();
    std::fs::write(dir.join("b.pfw"), &b).unwrap();
    std::fs::write(dir.join("C.pfw"), &c).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a trace\n").unwrap();
    std::fs::write(dir.join("x.pfw.bak"), b"{\"skip\":1}\n").unwrap();
    std::fs::write(dir.join("sub").join("d.pfw"), b"{\"nested\":1}\n").unwrap();
    [c, a, b].concat()
}

fn merge_ordered(args: &[&str], out: &Path) -> Vec<u8> {
    let mut all = vec!["merge", "--ordered", "--force", "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let result = iok(&all);
    assert_ok(&result, &all.join(" "));
    std::fs::read(out).unwrap()
}

#[test]
fn a_directory_input_is_its_trace_files_sorted_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("traces");
    let expected = trace_dir(&dir);
    let out = tmp.path().join("out.pfw");
    assert_eq!(merge_ordered(&[dir.to_str().unwrap()], &out), expected);
    // A directory among files keeps its place in the order.
    let extra = tmp.path().join("extra.jsonl");
    std::fs::write(&extra, lines("e", 100)).unwrap();
    let got = merge_ordered(&[extra.to_str().unwrap(), dir.to_str().unwrap()], &out);
    assert_eq!(got, [lines("e", 100), expected].concat());
}

#[test]
fn a_directory_without_trace_files_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("out.pfw");
    let (empty_s, out_s) = (empty.to_str().unwrap(), out.to_str().unwrap());
    assert_fails_naming(
        &["merge", empty_s, "-o", out_s],
        &[empty_s, "*.pfw", "*.pfw.gz"],
    );
    // Only files that do not match: still nothing to merge.
    std::fs::write(empty.join("readme.txt"), b"x\n").unwrap();
    assert_fails_naming(&["merge", empty_s, "-o", out_s], &[empty_s, "no *.pfw"]);
    assert!(!out.exists(), "a failed merge left {}", out.display());
}

#[test]
fn inputs_from_reads_one_path_a_line_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("traces");
    let from_dir = trace_dir(&dir);
    let one = tmp.path().join("one.pfw");
    let two = tmp.path().join("two with space.pfw");
    std::fs::write(&one, lines("one", 700)).unwrap();
    std::fs::write(&two, lines("two", 300)).unwrap();
    // Blank lines, a whitespace-only line, a CRLF line and a directory.
    let list = tmp.path().join("list.txt");
    let text = format!(
        "{}\n\n   \n{}\r\n{}\n",
        two.display(),
        dir.display(),
        one.display()
    );
    std::fs::write(&list, text).unwrap();
    let out = tmp.path().join("out.pfw");
    let list_s = list.to_str().unwrap();
    let expected = [lines("two", 300), from_dir.clone(), lines("one", 700)].concat();
    assert_eq!(merge_ordered(&["--inputs-from", list_s], &out), expected);
    // Positional inputs come first, then the list.
    let got = merge_ordered(&[one.to_str().unwrap(), "--inputs-from", list_s], &out);
    assert_eq!(got, [lines("one", 700), expected].concat());
}

/// `iok args` with `stdin` as its standard input.
fn iok_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(IOK)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `iok args` fed `stdin` is refused: exit 1, `needle` in its message,
/// nothing created at `out`.
fn assert_refused_with_stdin(args: &[&str], stdin: &[u8], needle: &str, out: &Path) {
    let done = iok_with_stdin(args, stdin);
    assert_eq!(
        done.status.code(),
        Some(1),
        "{args:?}: {}",
        stderr_of(&done)
    );
    assert!(stderr_of(&done).contains(needle), "{}", stderr_of(&done));
    assert!(!out.exists(), "{args:?} created {}", out.display());
}

/// `--inputs-from -` reads the list from stdin (as `tar --files-from=-`);
/// stdin cannot then be an input `-` as well, which is refused.
#[test]
fn inputs_from_dash_reads_the_list_from_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one.pfw");
    let two = tmp.path().join("two.pfw");
    std::fs::write(&one, lines("one", 70)).unwrap();
    std::fs::write(&two, lines("two", 30)).unwrap();
    let list = format!("{}\n{}\n", two.display(), one.display());
    let out = tmp.path().join("out.pfw");
    let out_s = out.to_str().unwrap();
    let done = iok_with_stdin(
        &["merge", "--inputs-from", "-", "-o", out_s, "--ordered"],
        list.as_bytes(),
    );
    assert_ok(&done, "merge --inputs-from -");
    let expected = [lines("two", 30), lines("one", 70)].concat();
    assert_eq!(std::fs::read(&out).unwrap(), expected);

    let again = tmp.path().join("again.pfw");
    let again_s = again.to_str().unwrap();
    let args = ["merge", "-", "--inputs-from", "-", "-o", again_s];
    assert_refused_with_stdin(&args, list.as_bytes(), "--inputs-from -", &again);
}

#[test]
fn inputs_from_errors_name_the_list_or_the_missing_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.pfw");
    let out_s = out.to_str().unwrap();
    let missing_list = tmp.path().join("no-such-list.txt");
    let missing_list_s = missing_list.to_str().unwrap();
    assert_fails_naming(
        &["merge", "--inputs-from", missing_list_s, "-o", out_s],
        &["--inputs-from", missing_list_s, "No such file"],
    );
    let list = tmp.path().join("list.txt");
    let gone = tmp.path().join("gone.pfw");
    std::fs::write(&list, format!("{}\n", gone.display())).unwrap();
    let list_s = list.to_str().unwrap();
    assert_fails_naming(
        &["merge", "--inputs-from", list_s, "-o", out_s],
        &[gone.to_str().unwrap(), "No such file"],
    );
    std::fs::write(&list, "\n  \n").unwrap();
    assert_fails_naming(
        &["merge", "--inputs-from", list_s, "-o", out_s],
        &["no inputs", list_s],
    );
    assert!(!out.exists(), "a failed merge left {}", out.display());
}

#[cfg(not(feature = "mpi"))]
#[test]
fn mpi_without_the_feature_names_the_feature_and_the_build_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("traces");
    trace_dir(&dir);
    let out = tmp.path().join("out.pfw");
    let args = [
        "merge",
        "--mpi",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    assert_fails_naming(
        &args,
        &["--mpi", "`mpi`", "cargo build --release --features mpi"],
    );
    assert!(!out.exists());
}

/// With the feature and no mpirun, `--mpi` is an MPI singleton: one rank
/// that merges like a plain run, directory and list inputs included, and
/// prints the one summary naming the ranks.
#[cfg(feature = "mpi")]
#[test]
fn mpi_singleton_merges_like_a_plain_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("traces");
    let expected = trace_dir(&dir);
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, format!("{}\n", dir.display())).unwrap();
    let out = tmp.path().join("out.pfw");
    let args = [
        "merge",
        "--mpi",
        "--ordered",
        "--force",
        "--inputs-from",
        list.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let result = iok(&args);
    assert_ok(&result, "iok merge --mpi (singleton)");
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(summary.contains("across 1 MPI ranks"), "{summary}");
    assert!(summary.contains("3 input(s)"), "{summary}");
}

/// Under `--mpi` every rank reads the list, and mpirun gives stdin to rank
/// 0 only: `--inputs-from -` is refused, saying so, nothing created.
#[cfg(feature = "mpi")]
#[test]
fn mpi_refuses_an_inputs_from_list_on_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one.pfw");
    std::fs::write(&one, lines("one", 10)).unwrap();
    let out = tmp.path().join("out.pfw");
    let args = [
        "merge",
        "--mpi",
        "--inputs-from",
        "-",
        "-o",
        out.to_str().unwrap(),
    ];
    let list = format!("{}\n", one.display());
    assert_refused_with_stdin(&args, list.as_bytes(), "rank 0 only", &out);
}
