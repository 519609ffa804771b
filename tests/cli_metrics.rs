//! `--metrics` and `--json` on `iok merge`, `iok pgzip` and `iok bench`:
//! the JSON is one valid object (checked with a small parser here, no
//! serde) with stable field names, and its counters agree with the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const IOK: &str = env!("CARGO_BIN_EXE_iok");

/// A JSON value, as much of it as these tests read.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(map) => map
                .get(key)
                .unwrap_or_else(|| panic!("no field {key:?} in {self:?}")),
            other => panic!("{key:?} looked up in a non-object {other:?}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }
}

/// A strict recursive-descent JSON parser: the whole text must be one value.
fn parse_json(text: &str) -> Result<Json, String> {
    let bytes = text.trim().as_bytes();
    let mut at = 0;
    let value = value(bytes, &mut at)?;
    if at != bytes.len() {
        return Err(format!("trailing text at byte {at}"));
    }
    Ok(value)
}

fn skip_ws(b: &[u8], at: &mut usize) {
    while *at < b.len() && b[*at].is_ascii_whitespace() {
        *at += 1;
    }
}

fn expect(b: &[u8], at: &mut usize, c: u8) -> Result<(), String> {
    skip_ws(b, at);
    if b.get(*at) == Some(&c) {
        *at += 1;
        Ok(())
    } else {
        Err(format!("expected {:?} at byte {at}", c as char))
    }
}

fn string(b: &[u8], at: &mut usize) -> Result<String, String> {
    expect(b, at, b'"')?;
    let mut out = Vec::new();
    loop {
        match b.get(*at).copied() {
            None => return Err("unterminated string".into()),
            Some(b'"') => {
                *at += 1;
                return String::from_utf8(out).map_err(|e| e.to_string());
            }
            Some(b'\\') => {
                let esc = *b.get(*at + 1).ok_or("bad escape")?;
                *at += 2;
                match esc {
                    b'"' | b'\\' | b'/' => out.push(esc),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'u' => {
                        let hex = std::str::from_utf8(b.get(*at..*at + 4).ok_or("bad \\u")?)
                            .map_err(|e| e.to_string())?;
                        let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                        let c = char::from_u32(code).ok_or("bad code point")?;
                        out.extend(c.to_string().as_bytes());
                        *at += 4;
                    }
                    other => return Err(format!("bad escape \\{}", other as char)),
                }
            }
            Some(c) if c < 0x20 => return Err("control character in string".into()),
            Some(c) => {
                out.push(c);
                *at += 1;
            }
        }
    }
}

fn value(b: &[u8], at: &mut usize) -> Result<Json, String> {
    skip_ws(b, at);
    match b.get(*at).copied() {
        Some(b'{') => {
            *at += 1;
            let mut map = BTreeMap::new();
            skip_ws(b, at);
            if b.get(*at) == Some(&b'}') {
                *at += 1;
                return Ok(Json::Obj(map));
            }
            loop {
                let key = string(b, at)?;
                expect(b, at, b':')?;
                if map.insert(key.clone(), value(b, at)?).is_some() {
                    return Err(format!("duplicate key {key:?}"));
                }
                skip_ws(b, at);
                match b.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b'}') => {
                        *at += 1;
                        return Ok(Json::Obj(map));
                    }
                    _ => return Err(format!("expected , or }} at byte {at}")),
                }
            }
        }
        Some(b'[') => {
            *at += 1;
            let mut items = Vec::new();
            skip_ws(b, at);
            if b.get(*at) == Some(&b']') {
                *at += 1;
                return Ok(Json::Arr(items));
            }
            loop {
                items.push(value(b, at)?);
                skip_ws(b, at);
                match b.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b']') => {
                        *at += 1;
                        return Ok(Json::Arr(items));
                    }
                    _ => return Err(format!("expected , or ] at byte {at}")),
                }
            }
        }
        Some(b'"') => string(b, at).map(Json::Str),
        Some(b't') if b[*at..].starts_with(b"true") => {
            *at += 4;
            Ok(Json::Bool(true))
        }
        Some(b'f') if b[*at..].starts_with(b"false") => {
            *at += 5;
            Ok(Json::Bool(false))
        }
        Some(b'n') if b[*at..].starts_with(b"null") => {
            *at += 4;
            Ok(Json::Null)
        }
        Some(c) if c == b'-' || c.is_ascii_digit() => {
            let start = *at;
            while *at < b.len() && matches!(b[*at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                *at += 1;
            }
            let text = std::str::from_utf8(&b[start..*at]).map_err(|e| e.to_string())?;
            text.parse()
                .map(Json::Num)
                .map_err(|e| format!("{text:?}: {e}"))
        }
        _ => Err(format!("unexpected byte at {at}")),
    }
}

#[test]
fn the_parser_rejects_what_is_not_one_json_object() {
    assert!(parse_json("{\"a\":[1,2,{\"b\":\"c\\n\"}],\"d\":true}").is_ok());
    for bad in [
        "{",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{} {}",
        "{\"a\":\"\u{1}\"}",
        "{\"a\":1,\"a\":2}",
    ] {
        assert!(parse_json(bad).is_err(), "accepted {bad:?}");
    }
}

fn iok(args: &[&str]) -> Output {
    Command::new(IOK)
        .args(args)
        .env_remove("IOKERNEL_MIMIC_LUSTRE")
        .env_remove("IOKERNEL_BACKEND")
        .output()
        .expect("run iok")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "iok failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines_file(path: &Path, count: usize) -> usize {
    let mut text = String::new();
    for i in 0..count {
        text += &format!(
            "{{\"id\":{i},\"name\":\"event-{i}\",\"pad\":\"{}\"}}\n",
            "x".repeat(i % 97)
        );
    }
    std::fs::write(path, &text).unwrap();
    text.len()
}

/// Bytes the metrics say the write ops wrote.
fn written_bytes(metrics: &Json) -> f64 {
    metrics
        .get("ops")
        .arr()
        .iter()
        .filter(|op| ["write", "pwrite", "writev", "pwritev"].contains(&op.get("kind").str()))
        .map(|op| op.get("bytes").num())
        .sum()
}

fn check_metrics_fields(metrics: &Json) {
    for key in [
        "backend",
        "in_flight",
        "cq_overflows",
        "pool_saturations",
        "fast_path_hits",
        "fast_path_misses",
        "ops",
        "pool_fallbacks",
        "fallback_reasons",
        "rejected_backends",
    ] {
        metrics.get(key);
    }
    assert_eq!(metrics.get("in_flight").num(), 0.0);
    for op in metrics.get("ops").arr() {
        assert!(op.get("count").num() >= 1.0);
        assert!(op.get("p50_ns").num() <= op.get("p99_ns").num(), "{op:?}");
    }
}

#[test]
fn merge_json_is_one_object_whose_metrics_match_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let bytes = lines_file(&a, 3000) + lines_file(&b, 2000);
    let out = dir.path().join("out.jsonl");
    let result = iok(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--stripe-size",
        "64K",
        "--json",
    ]);
    assert_ok(&result);
    let stdout = String::from_utf8(result.stdout).unwrap();
    let json = parse_json(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(json.get("command").str(), "merge");
    assert_eq!(json.get("inputs").num(), 2.0);
    assert_eq!(json.get("lines").num(), 5000.0);
    assert_eq!(json.get("bytes_in").num(), bytes as f64);
    let bytes_out = json.get("bytes_out").num();
    assert_eq!(bytes_out, std::fs::metadata(&out).unwrap().len() as f64);
    let metrics = json.get("metrics");
    check_metrics_fields(metrics);
    assert_eq!(written_bytes(metrics), bytes_out, "{stdout}");
}

#[test]
fn merge_metrics_prints_the_table_after_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    lines_file(&a, 500);
    let out = dir.path().join("out.jsonl");
    let result = iok(&[
        "merge",
        a.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--metrics",
    ]);
    assert_ok(&result);
    let stdout = String::from_utf8(result.stdout).unwrap();
    let mut lines = stdout.lines();
    assert!(
        lines.next().unwrap().starts_with("merged 1 input(s)"),
        "{stdout}"
    );
    let header = lines.next().unwrap();
    for column in ["op", "count", "errors", "bytes", "p50", "p99"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(
        stdout.contains("\nfsync ") || stdout.contains("\nfdatasync "),
        "{stdout}"
    );
    assert!(stdout.contains("in flight 0"), "{stdout}");
}

#[test]
fn pgzip_json_to_a_stdout_stream_goes_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let bytes = lines_file(&a, 2000);
    let result = iok(&[
        "pgzip",
        a.to_str().unwrap(),
        "-o",
        "-",
        "--json",
        "--member-size",
        "64K",
    ]);
    assert_ok(&result);
    assert_eq!(&result.stdout[..2], &[0x1f, 0x8b], "gzip data on stdout");
    let stderr = String::from_utf8(result.stderr).unwrap();
    let json = parse_json(&stderr).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(json.get("command").str(), "pgzip");
    assert_eq!(json.get("gzip"), &Json::Bool(true));
    assert_eq!(json.get("bytes_in").num(), bytes as f64);
    assert_eq!(json.get("bytes_out").num(), result.stdout.len() as f64);
    let metrics = json.get("metrics");
    check_metrics_fields(metrics);
    assert_eq!(
        written_bytes(metrics),
        result.stdout.len() as f64,
        "{stderr}"
    );
}

#[test]
fn bench_metrics_count_the_reads_each_backend_made() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    let result = iok(&[
        "bench",
        "--file-mib",
        "2",
        "--ops",
        "300",
        "--test",
        "read",
        "--cache",
        "hot",
        "--qd",
        "1,4",
        "--backend",
        "all",
        "--json",
        "--metrics",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_ok(&result);
    let stdout = String::from_utf8(result.stdout).unwrap();
    let objects: Vec<Json> = stdout
        .lines()
        .map(|l| parse_json(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut with_metrics = 0;
    for object in &objects {
        let Json::Obj(map) = object else {
            panic!("{object:?}")
        };
        let Some(metrics) = map.get("metrics") else {
            continue;
        };
        with_metrics += 1;
        let backend = object.get("backend").str();
        check_metrics_fields(metrics);
        assert_eq!(metrics.get("backend").str(), backend);
        let reads: f64 = objects
            .iter()
            .filter(|row| {
                matches!(row, Json::Obj(m) if !m.contains_key("metrics"))
                    && row.get("backend").str() == backend
            })
            .map(|row| row.get("ops").num())
            .sum();
        assert_eq!(reads, 600.0, "two queue depths of 300 reads");
        let pread = metrics
            .get("ops")
            .arr()
            .iter()
            .find(|op| op.get("kind").str() == "pread")
            .expect("preads counted");
        assert_eq!(pread.get("count").num(), reads, "{backend}");
        assert_eq!(pread.get("bytes").num(), reads * 4096.0, "{backend}");
    }
    assert!(
        with_metrics >= 2,
        "pool and at least one more backend: {stdout}"
    );
}
