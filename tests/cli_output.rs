//! The output side of `iok merge` / `iok pgzip` end to end (issue 11,
//! "lose nothing, ever"): an output that is an input is refused and the
//! input kept byte for byte; an existing output needs `--force`; character
//! devices, FIFOs and `-o -` are written as streams and never removed or
//! replaced; concurrent atomic-rename runs never mix; a signal removes the
//! partial output and exits 128+signo; a closed stdout is no panic.
//!
//! Runs the built `iok` like `tests/cli.rs`. Special files are made with
//! `mknod`/`mkfifo`; where that is not permitted the test says so.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

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

/// `count` JSON lines tagged `tag`, a few hundred bytes each.
fn lines(tag: &str, count: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..count {
        let pad = "x".repeat((i * 37) % 400);
        writeln!(text, r#"{{"src":"{tag}","i":{i},"pad":"{pad}"}}"#).unwrap();
    }
    text
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

fn sorted_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut all: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    all.sort();
    all
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

struct Pair {
    dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    a_bytes: Vec<u8>,
    b_bytes: Vec<u8>,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pfw");
    let b = dir.path().join("b.pfw");
    let (a_bytes, b_bytes) = (lines("a", 3000), lines("b", 2000));
    std::fs::write(&a, &a_bytes).unwrap();
    std::fs::write(&b, &b_bytes).unwrap();
    Pair {
        dir,
        a,
        b,
        a_bytes,
        b_bytes,
    }
}

/// `args` fails, names `needles` on stderr, and `input` keeps `bytes`.
fn refused_keeping(args: &[&str], needles: &[&str], input: &Path, bytes: &[u8]) {
    let out = iok(args);
    assert!(!out.status.success(), "iok {} succeeded", args.join(" "));
    let err = stderr_of(&out);
    for needle in needles {
        assert!(err.contains(needle), "iok {}: {err}", args.join(" "));
    }
    assert!(
        std::fs::read(input).unwrap() == bytes,
        "iok {}: {} changed",
        args.join(" "),
        input.display()
    );
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let p = pair();
    let (a, b) = (s(&p.a), s(&p.b));
    let sym = p.dir.path().join("sym.pfw");
    std::os::unix::fs::symlink(&p.a, &sym).unwrap();
    let hard = p.dir.path().join("hard.pfw");
    std::fs::hard_link(&p.a, &hard).unwrap();
    std::fs::create_dir(p.dir.path().join("sub")).unwrap();
    let dotdot = s(&p.dir.path().join("sub/../a.pfw"));
    let outputs = [a.clone(), s(&sym), s(&hard), dotdot];
    let variants: [&[&str]; 6] = [
        &[],
        &["--force"],
        &["--force", "--layout", "padded"],
        &["--force", "--durability", "none", "--gzip"],
        &["--force", "--durability", "atomic-rename"],
        &["--force", "--producers", "1"],
    ];
    for output in &outputs {
        for extra in variants {
            let mut args = vec!["merge", &a, &b, "-o", output];
            args.extend(extra);
            refused_keeping(&args, &["same file as input", &a], &p.a, &p.a_bytes);
        }
    }
    // Output b, big input first: the merge must not read its own output.
    refused_keeping(
        &["merge", &a, &b, "-o", &b, "--producers", "1", "--force"],
        &["same file as input", &b],
        &p.b,
        &p.b_bytes,
    );
    // A gzip input as the gzip output.
    let gz = p.dir.path().join("a.pfw.gz");
    let gz_bytes = gzip_bytes(&p.a_bytes);
    std::fs::write(&gz, &gz_bytes).unwrap();
    let gz_s = s(&gz);
    refused_keeping(
        &["merge", &gz_s, &b, "-o", &gz_s, "--gzip", "--force"],
        &["same file as input"],
        &gz,
        &gz_bytes,
    );
    // pgzip in place.
    refused_keeping(
        &["pgzip", &a, "-o", &a, "--force"],
        &["same file as input"],
        &p.a,
        &p.a_bytes,
    );
    // An input named like a shard of the output.
    let shard = p.dir.path().join("out.shard_0");
    std::fs::write(&shard, &p.b_bytes).unwrap();
    let out = s(&p.dir.path().join("out"));
    refused_keeping(
        &[
            "merge",
            &s(&shard),
            &a,
            "-o",
            &out,
            "--layout",
            "sharded",
            "--force",
        ],
        &["same file as input", "out.shard_0"],
        &shard,
        &p.b_bytes,
    );
    for keep in [&["--keep-shards"][..], &[]] {
        let mut args = vec!["merge", &a, "-o", &out, "--layout", "sharded"];
        args.extend(keep);
        let shard_s = s(&shard);
        args.insert(1, &shard_s);
        refused_keeping(&args, &["out.shard_0"], &shard, &p.b_bytes);
    }
    assert!(!Path::new(&out).exists());
}

#[test]
fn an_input_named_like_the_temporary_file_is_left_alone() {
    let p = pair();
    let out = p.dir.path().join("out.pfw");
    // The old fixed temp name, and the first name of the new pattern for
    // some pid: both are just files to the writer.
    let old = p.dir.path().join(".out.pfw.iok-tmp");
    let new = p.dir.path().join(".out.pfw.iok-tmp.1.0");
    std::fs::write(&old, &p.a_bytes).unwrap();
    std::fs::write(&new, &p.b_bytes).unwrap();
    let result = iok(&[
        "merge",
        &s(&old),
        &s(&new),
        "-o",
        &s(&out),
        "--durability",
        "atomic-rename",
        "--producers",
        "1",
        "--ordered",
    ]);
    assert_ok(&result, "merge with inputs named like temp files");
    assert_eq!(std::fs::read(&old).unwrap(), p.a_bytes);
    assert_eq!(std::fs::read(&new).unwrap(), p.b_bytes);
    let mut want = p.a_bytes.clone();
    want.extend_from_slice(&p.b_bytes);
    assert!(std::fs::read(&out).unwrap() == want);
}

#[test]
fn an_existing_output_needs_force() {
    let p = pair();
    let out = p.dir.path().join("out.pfw");
    std::fs::write(&out, b"keep me\n").unwrap();
    let (a, b, o) = (s(&p.a), s(&p.b), s(&out));
    refused_keeping(
        &["merge", &a, &b, "-o", &o],
        &["--force", &o],
        &out,
        b"keep me\n",
    );
    refused_keeping(
        &["merge", &a, &b, "-o", &o, "--durability", "atomic-rename"],
        &["--force"],
        &out,
        b"keep me\n",
    );
    refused_keeping(&["pgzip", &a, "-o", &o], &["--force"], &out, b"keep me\n");
    assert_eq!(names_in(p.dir.path()), ["a.pfw", "b.pfw", "out.pfw"]);

    assert_ok(
        &iok(&[
            "merge",
            &a,
            &b,
            "-o",
            &o,
            "--force",
            "--ordered",
            "--producers",
            "1",
        ]),
        "merge --force",
    );
    let mut want = p.a_bytes.clone();
    want.extend_from_slice(&p.b_bytes);
    assert!(std::fs::read(&out).unwrap() == want);
    assert_ok(&iok(&["pgzip", &a, "-o", &o, "-f"]), "pgzip -f");
    assert!(gunzip(&std::fs::read(&out).unwrap()) == p.a_bytes);
}

/// `--force` replaces the old output only with a complete new one: a run
/// that fails on a corrupt input, or is interrupted, leaves the old output
/// byte for byte and no temporary file (the new output is written under a
/// temporary name and renamed over the old at the end).
#[test]
fn a_force_run_that_fails_or_is_interrupted_keeps_the_old_output() {
    let p = pair();
    let out = p.dir.path().join("out.pfw");
    let old = b"the previous merge\n".to_vec();
    std::fs::write(&out, &old).unwrap();
    let corrupt = p.dir.path().join("corrupt.pfw.gz");
    let mut bytes = gzip_bytes(&lines("z", 2000));
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b = !*b;
    }
    std::fs::write(&corrupt, &bytes).unwrap();
    let (a, c, o) = (s(&p.a), s(&corrupt), s(&out));
    for extra in [&[][..], &["--gzip"][..], &["--layout", "sharded"][..]] {
        let mut args = vec!["merge", &a, &c, "-o", &o, "--force"];
        args.extend_from_slice(extra);
        let done = iok(&args);
        assert!(
            !done.status.success(),
            "{args:?}: the corrupt input is an error"
        );
        assert!(
            stderr_of(&done).contains("corrupt.pfw.gz"),
            "{}",
            stderr_of(&done)
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            old,
            "{args:?}: the old output is kept"
        );
        assert_eq!(
            names_in(p.dir.path()),
            ["a.pfw", "b.pfw", "corrupt.pfw.gz", "out.pfw"],
            "{args:?}: nothing else is left"
        );
    }

    // Interrupted mid-run (SIGINT once the new output's temporary file
    // exists): the old output stays, the temporary file goes.
    let big = big_input(p.dir.path());
    let gz = p.dir.path().join("big.pfw.gz");
    std::fs::write(&gz, &old).unwrap();
    let mut args = slow_pgzip_args(&big, &gz);
    args.push("--force".into());
    let done = interrupt(
        &strs(&args),
        &p.dir.path().join(".big.pfw.gz.iok-tmp"),
        "-INT",
    );
    assert_eq!(done.status.code(), Some(130), "{}", stderr_of(&done));
    assert_eq!(std::fs::read(&gz).unwrap(), old, "the old output is kept");
    assert!(
        !names_in(p.dir.path())
            .iter()
            .any(|n| n.contains(".iok-tmp.")),
        "{:?}",
        names_in(p.dir.path())
    );
}

/// Runs `iok args` with stdout (and stderr) on a pseudo-terminal, through
/// util-linux `script`; the exit status and what the terminal showed.
fn iok_on_a_terminal(args: &[&str]) -> (Option<i32>, String) {
    let quoted: Vec<String> = std::iter::once(IOK)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("this test needs util-linux `script` (Debian: bsdutils) for a terminal");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// As gzip and pigz do, compressed output is not written to a terminal:
/// `-o -` with stdout a terminal is refused for pgzip and merge --gzip
/// (exit 1, saying why, before anything is read), and written with
/// `--force`; plain merge output goes to a terminal as `cat` would.
#[test]
fn compressed_output_to_a_terminal_is_refused_unless_forced() {
    let p = pair();
    let a = s(&p.a);
    for args in [
        &["pgzip", &a, "-o", "-"][..],
        &["merge", &a, "--gzip", "-o", "-"][..],
    ] {
        let (code, shown) = iok_on_a_terminal(args);
        assert_eq!(code, Some(1), "{args:?}: {shown}");
        assert!(
            shown.contains("refusing to write compressed data to a terminal"),
            "{shown}"
        );
        assert!(
            !shown.contains('\u{1f}'),
            "{args:?}: no gzip bytes reached the terminal"
        );
        let mut forced = args.to_vec();
        forced.push("--force");
        let (code, shown) = iok_on_a_terminal(&forced);
        assert_eq!(code, Some(0), "{forced:?}: {shown}");
    }
    let (code, shown) = iok_on_a_terminal(&["merge", &a, "-o", "-"]);
    assert_eq!(code, Some(0), "{shown}");
    let first = String::from_utf8_lossy(&p.a_bytes);
    assert!(shown.contains(first.lines().next().unwrap()), "{shown}");
}

/// A plain merge output named `.gz` would fail every gzip reader later:
/// it is refused before anything is read or created, saying to pass
/// `--gzip`; with `--gzip` it is written (and is gzip).
#[test]
fn a_plain_output_named_gz_is_refused() {
    let p = pair();
    let (a, b) = (s(&p.a), s(&p.b));
    for name in ["out.pfw.gz", "OUT.GZ"] {
        let out = s(&p.dir.path().join(name));
        let done = iok(&["merge", &a, &b, "-o", &out]);
        assert_eq!(done.status.code(), Some(1), "{}", stderr_of(&done));
        let err = stderr_of(&done);
        assert!(err.contains(name) && err.contains("--gzip"), "{err}");
        assert_eq!(
            names_in(p.dir.path()),
            ["a.pfw", "b.pfw"],
            "nothing created"
        );
    }
    let out = p.dir.path().join("out.pfw.gz");
    assert_ok(
        &iok(&["merge", &a, &b, "-o", &s(&out), "--gzip"]),
        "merge --gzip",
    );
    assert!(sorted_lines(&gunzip(&std::fs::read(&out).unwrap())).len() > 1);
}

/// `mknod path c 1 <minor>` (1,3 is /dev/null, 1,7 is /dev/full); false
/// (with the reason printed) where not permitted.
fn mknod_char(path: &Path, minor: u32) -> bool {
    let out = Command::new("mknod")
        .arg(path)
        .args(["c", "1", &minor.to_string()])
        .output()
        .expect("run mknod");
    if !out.status.success() {
        println!("skipped: mknod not permitted here: {}", stderr_of(&out));
    }
    out.status.success()
}

fn assert_char_device(path: &Path, minor: u64) {
    let meta = std::fs::symlink_metadata(path).expect("the node still exists");
    assert!(
        meta.file_type().is_char_device(),
        "{} is still a character device",
        path.display()
    );
    assert_eq!(meta.rdev() & 0xff, minor, "same device");
}

#[test]
fn character_device_outputs_are_written_and_never_removed_or_replaced() {
    let p = pair();
    let (a, b) = (s(&p.a), s(&p.b));
    let null = p.dir.path().join("null");
    let full = p.dir.path().join("full");
    if !mknod_char(&null, 3) || !mknod_char(&full, 7) {
        return;
    }
    for extra in [&[][..], &["--gzip"], &["--durability", "none"]] {
        let mut args = vec!["merge", &a, &b, "-o", null.to_str().unwrap()];
        args.extend(extra);
        assert_ok(&iok(&args), "merge to a /dev/null copy");
        assert_char_device(&null, 3);
    }
    // The real /dev/null too (we run as root: it must survive).
    assert_ok(
        &iok(&["merge", &a, &b, "-o", "/dev/null"]),
        "merge -o /dev/null",
    );
    assert_char_device(Path::new("/dev/null"), 3);
    // A failing device: the run fails, the node stays.
    let out = iok(&["merge", &a, &b, "-o", full.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("No space left"),
        "{}",
        stderr_of(&out)
    );
    assert_char_device(&full, 7);
    // Refused without touching it: atomic-rename, padded, sharded.
    for extra in [
        &["--durability", "atomic-rename"][..],
        &["--layout", "padded"],
        &["--layout", "sharded"],
    ] {
        let mut args = vec!["merge", &a, &b, "-o", null.to_str().unwrap()];
        args.extend(extra);
        let out = iok(&args);
        assert!(!out.status.success(), "{extra:?} accepted for a device");
        assert!(stderr_of(&out).contains("stream"), "{}", stderr_of(&out));
        assert_char_device(&null, 3);
    }
    assert_eq!(names_in(p.dir.path()), ["a.pfw", "b.pfw", "full", "null"]);
}

fn mkfifo(path: &Path) -> bool {
    let out = Command::new("mkfifo")
        .arg(path)
        .output()
        .expect("run mkfifo");
    if !out.status.success() {
        println!("skipped: mkfifo not permitted here: {}", stderr_of(&out));
    }
    out.status.success()
}

fn assert_fifo(path: &Path) {
    let meta = std::fs::symlink_metadata(path).expect("the FIFO still exists");
    assert!(
        meta.file_type().is_fifo(),
        "{} is still a FIFO",
        path.display()
    );
}

/// Read `path` on a thread: all of it, or `limit` bytes and then close.
fn drain(path: &Path, limit: Option<usize>) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_path_buf();
    #[allow(clippy::disallowed_methods)] // a test reader thread
    std::thread::spawn(move || {
        let mut file = std::fs::File::open(&path).unwrap();
        let mut got = Vec::new();
        match limit {
            None => {
                file.read_to_end(&mut got).unwrap();
            }
            Some(n) => {
                got.resize(n, 0);
                file.read_exact(&mut got).unwrap();
            }
        }
        got
    })
}

#[test]
fn a_fifo_output_gets_every_line_in_order_and_survives() {
    let p = pair();
    let (a, b) = (s(&p.a), s(&p.b));
    let fifo = p.dir.path().join("fifo");
    if !mkfifo(&fifo) {
        return;
    }
    let f = s(&fifo);
    // Many producers: every line, none broken.
    let reader = drain(&fifo, None);
    assert_ok(
        &iok(&["merge", &a, &b, "-o", &f, "--producers", "4"]),
        "merge to a FIFO",
    );
    let got = reader.join().unwrap();
    let mut want = p.a_bytes.clone();
    want.extend_from_slice(&p.b_bytes);
    assert_eq!(got.len(), want.len());
    assert!(
        sorted_lines(&got) == sorted_lines(&want),
        "every line, whole"
    );
    assert_fifo(&fifo);
    // Ordered, one producer: exactly the inputs; gzip in member order.
    let reader = drain(&fifo, None);
    assert_ok(
        &iok(&[
            "merge",
            &a,
            &b,
            "-o",
            &f,
            "--producers",
            "1",
            "--ordered",
            "--gzip",
        ]),
        "merge --gzip to a FIFO",
    );
    assert!(gunzip(&reader.join().unwrap()) == want);
    assert_fifo(&fifo);
    // The reader comes after the run started: the run waits for it, on
    // every backend (io_uring's own open would fail with ENXIO).
    for backend in ["uring", "epoll", "pool"] {
        let mut run = Command::new(IOK)
            .args(["merge", &a, &b, "-o", &f])
            .env("IOKERNEL_BACKEND", backend)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if run.try_wait().unwrap().is_some() {
            let done = run.wait_with_output().unwrap();
            panic!(
                "{backend}: ended before its reader came: {}",
                stderr_of(&done)
            );
        }
        let got = drain(&fifo, None).join().unwrap();
        let done = run.wait_with_output().unwrap();
        assert_eq!(
            done.status.code(),
            Some(0),
            "{backend}: {}",
            stderr_of(&done)
        );
        assert_eq!(got.len(), want.len(), "{backend}: every byte");
    }
    assert_fifo(&fifo);
    // The reader goes away early: the run fails quietly, the FIFO stays.
    let reader = drain(&fifo, Some(1000));
    let out = iok(&["merge", &a, &b, "-o", &f]);
    reader.join().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("panicked"));
    assert_fifo(&fifo);
}

#[test]
fn dash_o_dash_streams_to_stdout() {
    let p = pair();
    let (a, b) = (s(&p.a), s(&p.b));
    let out = iok(&["merge", &a, &b, "-o", "-", "--producers", "1", "--ordered"]);
    assert_ok(&out, "merge -o -");
    let mut want = p.a_bytes.clone();
    want.extend_from_slice(&p.b_bytes);
    assert!(out.stdout == want, "stdout holds exactly the inputs");
    let summary = stderr_of(&out);
    assert!(summary.contains("merged 2 input(s)"), "summary on stderr");
    // A stream has no layout, stripes or file system: the summary says
    // what it is and nothing of a file's shape.
    assert!(
        summary.contains("(plain, stream): ") && summary.contains("written in order"),
        "{summary}"
    );
    assert!(
        !summary.contains("stripe") && !summary.contains("padding"),
        "{summary}"
    );
    let out = iok(&["merge", &a, "-o", "-", "--json"]);
    assert_ok(&out, "merge -o - --json");
    assert!(
        stderr_of(&out).contains("\"stream\":true"),
        "{}",
        stderr_of(&out)
    );
    let file = p.dir.path().join("file.pfw");
    let out = iok(&["merge", &a, "-o", &s(&file), "--json"]);
    assert_ok(&out, "merge -o FILE --json");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"stream\":false"));
    std::fs::remove_file(&file).unwrap();
    let out = iok(&["pgzip", &a, "-o", "-", "--member-size", "64K"]);
    assert_ok(&out, "pgzip -o -");
    assert!(gunzip(&out.stdout) == p.a_bytes);
    assert!(
        stderr_of(&out).contains("(gzip, stream): "),
        "{}",
        stderr_of(&out)
    );
    for refused in [
        &["--layout", "sharded"][..],
        &["--durability", "atomic-rename"],
    ] {
        let mut args = vec!["merge", &a, "-o", "-"];
        args.extend(refused);
        let out = iok(&args);
        assert!(!out.status.success(), "{refused:?} accepted with -o -");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(names_in(p.dir.path()), ["a.pfw", "b.pfw"]);
}

#[test]
fn concurrent_atomic_rename_runs_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pfw");
    let inputs: Vec<(PathBuf, Vec<u8>)> = (0..3)
        .map(|i| {
            let path = dir.path().join(format!("in{i}.pfw"));
            let text = lines(&format!("run{i}"), 6000);
            std::fs::write(&path, &text).unwrap();
            (path, text)
        })
        .collect();
    for round in 0..3 {
        let children: Vec<_> = inputs
            .iter()
            .map(|(path, _)| {
                Command::new(IOK)
                    .args(["merge", &s(path), "-o", &s(&out), "--force"])
                    .args([
                        "--durability",
                        "atomic-rename",
                        "--producers",
                        "1",
                        "--ordered",
                    ])
                    .args(["--stripe-size", "64K"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let done = child.wait_with_output().unwrap();
            assert_ok(&done, "concurrent atomic-rename run");
        }
        let got = std::fs::read(&out).unwrap();
        assert!(
            inputs.iter().any(|(_, text)| *text == got),
            "round {round}: the output is one run's whole output"
        );
        let names = names_in(dir.path());
        assert_eq!(
            names,
            ["in0.pfw", "in1.pfw", "in2.pfw", "out.pfw"],
            "no temp left"
        );
    }
}

/// Start `args`, wait until `watch` exists (the run is writing), send
/// `signal`, and return what the run printed and its exit code.
fn interrupt(args: &[&str], watch: &Path, signal: &str) -> Output {
    interrupt_when(args, watch, signal, None)
}

/// [`interrupt`], once the file named like `watch` holds more than
/// `min_len` bytes when that is given.
fn interrupt_when(args: &[&str], watch: &Path, signal: &str, min_len: Option<u64>) -> Output {
    let child = Command::new(IOK)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    wait_for_file(watch, min_len);
    let kill = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// Wait (10 s at most) until a file whose name contains `watch`'s name is
/// in its directory, longer than `min_len` bytes when given.
fn wait_for_file(watch: &Path, min_len: Option<u64>) {
    let dir = watch.parent().unwrap().to_path_buf();
    let prefix = watch.file_name().unwrap().to_string_lossy().into_owned();
    for _ in 0..2000 {
        let ready = names_in(&dir).iter().any(|n| {
            n.contains(&prefix)
                && match min_len {
                    None => true,
                    Some(min) => std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() > min),
                }
        });
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A large input (about 110 MB) so a single-threaded level-9 run is still
/// going when the signal arrives.
fn big_input(dir: &Path) -> PathBuf {
    let path = dir.join("big.pfw");
    let block = lines("big", 20_000);
    let mut file = std::fs::File::create(&path).unwrap();
    for _ in 0..25 {
        file.write_all(&block).unwrap();
    }
    path
}

/// `iok pgzip` of `big` at level 9 on one thread: slow enough to be
/// caught mid-run.
fn slow_pgzip_args(big: &Path, out: &Path) -> Vec<String> {
    let args = [
        "pgzip",
        &s(big),
        "-o",
        &s(out),
        "--threads",
        "1",
        "--level",
        "9",
    ];
    args.iter().map(|a| a.to_string()).collect()
}

/// `iok merge` of `big` into `out` with gzip level 9, one producer and
/// atomic-rename: slow enough to be caught with its temporary file.
fn slow_atomic_merge_args(big: &Path, out: &Path) -> Vec<String> {
    let args = [
        "merge",
        &s(big),
        "-o",
        &s(out),
        "--gzip=9",
        "--producers",
        "1",
        "--durability",
        "atomic-rename",
    ];
    args.iter().map(|a| a.to_string()).collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn a_signal_mid_run_removes_the_partial_output_and_exits_128_plus_signo() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_input(dir.path());
    let out = dir.path().join("big.pfw.gz");
    let args = slow_pgzip_args(&big, &out);
    let done = interrupt(&strs(&args), &out, "-INT");
    assert_eq!(done.status.code(), Some(130), "{}", stderr_of(&done));
    let err = stderr_of(&done);
    assert!(
        err.contains("interrupted by SIGINT") && err.contains("removed"),
        "{err}"
    );
    assert!(err.contains("big.pfw.gz"), "{err}");
    assert_eq!(names_in(dir.path()), ["big.pfw"], "partial output removed");

    // SIGTERM under atomic-rename: the temporary file goes too.
    let args = slow_atomic_merge_args(&big, &dir.path().join("merged.pfw"));
    let args = strs(&args);
    let done = interrupt(&args, &dir.path().join(".merged.pfw.iok-tmp"), "-TERM");
    assert_eq!(done.status.code(), Some(143), "{}", stderr_of(&done));
    assert!(stderr_of(&done).contains("interrupted by SIGTERM"));
    assert!(
        stderr_of(&done).contains(".merged.pfw.iok-tmp."),
        "{}",
        stderr_of(&done)
    );
    assert_eq!(names_in(dir.path()), ["big.pfw"], "temporary file removed");

    // SIGHUP: 129.
    let done = interrupt(&args, &dir.path().join(".merged.pfw.iok-tmp"), "-HUP");
    assert_eq!(done.status.code(), Some(129), "{}", stderr_of(&done));
    assert_eq!(names_in(dir.path()), ["big.pfw"]);
}

/// SIGKILL cannot be caught: the run's cleanup helper (`iok
/// cleanup-helper`, in a process group of its own) sees the run's end and
/// removes the partial output, or the atomic-rename temporary file, and
/// says so. The helper holds the run's stderr until it is done, so when
/// the output is read to its end the helper has finished. The kill comes
/// once data is in the file: a kill between a file's `open` and its
/// listing is the case the helper does not cover (README).
/// An input truncated while the run reads it ends the run with an error
/// naming it, where the offset it ended at and its size at the start,
/// instead of an output silently short of it; the failed run's output is
/// removed.
#[test]
fn an_input_truncated_mid_run_is_an_error_not_a_short_output() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_input(dir.path());
    let size = std::fs::metadata(&big).unwrap().len();
    let out = dir.path().join("merged.pfw.gz");
    let args = [
        "merge",
        &s(&big),
        "-o",
        &s(&out),
        "--gzip=9",
        "--producers",
        "1",
    ];
    let run = Command::new(IOK)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Output written: the run is reading (a level-9 gzip of ~110 MB on one
    // producer takes seconds, and reading runs only a few blocks ahead).
    wait_for_file(&out, Some(0));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let done = run.wait_with_output().unwrap();
    let err = stderr_of(&done);
    assert_eq!(done.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("input {} shrank while being read", big.display()))
            && err.contains(&format!("it had {size} bytes")),
        "{err}"
    );
    assert_eq!(
        names_in(dir.path()),
        ["big.pfw"],
        "the failed run's output removed"
    );
}

#[test]
fn a_kill_mid_run_is_cleaned_up_by_the_helper() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let big = big_input(dir.path());
    let out = dir.path().join("big.pfw.gz");
    let args = slow_pgzip_args(&big, &out);
    let done = interrupt_when(&strs(&args), &out, "-KILL", Some(0));
    assert_eq!(done.status.signal(), Some(9), "{}", stderr_of(&done));
    let err = stderr_of(&done);
    assert!(
        err.contains("ended without removing its partial output; removed")
            && err.contains("big.pfw.gz"),
        "{err}"
    );
    assert_eq!(names_in(dir.path()), ["big.pfw"], "partial output removed");

    let args = slow_atomic_merge_args(&big, &dir.path().join("merged.pfw"));
    let done = interrupt_when(
        &strs(&args),
        &dir.path().join(".merged.pfw.iok-tmp"),
        "-KILL",
        Some(0),
    );
    assert_eq!(done.status.signal(), Some(9), "{}", stderr_of(&done));
    assert!(
        stderr_of(&done).contains(".merged.pfw.iok-tmp."),
        "{}",
        stderr_of(&done)
    );
    assert_eq!(names_in(dir.path()), ["big.pfw"], "temporary file removed");
}

/// A finished run's helper leaves the output alone and says nothing.
#[test]
fn a_finished_run_keeps_its_output_and_the_helper_is_quiet() {
    let p = pair();
    for durability in ["fsync", "atomic-rename", "none"] {
        let out = p.dir.path().join(format!("out-{durability}.pfw"));
        let done = iok(&[
            "merge",
            &s(&p.a),
            &s(&p.b),
            "-o",
            &s(&out),
            "--durability",
            durability,
        ]);
        assert_eq!(done.status.code(), Some(0), "{}", stderr_of(&done));
        // `iok` read stderr to its end: the helper has exited.
        assert!(stderr_of(&done).is_empty(), "{}", stderr_of(&done));
        assert!(out.exists(), "{durability}: the output is kept");
    }
}

/// The pids of `parent`'s children (from `/proc/*/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let after_comm = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let ppid = after_comm.split_whitespace().nth(1);
        if ppid.and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// `iok`'s cleanup helper, once started (its only child).
fn helper_of(iok: u32) -> u32 {
    for _ in 0..1000 {
        if let [helper] = children_of(iok)[..] {
            return helper;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("iok (pid {iok}) started no cleanup helper");
}

/// Wait until process `pid` runs its signal watcher thread (`iok-signals`,
/// started once SIGTERM is blocked for good, and the thread that takes
/// it). The blocked mask alone does not say so: while iok starts its
/// cleanup helper, `posix_spawn` blocks every signal for a moment and
/// then restores the mask, and a SIGTERM sent in that window gets the
/// default action.
fn watches_signals(pid: u32) {
    for _ in 0..1000 {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten();
        let watching = tasks.flatten().any(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end() == "iok-signals")
        });
        if watching {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("pid {pid} never started its signal watcher");
}

/// A run that ends by itself, finished or stopped by a signal it caught,
/// waits for its cleanup helper: nothing is left for whatever reaps
/// orphans (where that is a container's first process that never reaps,
/// each run would leave a zombie). The run reads a FIFO, so the helper
/// can be seen while the run waits for the FIFO's writer.
#[test]
fn a_run_that_ends_by_itself_reaps_its_cleanup_helper() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input.pfw");
    if !mkfifo(&fifo) {
        return;
    }
    let out = dir.path().join("out.pfw");
    let run = || {
        Command::new(IOK)
            .args(["merge", &s(&fifo), "-o", &s(&out)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = run();
    let helper = helper_of(child.id());
    let input = lines("a", 100);
    std::fs::write(&fifo, &input).unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr_of(&done));
    assert_eq!(std::fs::read(&out).unwrap(), input);
    assert!(
        !Path::new(&format!("/proc/{helper}")).exists(),
        "the finished run's helper (pid {helper}) outlived it"
    );

    std::fs::remove_file(&out).unwrap();
    let child = run();
    let helper = helper_of(child.id());
    // SIGTERM once iok takes it (before, it would simply die of it).
    watches_signals(child.id());
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(128 + 15), "{}", stderr_of(&done));
    assert!(
        !Path::new(&format!("/proc/{helper}")).exists(),
        "the interrupted run's helper (pid {helper}) outlived it"
    );
    assert!(!out.exists(), "{}", stderr_of(&done));
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let p = pair();
    let out = p.dir.path().join("out.pfw");
    let mut child = Command::new(IOK)
        .args(["merge", &s(&p.a), &s(&p.b), "-o", &s(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| true`: the reader is gone before the summary is written.
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    assert!(
        !stderr_of(&done).contains("panicked"),
        "{}",
        stderr_of(&done)
    );
    assert_eq!(done.status.code(), Some(0), "{}", stderr_of(&done));
    assert!(out.exists(), "the merge itself completed");
    // stdout on a full device: an error message, exit 1, no panic.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    if let Ok(full) = full {
        let out2 = p.dir.path().join("out2.pfw");
        let done = Command::new(IOK)
            .args(["merge", &s(&p.a), "-o", &s(&out2)])
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(done.status.code(), Some(1));
        assert!(stderr_of(&done).contains("summary"), "{}", stderr_of(&done));
        assert!(!stderr_of(&done).contains("panicked"));
    }
}

#[test]
fn the_summary_says_gzip_for_gzip_output_and_stripe_limits_are_clap_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.pfw");
    std::fs::write(&tiny, b"{\"a\":1}\n").unwrap();
    let out = dir.path().join("tiny.pfw.gz");
    let done = iok(&["merge", &s(&tiny), "-o", &s(&out), "--gzip"]);
    assert_ok(&done, "merge --gzip");
    let summary = String::from_utf8_lossy(&done.stdout);
    assert!(
        summary.contains("(gzip)"),
        "gzip output that did not shrink: {summary}"
    );
    for bad in ["4G", "8G", "4294967296"] {
        let done = iok(&["merge", &s(&tiny), "-o", "-", "--stripe-size", bad]);
        assert_eq!(
            done.status.code(),
            Some(2),
            "--stripe-size {bad}: {}",
            stderr_of(&done)
        );
        assert!(
            stderr_of(&done).contains("4294901760"),
            "{}",
            stderr_of(&done)
        );
    }
    let help = iok(&["merge", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("at most 4G - 64K"));
}

/// A gzip member size the machine cannot hold is refused in the command's
/// words before anything is created; it used to abort the process on a
/// failed allocation ("memory allocation of ... bytes failed", SIGABRT).
#[test]
fn a_member_size_beyond_the_machines_memory_is_refused_not_an_abort() {
    let p = pair();
    let out_path = p.dir.path().join("huge.gz");
    let (input, output) = (s(&p.a), s(&out_path));
    let pgzip = |member: &str| iok(&["pgzip", &input, "-o", &output, "--member-size", member]);
    let out = pgzip("102400G");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("--member-size 100.00 TiB") && stderr.contains("half its memory"),
        "{stderr}"
    );
    assert!(!out_path.exists(), "nothing is created");
    // A member size that fits still compresses.
    assert_ok(&pgzip("16M"), "pgzip --member-size 16M");
    assert!(gunzip(&std::fs::read(&out_path).unwrap()) == p.a_bytes);
}
