//! The `iok` binary end to end: `iok merge` with every layout, with and
//! without gzip and ordering, checked line for line against its inputs;
//! `iok pgzip` checked with `gzip -t` and `zcat`; bad input rejected with a
//! non-zero exit and a message naming the problem.

#[path = "../src/bin/iok/verify.rs"]
#[allow(dead_code)]
mod verify;

use flate2::write::GzEncoder;
use flate2::Compression;
use iokernel::sys::real::thread::spawn_named;
use iokernel::sys::real::RealClock;
use iokernel::sys::Clock;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const IOK: &str = env!("CARGO_BIN_EXE_iok");
/// A small stripe so a few MiB of input crosses many stripe boundaries.
const STRIPE: &str = "64K";
const STRIPE_BYTES: u64 = 64 << 10;

/// `iok` with `args`; `merge` and `pgzip` get `--force`, since these tests
/// write one output name again and again (refusing an existing output is
/// tested in `cli_output.rs`).
fn iok_command(args: &[&str]) -> Command {
    let mut command = Command::new(IOK);
    command.args(args);
    if matches!(args.first(), Some(&"merge") | Some(&"pgzip")) {
        command.arg("--force");
    }
    command
}

fn iok(args: &[&str]) -> Output {
    iok_command(args)
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
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr_of(out)
    );
}

/// Lines of varied length (20 to ~1500 bytes) that say where they came
/// from, padded with letters that do not compress away.
fn make_lines(tag: &str, count: usize) -> Vec<u8> {
    let mut text = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ tag.len() as u64;
    for i in 0..count {
        let pad: String = (0..(i * 7919) % 1500)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'a' + (state % 26) as u8)
            })
            .collect();
        writeln!(text, r#"{{"src":"{tag}","i":{i},"pad":"{pad}"}}"#).unwrap();
    }
    text
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(1));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

struct Inputs {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    paths: Vec<String>,
    text: Vec<u8>,
}

/// Three inputs: plain, gzip, plain without a final newline.
fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let a = make_lines("a", 1000);
    let b = make_lines("b", 600);
    let mut c = make_lines("c", 200);
    c.pop(); // no final newline: merge must not glue it to the next input
    let pa = dir.path().join("a.jsonl");
    let pb = dir.path().join("b.jsonl.gz");
    let pc = dir.path().join("c.jsonl");
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, gzip_bytes(&b)).unwrap();
    std::fs::write(&pc, &c).unwrap();
    let mut text = a;
    text.extend_from_slice(&b);
    text.extend_from_slice(&c);
    text.push(b'\n');
    Inputs {
        dir: dir.path().to_path_buf(),
        paths: [pa, pb, pc]
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        _dir: dir,
        text,
    }
}

/// The files a writer output consists of: `path` itself if it exists, else
/// its shards `<path>.shard_<i>` in shard order.
fn output_files(path: &Path) -> Vec<PathBuf> {
    if path.exists() {
        return vec![path.to_path_buf()];
    }
    let mut shards = Vec::new();
    for i in 0.. {
        let shard = PathBuf::from(format!("{}.shard_{i}", path.display()));
        if !shard.exists() {
            break;
        }
        shards.push(shard);
    }
    shards
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_merge(inputs: &Inputs, out: &Path, extra: &[&str]) {
    let out_s = out.display().to_string();
    let mut args = vec!["merge"];
    args.extend(inputs.paths.iter().map(String::as_str));
    args.extend(["-o", &out_s, "--stripe-size", STRIPE]);
    args.extend(extra);
    let result = iok(&args);
    assert_ok(&result, &format!("iok {}", args.join(" ")));
    assert!(
        result.stderr.is_empty(),
        "no progress bar or noise when stderr is not a terminal: {}",
        stderr_of(&result)
    );
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(
        summary.contains("merged 3 input(s)") && summary.contains("lines"),
        "summary line: {summary}"
    );
    // --stripe-size sets the stripe; the file system stays what it is (iok
    // runs without IOKERNEL_MIMIC_LUSTRE here).
    assert!(
        !summary.contains(", lustre,") && summary.contains("stripe 64.00 KiB"),
        "--stripe-size sets a 64 KiB stripe without claiming Lustre: {summary}"
    );
}

#[test]
fn merge_every_layout_gzip_and_order_keeps_every_line() {
    let inputs = inputs();
    let layouts: [(&str, &[&str]); 4] = [
        ("striped", &[]),
        ("padded", &[]),
        ("sharded", &[]),
        ("sharded", &["--keep-shards"]),
    ];
    for (layout, layout_extra) in layouts {
        for gzip in [false, true] {
            for ordered in [false, true] {
                let name = format!("out-{layout}-{}-{gzip}-{ordered}", layout_extra.len());
                let out = inputs.dir.join(&name);
                // Content is what is checked here; fsync is the default
                // everywhere else.
                let mut extra = vec!["--layout", layout, "--producers", "3"];
                extra.extend(["--durability", "none"]);
                extra.extend_from_slice(layout_extra);
                if gzip {
                    extra.push("--gzip");
                }
                if ordered {
                    extra.push("--ordered");
                }
                run_merge(&inputs, &out, &extra);
                let files = output_files(&out);
                let expect_files = if layout_extra.is_empty() { 1 } else { 3 };
                assert_eq!(files.len(), expect_files, "{name}: output files {files:?}");
                let got = verify::decoded_contents_all(&files).unwrap();
                let lines = verify::same_lines(&inputs.text, &got)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(lines, 1800, "{name}");
                if layout == "padded" {
                    let checked = verify::check_stripe_boundaries(&out, STRIPE_BYTES, gzip)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    let least = if gzip { 5 } else { 10 };
                    assert!(checked >= least, "{name}: only {checked} stripe boundaries");
                }
                if gzip && have("gzip") {
                    for file in &files {
                        let t = Command::new("gzip").arg("-t").arg(file).output().unwrap();
                        assert!(t.status.success(), "{name}: gzip -t {}", file.display());
                    }
                }
            }
        }
    }
}

#[test]
fn ordered_merge_with_one_producer_is_the_inputs_in_order() {
    let inputs = inputs();
    for gzip in [false, true] {
        let out = inputs.dir.join(format!("ordered-{gzip}"));
        let mut extra = vec!["--producers", "1", "--ordered"];
        if gzip {
            extra.push("--gzip=1");
        }
        run_merge(&inputs, &out, &extra);
        let got = verify::decoded_contents(&out).unwrap();
        assert!(
            got == inputs.text,
            "gzip={gzip}: output is not the inputs in order"
        );
    }
}

#[test]
fn a_stripe_count_off_lustre_merges_normally() {
    let inputs = inputs();
    let out = inputs.dir.join("stripe-count");
    run_merge(
        &inputs,
        &out,
        &["--producers", "1", "--ordered", "--stripe-count", "4"],
    );
    let got = verify::decoded_contents(&out).unwrap();
    assert!(got == inputs.text, "output is not the inputs in order");
}

fn pgzip(input: &Path, out: &Path) {
    let (input_s, out_s) = (input.display().to_string(), out.display().to_string());
    let result = iok(&[
        "pgzip",
        &input_s,
        "-o",
        &out_s,
        "--level",
        "6",
        "--threads",
        "2",
        "--member-size",
        "64K",
    ]);
    assert_ok(&result, "iok pgzip");
    let t = Command::new("gzip").arg("-t").arg(out).output().unwrap();
    assert!(t.status.success(), "gzip -t: {}", stderr_of(&t));
}

fn zcat(path: &Path) -> Vec<u8> {
    let z = Command::new("zcat").arg(path).output().unwrap();
    assert!(z.status.success(), "zcat: {}", stderr_of(&z));
    z.stdout
}

#[test]
fn pgzip_output_passes_gzip_t_and_decompresses_to_the_input() {
    if !have("gzip") || !have("zcat") {
        println!("skipped: gzip or zcat is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let text = make_lines("p", 6000);
    std::fs::write(&input, &text).unwrap();
    let out = dir.path().join("out.jsonl.gz");
    pgzip(&input, &out);
    assert!(zcat(&out) == text, "zcat output differs from the input");
    let raw = std::fs::read(&out).unwrap();
    let members = raw.windows(3).filter(|w| w == &[0x1f, 0x8b, 0x08]).count();
    assert!(
        members >= (text.len() as u64 / STRIPE_BYTES) as usize,
        "expected a gzip member per 64 KiB of input, found {members} headers"
    );
}

#[test]
fn pgzip_reproduces_an_input_without_a_final_newline_byte_for_byte() {
    if !have("gzip") || !have("zcat") {
        println!("skipped: gzip or zcat is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut text = make_lines("q", 300);
    text.extend_from_slice(b"{\"last\":\"line without a newline\"}");
    std::fs::write(&input, &text).unwrap();
    let out = dir.path().join("out.jsonl.gz");
    pgzip(&input, &out);
    let got = zcat(&out);
    assert!(
        got == text,
        "zcat output is not the input byte for byte ({} bytes vs {}; ends {:?})",
        got.len(),
        text.len(),
        String::from_utf8_lossy(&got[got.len().saturating_sub(40)..])
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

#[test]
fn bad_input_fails_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, make_lines("g", 10)).unwrap();
    let good = good.display().to_string();

    let missing = dir.path().join("no-such-input.jsonl").display().to_string();
    assert_fails_naming(
        &["merge", &missing, "-o", &out],
        &[&missing, "No such file"],
    );
    assert!(!Path::new(&out).exists(), "no output for a missing input");

    assert_fails_naming(
        &["merge", &good, "-o", &out, "--stripe-size", "12Q"],
        &["--stripe-size", "12Q"],
    );
    assert_fails_naming(
        &["merge", &good, "-o", &out, "--stripe-size", "100K"],
        &["--stripe-size", "100K", "64 KiB"],
    );
    assert_fails_naming(
        &["merge", &good, "-o", &out, "--stripe-count", "0"],
        &["--stripe-count", "0"],
    );
    assert_fails_naming(
        &["pgzip", &good, "-o", &out, "--member-size", "lots"],
        &["--member-size", "lots"],
    );

    let corrupt = dir.path().join("corrupt.jsonl.gz");
    let mut bytes = gzip_bytes(&make_lines("z", 2000));
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b = !*b;
    }
    std::fs::write(&corrupt, &bytes).unwrap();
    let corrupt = corrupt.display().to_string();
    assert_fails_naming(&["merge", &good, &corrupt, "-o", &out], &[&corrupt, "gzip"]);
    assert!(
        !Path::new(&out).exists(),
        "a failed merge leaves no output that looks complete"
    );

    let truncated = dir.path().join("truncated.jsonl.gz");
    let whole = gzip_bytes(&make_lines("t", 2000));
    std::fs::write(&truncated, &whole[..whole.len() - 100]).unwrap();
    let truncated = truncated.display().to_string();
    assert_fails_naming(&["pgzip", &truncated, "-o", &out], &[&truncated, "gzip"]);
}

// ---- Issue 11, input side: streams, bounded memory, --ordered ----

/// Runs `iok args` with `stdin` fed from `feed` (on its own thread, so a
/// large feed never deadlocks against a full stdout).
fn iok_with_stdin(args: &[&str], feed: Vec<u8>) -> Output {
    let mut child = iok_command(args)
        .env_remove("IOKERNEL_MIMIC_LUSTRE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn iok");
    let mut stdin = child.stdin.take().unwrap();
    let writer = spawn_named("feed-stdin".into(), move || {
        // iok may stop reading early (an error); a broken pipe is fine.
        let _ = stdin.write_all(&feed);
    })
    .unwrap();
    let out = child.wait_with_output().expect("wait for iok");
    writer.join().unwrap();
    out
}

/// What a run printed and its peak resident set (VmHWM, polled from
/// /proc every 5 ms while it runs; the last reading before it exits).
struct Measured {
    out: Output,
    peak_rss_kib: u64,
    seconds: f64,
}

fn iok_measured(args: &[&str]) -> Measured {
    let clock = RealClock::new();
    let start = clock.now();
    let mut child = iok_command(args)
        .env_remove("IOKERNEL_MIMIC_LUSTRE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn iok");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_rss_kib = 0;
    while child.try_wait().expect("poll iok").is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_rss_kib = peak_rss_kib.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("wait for iok");
    Measured {
        out,
        peak_rss_kib,
        seconds: (clock.now() - start).as_secs_f64(),
    }
}

/// Peak RSS allowed for a run over an adversarial input: the 64 MiB line
/// maximum plus the pipeline's buffers, far below the input's size.
const RSS_LIMIT_KIB: u64 = 256 << 10;

#[test]
fn merge_and_pgzip_read_pipes_fifos_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_lines("pipe", 3000);
    let b = make_lines("file", 500);
    let pb = dir.path().join("b.jsonl");
    std::fs::write(&pb, &b).unwrap();
    let pb = pb.display().to_string();
    let expected = [&a[..], &b].concat();
    let out = dir.path().join("out");
    let out_s = out.display().to_string();

    // `cat a | iok merge - b`, plain and gzip, and through /dev/stdin.
    for (path, feed) in [
        ("-", a.clone()),
        ("-", gzip_bytes(&a)),
        ("/dev/stdin", a.clone()),
        ("/dev/stdin", gzip_bytes(&a)),
    ] {
        let args = [
            "merge",
            path,
            &pb,
            "-o",
            &out_s,
            "--ordered",
            "--stripe-size",
            STRIPE,
        ];
        let result = iok_with_stdin(&args, feed);
        assert_ok(&result, &format!("iok {}", args.join(" ")));
        assert!(
            std::fs::read(&out).unwrap() == expected,
            "{path}: wrong output"
        );
    }

    // A FIFO path (as `<(zcat x)` gives), gzip inside.
    let fifo = dir.path().join("in.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo (we run as root; it must work)");
    let feeder = {
        let (fifo, data) = (fifo.clone(), gzip_bytes(&a));
        spawn_named("feed-fifo".into(), move || {
            std::fs::write(fifo, data).unwrap()
        })
        .unwrap()
    };
    let fifo_s = fifo.display().to_string();
    let result = iok(&["merge", &fifo_s, &pb, "-o", &out_s, "--ordered"]);
    feeder.join().unwrap();
    assert_ok(&result, "iok merge FIFO");
    assert!(
        std::fs::read(&out).unwrap() == expected,
        "FIFO: wrong output"
    );

    // `cat a | iok pgzip - -o x.gz`, last line without a newline.
    let mut unterminated = a.clone();
    unterminated.truncate(unterminated.len() - 1);
    let gz = dir.path().join("stdin.gz");
    let gz_s = gz.display().to_string();
    let args = ["pgzip", "-", "-o", &gz_s, "--member-size", "64K"];
    assert_ok(&iok_with_stdin(&args, unterminated.clone()), "iok pgzip -");
    assert!(
        zcat(&gz) == unterminated,
        "pgzip from stdin: not byte for byte"
    );

    // `-` twice is an error, before anything is read or written.
    std::fs::remove_file(&out).unwrap();
    let result = iok_with_stdin(&["merge", "-", "-", "-o", &out_s], a.clone());
    assert!(!result.status.success());
    assert!(
        stderr_of(&result).contains("stdin"),
        "{}",
        stderr_of(&result)
    );
    assert!(!out.exists());
}

/// One line of `len` bytes (no newline inside), a newline, one short line.
fn one_long_line(len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    data.extend_from_slice(b"\n{\"short\":1}\n");
    data
}

#[test]
fn a_line_past_the_maximum_fails_merge_fast_and_pgzip_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.pfw");
    // "ok" line first, so the long line starts at offset 3.
    let data = [&b"ok\n"[..], &one_long_line(65 << 20)].concat();
    std::fs::write(&input, &data).unwrap();
    let input_s = input.display().to_string();
    let out = dir.path().join("out").display().to_string();

    let run = iok_measured(&["merge", &input_s, "-o", &out]);
    assert!(!run.out.status.success(), "a 65 MiB line must fail merge");
    let err = stderr_of(&run.out);
    assert!(
        err.contains(&input_s)
            && err.contains("line at offset 3 is longer than the maximum of 67108864 bytes"),
        "{err}"
    );
    assert!(run.seconds < 30.0, "took {:.1} s", run.seconds);
    assert!(
        run.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
    assert!(!Path::new(&out).exists(), "no output from a failed merge");

    // With a larger maximum the same input merges.
    let ok = iok(&[
        "merge",
        &input_s,
        "-o",
        &out,
        "--ordered",
        "--max-line-size",
        "128M",
    ]);
    assert_ok(&ok, "merge --max-line-size 128M");
    assert!(std::fs::read(&out).unwrap() == data);

    // pgzip compresses any file: members end inside the line.
    let gz = dir.path().join("long.pfw.gz");
    let gz_s = gz.display().to_string();
    let run = iok_measured(&["pgzip", &input_s, "-o", &gz_s, "--level", "1"]);
    assert_ok(&run.out, "iok pgzip of a 65 MiB line");
    assert!(
        run.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
    assert!(
        zcat(&gz) == data,
        "pgzip of a long line is not byte for byte"
    );
}

#[test]
fn dev_zero_fails_merge_with_the_max_line_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let run = iok_measured(&["merge", "/dev/zero", "-o", &out]);
    assert!(!run.out.status.success());
    let err = stderr_of(&run.out);
    assert!(
        err.contains("/dev/zero: line at offset 0 is longer than the maximum"),
        "{err}"
    );
    assert!(
        run.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
}

/// `bytes` of `line` repeated, gzip level 9: a bomb of ~1000:1.
fn gzip_bomb(line: &[u8], bytes: usize) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(9));
    let block = line.repeat((1 << 20) / line.len().max(1));
    let mut written = 0;
    while written < bytes {
        encoder.write_all(&block).unwrap();
        written += block.len();
    }
    encoder.finish().unwrap()
}

#[test]
fn gzip_bombs_merge_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.display().to_string();

    // 200 MiB of short lines from ~300 KB: merged whole.
    let lines = dir.path().join("lines-bomb.pfw.gz");
    std::fs::write(&lines, gzip_bomb(b"{\"a\":0}\n", 200 << 20)).unwrap();
    let run = iok_measured(&["merge", &lines.display().to_string(), "-o", &out_s]);
    assert_ok(&run.out, "merge of a line bomb");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 200 << 20);
    assert!(
        run.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );

    // 200 MiB of zeros from ~200 KB: one line past the maximum.
    let zeros = dir.path().join("zero-bomb.pfw.gz");
    std::fs::write(&zeros, gzip_bomb(&[0], 200 << 20)).unwrap();
    let zeros_s = zeros.display().to_string();
    let run = iok_measured(&["merge", &zeros_s, "-o", &out_s]);
    assert!(!run.out.status.success());
    let err = stderr_of(&run.out);
    assert!(
        err.contains(&zeros_s) && err.contains("line at offset 0"),
        "{err}"
    );
    assert!(
        run.peak_rss_kib < RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
}

#[test]
fn gz_names_padding_and_corruption_are_judged_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.display().to_string();
    let text = make_lines("g", 300);

    // A non-gzip file named .gz is an error naming it; an empty one is an
    // empty input (DFTracer leaves those).
    let fake = dir.path().join("fake.pfw.gz");
    std::fs::write(&fake, &text).unwrap();
    let fake_s = fake.display().to_string();
    assert_fails_naming(&["merge", &fake_s, "-o", &out_s], &[&fake_s, "not gzip"]);
    let empty = dir.path().join("empty.pfw.gz");
    std::fs::write(&empty, b"").unwrap();
    let plain = dir.path().join("plain.pfw");
    std::fs::write(&plain, &text).unwrap();
    let (empty_s, plain_s) = (empty.display().to_string(), plain.display().to_string());
    assert_ok(
        &iok(&["merge", &empty_s, &plain_s, "-o", &out_s]),
        "empty .gz",
    );

    // Zero padding after the last member is accepted, as gzip -d does.
    let member = gzip_bytes(&text);
    let padded = dir.path().join("padded.pfw.gz");
    std::fs::write(&padded, [&member[..], &[0u8; 10_000]].concat()).unwrap();
    let padded_s = padded.display().to_string();
    assert_ok(
        &iok(&["merge", &padded_s, "-o", &out_s]),
        "zero-padded gzip",
    );
    assert!(std::fs::read(&out).unwrap() == text);

    // Other trailing bytes are an error at their offset.
    let mut garbage = [&member[..], &[0u8; 100]].concat();
    garbage[member.len() + 40] = b'x';
    let bad = dir.path().join("garbage.pfw.gz");
    std::fs::write(&bad, &garbage).unwrap();
    let bad_s = bad.display().to_string();
    let at = format!("compressed offset {}", member.len() + 40);
    assert_fails_naming(&["merge", &bad_s, "-o", &out_s], &[&bad_s, &at]);

    // A broken second member: the message gives the offset of the bad
    // byte and where its member starts, not the file's length.
    let mut two = [&member[..], &member[..], &member[..]].concat();
    two[member.len() + 2] = 9; // compression method of member 2
    let broken = dir.path().join("broken.pfw.gz");
    std::fs::write(&broken, &two).unwrap();
    let broken_s = broken.display().to_string();
    let at = format!("compressed offset {}", member.len() + 2);
    let start = format!("member starting at offset {}", member.len());
    assert_fails_naming(
        &["merge", &broken_s, "-o", &out_s],
        &[&broken_s, &at, &start],
    );
}

#[test]
fn ordered_merge_is_the_inputs_in_order_for_any_producer_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut expected = Vec::new();
    for i in 0..6 {
        let mut text = make_lines(&format!("in{i}"), 150 + 97 * i);
        if i % 2 == 0 {
            text.pop(); // no final newline: merge adds one
        }
        let gzip = i % 3 != 1;
        let path = dir
            .path()
            .join(format!("in{i}.pfw{}", if gzip { ".gz" } else { "" }));
        let bytes = if gzip {
            gzip_bytes(&text)
        } else {
            text.clone()
        };
        std::fs::write(&path, bytes).unwrap();
        paths.push(path.display().to_string());
        expected.extend_from_slice(&text);
        if !text.ends_with(b"\n") {
            expected.push(b'\n');
        }
    }
    let out = dir.path().join("ordered");
    let out_s = out.display().to_string();
    for producers in ["1", "2", "4", "8"] {
        for gzip in [false, true] {
            for round in 0..3 {
                let mut args: Vec<&str> = vec!["merge"];
                args.extend(paths.iter().map(String::as_str));
                args.extend(["-o", &out_s, "--ordered", "--producers", producers]);
                args.extend(["--stripe-size", STRIPE]);
                if gzip {
                    args.push("--gzip=1");
                }
                assert_ok(&iok(&args), &args.join(" "));
                let got = verify::decoded_contents(&out).unwrap();
                assert!(
                    got == expected,
                    "--producers {producers} gzip={gzip} round {round}: not the inputs in order"
                );
            }
        }
    }
}

/// `iok` keeps honouring `IOKERNEL_MIMIC_LUSTRE` (through
/// `WriterConfig::from_env`; `WriterConfig::new` no longer reads it).
#[test]
fn iok_merge_still_honours_iokernel_mimic_lustre() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, make_lines("m", 200)).unwrap();
    let out = dir.path().join("out.jsonl");
    let result = iok_command(&[
        "merge",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .env("IOKERNEL_MIMIC_LUSTRE", "1M:4")
    .output()
    .expect("run iok");
    assert_ok(&result, "iok merge with IOKERNEL_MIMIC_LUSTRE");
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(
        summary.contains(", lustre,"),
        "the mimic makes it Lustre: {summary}"
    );
    assert!(summary.contains("stripe 1.00 MiB"), "{summary}");
}
