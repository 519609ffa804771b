//! `iok bench` on the real kernel: every backend and test produces a row
//! with the op counts it was asked for, bad arguments are refused with a
//! reason, and `--serve-echo` echoes. Nothing here checks speed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const IOK: &str = env!("CARGO_BIN_EXE_iok");

/// The value of `"key":` in one `--json` row.
fn field<'a>(row: &'a str, key: &str) -> &'a str {
    let start = row.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    let rest = &row[start..];
    let end = rest.find([',', '}']).expect("field end");
    rest[..end].trim_matches('"')
}

#[test]
fn every_backend_and_test_reports_a_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("data.bin");
    let out = Command::new(IOK)
        .args([
            "bench",
            "--file-mib",
            "4",
            "--ops",
            "256",
            "--cold-ops",
            "64",
        ])
        .args(["--qd", "1,8", "--json", "--file"])
        .arg(&file)
        .output()
        .expect("run iok bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    let mut backends: Vec<&str> = rows.iter().map(|r| field(r, "backend")).collect();
    backends.dedup();
    assert!(
        backends.contains(&"pool") && backends.contains(&"sync"),
        "{stdout}"
    );
    for backend in &backends {
        let of = |test: &str| {
            rows.iter()
                .find(|r| field(r, "backend") == *backend && field(r, "test") == test)
        };
        let ops = |test: &str| {
            field(
                of(test).unwrap_or_else(|| panic!("{backend} {test}: {stdout}")),
                "ops",
            )
            .parse::<u64>()
            .expect("ops")
        };
        assert!(ops("randread-4k-qd1-hot") >= 256, "{stdout}");
        assert!(ops("randread-4k-qd1-cold") >= 64, "{stdout}");
        assert_eq!(ops("seqwrite-1m-fsync"), 4, "{stdout}");
        if *backend == "sync" {
            assert!(of("randread-4k-qd8-hot").is_none(), "sync runs at QD1 only");
        } else {
            assert!(ops("randread-4k-qd8-hot") >= 256, "{stdout}");
        }
    }
    for row in &rows {
        let p50: f64 = field(row, "p50_us").parse().expect("p50");
        let p99: f64 = field(row, "p99_us").parse().expect("p99");
        assert!(p50 > 0.0 && p50 <= p99, "{row}");
    }
    assert_eq!(std::fs::metadata(&file).expect("data file").len(), 4 << 20);
    let written = dir.path().join("data.bin.write");
    assert_eq!(
        std::fs::metadata(written).expect("write file").len(),
        4 << 20
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for args in [
        &["--qd", "0"][..],
        &["--cache", "warm"],
        &["--backend", "uringg"],
    ] {
        let out = Command::new(IOK)
            .arg("bench")
            .args(args)
            .output()
            .expect("run iok bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains("--qd") || stderr.contains("--cache") || stderr.contains("uringg"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn serve_echo_echoes_on_each_socket_backend() {
    for backend in ["uring", "epoll"] {
        if iokernel::runtime::backend_availability(
            iokernel::runtime::Backend::parse(backend).expect("name"),
        )
        .is_err()
        {
            eprintln!("{backend}: not available here, not tested");
            continue;
        }
        let mut server = Command::new(IOK)
            .args(["bench", "--serve-echo", "127.0.0.1:0", "--backend", backend])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start echo server");
        let mut line = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let addr = line.split_whitespace().last().expect("address").to_string();
        let mut stream = TcpStream::connect(&addr).expect("connect");
        for round in 0..100u32 {
            let msg = format!("message {round} to {backend}");
            stream.write_all(msg.as_bytes()).expect("send");
            let mut back = vec![0u8; msg.len()];
            stream.read_exact(&mut back).expect("echo");
            assert_eq!(back, msg.as_bytes());
        }
        server.kill().expect("stop echo server");
        server.wait().expect("reap echo server");
    }
}

/// `--file` naming an existing file shorter than `--file-mib` is refused
/// and left as it was: bench never writes into a file it did not create
/// (it rewrote such a file from offset 0 with its pattern, destroying a
/// trace given to it to read). A path that does not exist is created and
/// filled.
#[test]
fn an_existing_short_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mine = dir.path().join("mine.pfw");
    let text = b"{\"id\":1}\n{\"id\":2}\n".repeat(1000);
    std::fs::write(&mine, &text).unwrap();
    let bench = |file: &std::path::Path| {
        Command::new(IOK)
            .args([
                "bench",
                "--file-mib",
                "1",
                "--ops",
                "64",
                "--cold-ops",
                "16",
            ])
            .args(["--backend", "sync", "--test", "read", "--qd", "1", "--file"])
            .arg(file)
            .output()
            .expect("run iok bench")
    };
    let out = bench(&mine);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&mine.display().to_string()) && stderr.contains("never writes into"),
        "{stderr}"
    );
    assert!(std::fs::read(&mine).unwrap() == text, "the file changed");
    let fresh = dir.path().join("fresh.bin");
    let out = bench(&fresh);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&fresh).unwrap().len(), 1 << 20);
}
