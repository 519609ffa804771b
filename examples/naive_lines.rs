//! The baseline `benches/writer-compare.sh` measures `iok merge` against:
//! copy a JSON-lines file to an output with one `write(2)` per line, the
//! loop a program that logs events one at a time ends up doing.
//!
//! Reading is buffered (it is not what is measured); each line is written
//! with its own unbuffered `write_all`; with `--fsync` the output is then
//! fsynced, like `iok merge`'s default durability.
//!
//! Run: `cargo run --release --example naive_lines -- INPUT OUTPUT [--fsync]`.

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

fn copy_lines(input: &str, output: &str, fsync: bool) -> std::io::Result<u64> {
    let reader = std::fs::File::open(input)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {input}: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut out = std::fs::File::create(output)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {output}: {e}")))?;
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
    if fsync {
        out.sync_all()?;
    }
    Ok(lines)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (input, output, fsync) = match args.as_slice() {
        [_, input, output] => (input, output, false),
        [_, input, output, flag] if flag == "--fsync" => (input, output, true),
        _ => {
            eprintln!("usage: naive_lines INPUT OUTPUT [--fsync]");
            return ExitCode::FAILURE;
        }
    };
    match copy_lines(input, output, fsync) {
        Ok(lines) => {
            println!("wrote {lines} lines with one write each to {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("naive_lines: {e}");
            ExitCode::FAILURE
        }
    }
}
