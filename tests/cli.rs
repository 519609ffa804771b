//! The `iok` binary end to end: `iok merge` with every layout, with and
//! without gzip and ordering, checked line for line against its inputs;
//! `iok pgzip` checked with `gzip -t` and `zcat`; bad input rejected with a
//! non-zero exit and a message naming the problem.

#[path = "../src/bin/iok/verify.rs"]
#[allow(dead_code)]
mod verify;

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const IOK: &str = env!("CARGO_BIN_EXE_iok");
/// A small stripe so a few MiB of input crosses many stripe boundaries.
const STRIPE: &str = "64K";
const STRIPE_BYTES: u64 = 64 << 10;

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
