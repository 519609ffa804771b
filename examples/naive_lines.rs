//! The baseline `benches/writer-compare.sh` measures `iok merge` against:
//! copy a JSON-lines file to an output with one `write(2)` per line, the
//! loop a program that logs events one at a time ends up doing.
//!
//! Reading is buffered (it is not what is measured); each line is written
//! with its own unbuffered `write_all`; with `--fsync` the output is then
//! fsynced, like `iok merge`'s default durability. With `--buffered` the
//! lines go through one 1 MiB `BufWriter` instead: the single-threaded
//! reference a careful program would write.
//!
//! Run: `cargo run --release --example naive_lines -- INPUT OUTPUT [--fsync] [--buffered]`.

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

fn copy_lines(input: &str, output: &str, fsync: bool, buffered: bool) -> std::io::Result<u64> {
    let reader = std::fs::File::open(input)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {input}: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let file = std::fs::File::create(output)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {output}: {e}")))?;
    // Capacity 0: every write_all goes straight to write(2).
    let mut out = std::io::BufWriter::with_capacity(if buffered { 1 << 20 } else { 0 }, file);
    let mut line = Vec::with_capacity(256);
    let mut lines = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        out.write_all(&line)?;
        lines += 1;
    }
    let out = out.into_inner().map_err(|e| e.into_error())?;
    if fsync {
        out.sync_all()?;
    }
    Ok(lines)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = args.get(2..).unwrap_or(&[]);
    let known = |f: &String| f == "--fsync" || f == "--buffered";
    if args.len() < 2 || !flags.iter().all(known) {
        eprintln!("usage: naive_lines INPUT OUTPUT [--fsync] [--buffered]");
        return ExitCode::FAILURE;
    }
    let (input, output) = (&args[0], &args[1]);
    let fsync = flags.iter().any(|f| f == "--fsync");
    let buffered = flags.iter().any(|f| f == "--buffered");
    match copy_lines(input, output, fsync, buffered) {
        Ok(lines) => {
            let how = if buffered {
                "through a 1 MiB BufWriter"
            } else {
                "with one write each"
            };
            println!("wrote {lines} lines {how} to {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("naive_lines: {e}");
            ExitCode::FAILURE
        }
    }
}
