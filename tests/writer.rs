//! The parallel writer on the real kernel: every layout x gzip x ordered,
//! several producers at once, read back and checked; padded outputs checked
//! at every stripe boundary; gzip outputs checked with `gzip -t`; merge,
//! durability, drop and error behaviour.

use flate2::read::MultiGzDecoder;
use iokernel::runtime::{self, Backend, Runtime};
use iokernel::writer::{
    errno_of, is_temp_name, shard_path, ContentKind, Durability, Layout, ParallelWriter,
    StripeBytes, WriteReport, WriterConfig,
};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A 64 KiB stripe keeps files small while lines still span stripes.
const STRIPE: u64 = 64 << 10;
const MIMIC: &str = "64K:2";
const PRODUCERS: usize = 3;

fn runtime(backend: Backend) -> Runtime {
    Runtime::builder()
        .name("writer-test")
        .compute_threads(2)
        .io_threads(4)
        .backend(backend)
        .build()
        .expect("runtime builds")
}

/// Deterministic generator for line sizes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// JSON-looking lines of producer `p`: mostly small, some larger than a
/// stripe. No line contains a zero byte or a newline.
fn lines_of(p: usize, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Lcg(seed ^ ((p as u64 + 1) * 0x9E37_79B9));
    (0..count)
        .map(|i| {
            let pad = match rng.next() % 40 {
                0 => (STRIPE + rng.next() % STRIPE) as usize, // spans stripes
                1..=4 => (rng.next() % 20_000) as usize,
                _ => (rng.next() % 300) as usize,
            };
            let fill = (b'a' + (rng.next() % 26) as u8) as char;
            format!(
                "{{\"p\":{p},\"i\":{i},\"pad\":\"{}\"}}",
                fill.to_string().repeat(pad)
            )
            .into_bytes()
        })
        .collect()
}

struct Case {
    layout: Layout,
    gzip: bool,
    ordered: bool,
    content: ContentKind,
    durability: Durability,
}

fn config(path: &Path, case: &Case) -> WriterConfig {
    WriterConfig::new(path)
        .layout(case.layout)
        .ordered(case.ordered)
        .gzip(case.gzip.then_some(1))
        .content(case.content)
        .durability(case.durability)
        .producers(PRODUCERS)
        .mimic_lustre(Some(MIMIC.into()))
}

/// Write every producer's lines from concurrently spawned tasks.
fn write_all(rt: &Runtime, config: WriterConfig, inputs: &[Vec<Vec<u8>>]) -> WriteReport {
    let inputs = inputs.to_vec();
    rt.block_on(async move {
        let writer = ParallelWriter::new(config).await?;
        let mut tasks = Vec::new();
        for lines in inputs {
            let mut producer = writer.producer();
            tasks.push(runtime::spawn(async move {
                for line in lines {
                    producer.write_line(&line).await?;
                }
                producer.close().await
            }));
        }
        for task in tasks {
            task.await??;
        }
        writer.finish().await
    })
    .expect("writer finishes")
}

/// No writer temporary file for `path` is left in its directory.
fn no_temp_left(path: &Path) -> bool {
    let dir = path.parent().expect("output in a directory");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    !std::fs::read_dir(dir).unwrap().any(|e| {
        let entry = e.unwrap().file_name().to_string_lossy().into_owned();
        is_temp_name(&entry) && entry.starts_with(&format!(".{name}."))
    })
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("output is valid multi-member gzip");
    out
}

/// `gzip -t` on `path`, when gzip is installed.
fn gzip_test(path: &Path) {
    let gzip = Path::new("/usr/bin/gzip");
    if !gzip.exists() {
        eprintln!("skipping gzip -t: /usr/bin/gzip is not installed");
        return;
    }
    let status = std::process::Command::new(gzip)
        .arg("-t")
        .arg(path)
        .status()
        .expect("gzip runs");
    assert!(status.success(), "gzip -t {} failed", path.display());
}

/// The output's raw bytes (shards concatenated when not merged).
fn raw_outputs(report: &WriteReport) -> Vec<(PathBuf, Vec<u8>)> {
    report
        .files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).expect("output readable")))
        .collect()
}

/// Split decoded text into lines; padding spaces before a newline are
/// dropped, zero bytes (holes) are skipped. No line may be blank.
fn parse_lines(decoded: &[u8]) -> Vec<Vec<u8>> {
    let text: Vec<u8> = decoded.iter().copied().filter(|b| *b != 0).collect();
    let mut lines = Vec::new();
    for line in text.split(|b| *b == b'\n') {
        lines.push(line.to_vec());
    }
    assert_eq!(
        lines.pop().as_deref(),
        Some(&b""[..]),
        "output ends with a newline"
    );
    for line in &mut lines {
        while line.last() == Some(&b' ') {
            line.pop();
        }
        assert!(
            line.starts_with(b"{") && line.ends_with(b"}"),
            "not a JSON line: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        );
    }
    lines
}

fn check_padded_boundaries(bytes: &[u8], case: &Case) -> usize {
    let mut boundaries = 0;
    let mut at = STRIPE as usize;
    while at < bytes.len() {
        boundaries += 1;
        if case.gzip {
            assert_eq!(&bytes[at..at + 2], &[0x1f, 0x8b], "gzip member at {at}");
        } else if bytes[at - 1] != b'\n' {
            // Inside a chunk larger than a stripe: in JSON-lines mode that
            // is a single line, which started on a stripe boundary.
            let start = bytes[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let end = bytes[at..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| at + i);
            assert!(
                case.content != ContentKind::JsonLines
                    || (start as u64 % STRIPE == 0 && (end - start) as u64 > STRIPE),
                "boundary {at} falls inside a line that does not span from a boundary"
            );
        } else {
            // A slot ends here: the line before is JSON padded with
            // spaces, never blank, and a line starts on the boundary.
            let start = bytes[..at - 1]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let line = &bytes[start..at - 1];
            let trimmed = line
                .iter()
                .rposition(|b| *b != b' ')
                .map_or(&line[..0], |i| &line[..=i]);
            assert!(trimmed.ends_with(b"}"), "padded line before {at} is JSON");
            if case.content == ContentKind::JsonLines {
                assert!(bytes[at] == b'{', "a line starts at boundary {at}");
            }
        }
        at += STRIPE as usize;
    }
    boundaries
}

fn run_case(case: Case, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let inputs: Vec<Vec<Vec<u8>>> = (0..PRODUCERS).map(|p| lines_of(p, 80, seed)).collect();
    let rt = runtime(Backend::Auto);
    let report = write_all(&rt, config(&path, &case), &inputs);
    assert!(!report.stream, "a regular file is not a stream");

    let raw = raw_outputs(&report);
    let mut decoded = Vec::new();
    for (file, bytes) in &raw {
        if case.gzip {
            gzip_test(file);
            decoded.extend(gunzip(bytes));
        } else {
            decoded.extend_from_slice(bytes);
        }
        if case.layout == Layout::PaddedStriped {
            check_padded_boundaries(bytes, &case);
        }
    }
    let got = parse_lines(&decoded);
    let expected: usize = inputs.iter().map(Vec::len).sum();
    assert_eq!(got.len(), expected, "every line, once");
    let mut want: HashMap<&[u8], usize> = HashMap::new();
    for line in inputs.iter().flatten() {
        *want.entry(line).or_default() += 1;
    }
    for line in &got {
        let n = want
            .get_mut(&line[..])
            .expect("only lines that were written");
        *n -= 1;
    }
    assert!(want.values().all(|n| *n == 0), "same multiset of lines");
    if case.ordered {
        // Sequence numbers grow within a producer: its lines stay in order.
        for (p, lines) in inputs.iter().enumerate() {
            let tag = format!("{{\"p\":{p},");
            let mine: Vec<&Vec<u8>> = got
                .iter()
                .filter(|l| l.starts_with(tag.as_bytes()))
                .collect();
            assert!(
                mine.iter().zip(lines).all(|(a, b)| *a == b),
                "producer {p} in order"
            );
        }
    }
    assert_eq!(
        report.bytes_out,
        raw.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    assert_eq!(report.stripe_bytes, STRIPE);
    assert!(report.chunks > 1);
    if let Layout::Sharded {
        shards,
        merge: true,
    } = case.layout
    {
        assert_eq!(report.files, vec![path.clone()]);
        for i in 0..shards {
            assert!(
                !shard_path(&path, i).exists(),
                "shard {i} removed after merge"
            );
        }
    }
    if case.layout == Layout::PaddedStriped {
        // Compressed chunks are small and may all share one slot.
        assert!(case.gzip || report.padding_bytes > 0);
    } else {
        assert_eq!(report.padding_bytes, 0);
    }
}

fn layouts() -> [Layout; 4] {
    [
        Layout::Striped,
        Layout::PaddedStriped,
        Layout::Sharded {
            shards: 2,
            merge: false,
        },
        Layout::Sharded {
            shards: 2,
            merge: true,
        },
    ]
}

#[test]
fn every_layout_gzip_and_order_reads_back_every_line() {
    let mut seed = 1;
    for layout in layouts() {
        for gzip in [false, true] {
            for ordered in [false, true] {
                seed += 1;
                run_case(
                    Case {
                        layout,
                        gzip,
                        ordered,
                        content: ContentKind::JsonLines,
                        durability: Durability::Fsync,
                    },
                    seed,
                );
            }
        }
    }
}

#[test]
fn binary_content_padded_leaves_holes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Backend::Auto);
    for gzip in [false, true] {
        let path = dir.path().join(format!("binary-{gzip}"));
        let case = Case {
            layout: Layout::PaddedStriped,
            gzip,
            ordered: true,
            content: ContentKind::Binary,
            durability: Durability::AtomicRename,
        };
        // Odd-sized payloads, no zero bytes: holes are the only zeros.
        let mut rng = Lcg(3);
        let payloads: Vec<Vec<u8>> = (0..120)
            .map(|i| vec![1 + (i % 250) as u8; (rng.next() % 9000) as usize + 1])
            .collect();
        let config = config(&path, &case).producers(1).chunk_bytes(Some(40_000));
        let report = rt
            .block_on(async {
                let writer = ParallelWriter::new(config).await?;
                let mut producer = writer.producer();
                for payload in &payloads {
                    producer.write(payload).await?;
                }
                producer.close().await?;
                writer.finish().await
            })
            .unwrap();
        let raw = std::fs::read(&path).unwrap();
        let decoded = if gzip {
            gzip_test(&path);
            gunzip(&raw)
        } else {
            let mut at = STRIPE as usize;
            while at < raw.len() {
                assert_ne!(raw[at], 0, "a chunk starts at boundary {at}");
                at += STRIPE as usize;
            }
            raw.iter().copied().filter(|b| *b != 0).collect()
        };
        assert!(
            decoded == payloads.concat(),
            "gzip={gzip}: payloads in order"
        );
        assert!(gzip || report.padding_bytes > 0);
        assert!(no_temp_left(&path), "no temporary file left");
    }
}

#[test]
fn one_ordered_producer_gives_exactly_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Backend::ThreadPool);
    for layout in layouts() {
        for gzip in [false, true] {
            let path = dir.path().join(format!("one-{}-{gzip}", layout.name()));
            let case = Case {
                layout,
                gzip,
                ordered: true,
                content: ContentKind::JsonLines,
                durability: Durability::AtomicRename,
            };
            let lines = lines_of(0, 200, 5);
            let report = write_all(
                &rt,
                config(&path, &case).producers(1),
                std::slice::from_ref(&lines),
            );
            let mut want = Vec::new();
            for line in &lines {
                want.extend_from_slice(line);
                want.push(b'\n');
            }
            let mut got = Vec::new();
            for (file, bytes) in raw_outputs(&report) {
                eprintln!(
                    "{layout} gzip={gzip}: {} ({} bytes)",
                    file.display(),
                    bytes.len()
                );
                if gzip {
                    gzip_test(&file);
                }
                got.extend(if gzip { gunzip(&bytes) } else { bytes });
            }
            if layout == Layout::PaddedStriped && !gzip {
                // Padding is spaces before newlines: compare line by line.
                let got: Vec<Vec<u8>> = parse_lines(&got);
                assert_eq!(got, lines, "{layout} padded lines in order");
            } else {
                assert!(got == want, "{layout} gzip={gzip}: exact concatenation");
            }
            assert!(no_temp_left(&path), "no temporary file left");
            assert_eq!(report.bytes_in, want.len() as u64);
        }
    }
}

#[test]
fn a_writer_dropped_without_finish_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Backend::Auto);
    for durability in [Durability::Fsync, Durability::AtomicRename] {
        for layout in layouts() {
            let path = dir
                .path()
                .join(format!("dropped-{}-{durability:?}", layout.name()));
            let config = WriterConfig::new(&path)
                .layout(layout)
                .durability(durability)
                .mimic_lustre(Some(MIMIC.into()));
            let err = rt.block_on(async {
                let writer = ParallelWriter::new(config).await.unwrap();
                let mut producer = writer.producer();
                for line in lines_of(0, 100, 9) {
                    producer.write_line(&line).await.unwrap();
                }
                drop(writer);
                // The producer learns the writer is gone.
                let mut result = Ok(());
                for _ in 0..20 {
                    result = producer.write(&[b'x'; 70_000]).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            });
            assert!(err.is_err(), "writes after the writer is dropped fail");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n.to_string_lossy().contains("dropped-"))
                .collect();
            assert!(left.is_empty(), "files left after drop: {left:?}");
        }
    }
}

#[test]
fn a_missing_directory_names_the_path_and_enoent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/out.jsonl");
    let rt = runtime(Backend::Auto);
    let err = rt
        .block_on(ParallelWriter::new(
            WriterConfig::new(&path).mimic_lustre(None),
        ))
        .err()
        .expect("creating in a missing directory fails");
    assert_eq!(errno_of(&err), Some(libc::ENOENT));
    let msg = err.to_string();
    assert!(
        msg.contains("create") && msg.contains("no/such/dir/out.jsonl"),
        "{msg}"
    );
}

/// An output path ending with `/` names a directory, existing or not: it
/// is refused before anything is created, saying so (not "Is a directory"
/// from a create that was tried, for a directory that does not exist).
#[test]
fn an_output_path_naming_a_directory_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let rt = runtime(Backend::Auto);
    let base = dir.path().display().to_string();
    for (path, says) in [
        (format!("{base}/sub/"), "ends with '/'"),
        (format!("{base}/missing/"), "ends with '/'"),
    ] {
        let err = rt
            .block_on(ParallelWriter::new(
                WriterConfig::new(&path).overwrite(true).mimic_lustre(None),
            ))
            .err()
            .expect("refused");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{path}: {err}"
        );
        assert!(err.to_string().contains(says), "{path}: {err}");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["sub"], "{path}: nothing created");
    }
}

#[test]
fn a_stripe_that_is_not_a_multiple_of_64k_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let rt = runtime(Backend::Auto);
    let err = rt
        .block_on(ParallelWriter::new(
            WriterConfig::new(&path).mimic_lustre(Some("100K:2".into())),
        ))
        .err()
        .expect("a 100 KiB stripe is refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("65536"), "{err}");
    assert!(!path.exists(), "nothing left behind");
}

#[test]
fn the_mimic_value_sets_stripe_and_fs_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mimic.bin");
    let rt = runtime(Backend::Auto);
    let report = rt
        .block_on(async {
            let config = WriterConfig::new(&path)
                .mimic_lustre(Some("128K:4".into()))
                .layout(Layout::PaddedStriped);
            let writer = ParallelWriter::new(config).await?;
            let mut producer = writer.producer();
            producer.write(&vec![7u8; 300_000]).await?;
            producer.close().await?;
            writer.finish().await
        })
        .unwrap();
    assert_eq!(report.fs_kind, iokernel::writer::FilesystemKind::Lustre);
    assert_eq!(report.stripe_bytes, 128 << 10);
    assert_eq!(report.bytes_in, 300_000);
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 300_000]);
}

#[test]
fn a_configured_stripe_sizes_slots_without_claiming_lustre() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("configured.bin");
    let rt = runtime(Backend::Auto);
    let report = rt
        .block_on(async {
            let config = WriterConfig::new(&path)
                .mimic_lustre(None)
                .stripe_bytes(Some(StripeBytes::try_from(128u64 << 10).unwrap()))
                .layout(Layout::PaddedStriped);
            let writer = ParallelWriter::new(config).await?;
            assert_eq!(writer.stripe_bytes(), 128 << 10);
            assert_eq!(writer.chunk_bytes(), 128 << 10);
            assert_eq!(
                writer.layout_info().source,
                iokernel::writer::SizingSource::Configured
            );
            let mut producer = writer.producer();
            producer.write(&vec![7u8; 300_000]).await?;
            producer.close().await?;
            writer.finish().await
        })
        .unwrap();
    let detected = rt_detected_fs_kind(&dir.path().join("detected.bin"));
    assert_eq!(report.fs_kind, detected);
    assert_ne!(report.fs_kind, iokernel::writer::FilesystemKind::Lustre);
    assert_eq!(
        (report.stripe_bytes, report.chunk_bytes),
        (128 << 10, 128 << 10)
    );
    // 300 000 bytes in 128 KiB chunks: three chunks, three slots.
    assert_eq!((report.chunks, report.stripes), (3, 3));
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 300_000]);
}

/// The file system kind a writer with no overrides detects at `path`.
fn rt_detected_fs_kind(path: &Path) -> iokernel::writer::FilesystemKind {
    let rt = runtime(Backend::Auto);
    rt.block_on(async {
        let config = WriterConfig::new(path).mimic_lustre(None);
        let writer = ParallelWriter::new(config).await?;
        let kind = writer.fs_kind();
        writer.finish().await?;
        Ok::<_, std::io::Error>(kind)
    })
    .unwrap()
}

#[test]
fn a_stripe_that_is_not_a_multiple_of_64k_cannot_be_configured() {
    // The config takes a StripeBytes, so a bad size is refused where it is
    // made, naming the size.
    for bad in [4096u64, 100 << 10, 8 << 30] {
        let err = StripeBytes::try_from(bad).expect_err("a bad stripe is refused");
        assert!(err.to_string().contains(&format!("{bad} bytes")), "{err}");
    }
    assert!(StripeBytes::try_from(0).is_err());
}

#[test]
fn json_lines_without_final_newline_are_kept_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [None, Some(6)] {
        let path = dir.path().join(format!("exact-{gzip:?}"));
        let rt = runtime(Backend::Auto);
        let mut text = Vec::new();
        for i in 0..5000 {
            text.extend_from_slice(
                format!("{{\"line\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 90)).as_bytes(),
            );
        }
        text.extend_from_slice(b"{\"last\":\"no newline\"}");
        let report = rt
            .block_on(async {
                let config = WriterConfig::new(&path)
                    .mimic_lustre(None)
                    .content(ContentKind::JsonLines)
                    .ordered(true)
                    .gzip(gzip)
                    .chunk_bytes(Some(16 << 10))
                    .final_newline(false);
                let writer = ParallelWriter::new(config).await?;
                let mut producer = writer.producer();
                // Whole lines, as pgzip hands them over; the last has no
                // newline.
                for line in text.split_inclusive(|b| *b == b'\n') {
                    producer.write(line).await?;
                }
                producer.close().await?;
                writer.finish().await
            })
            .unwrap();
        assert_eq!(report.bytes_in, text.len() as u64);
        assert!(report.chunks > 4, "several chunks: {}", report.chunks);
        let got = if gzip.is_some() {
            let mut out = Vec::new();
            let raw = std::fs::read(&path).unwrap();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out)
                .unwrap();
            out
        } else {
            std::fs::read(&path).unwrap()
        };
        assert!(
            got == text,
            "gzip={gzip:?}: output is not the input byte for byte"
        );
    }
    let config = WriterConfig::new(dir.path().join("padded"))
        .layout(Layout::PaddedStriped)
        .content(ContentKind::JsonLines)
        .final_newline(false);
    let err = config
        .validate()
        .expect_err("plain padded JSON needs the newline");
    assert!(err.to_string().contains("final_newline"), "{err}");
}

#[test]
fn writer_and_producers_move_between_tasks() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<ParallelWriter>();
    assert_send::<iokernel::writer::Producer>();
    assert_send::<WriteReport>();
}

/// Lines `line-<i>` joined with newlines, and the lines themselves.
fn numbered_lines(count: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let lines: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{{\"line\":{i}}}").into_bytes())
        .collect();
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    (lines, text)
}

#[test]
fn a_stripe_request_off_lustre_writes_normally_and_sets_no_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requested.jsonl");
    std::fs::write(&path, b"an older output\n").unwrap();
    let (lines, text) = numbered_lines(5000);
    let rt = runtime(Backend::Auto);
    let config = WriterConfig::new(&path)
        .overwrite(true)
        .mimic_lustre(None)
        .content(ContentKind::JsonLines)
        .stripe_request(Some(iokernel::writer::StripeRequest {
            stripe_bytes: "4M".parse().unwrap(),
            stripe_count: 4,
        }));
    let report = write_all(&rt, config, &[lines]);
    assert_ne!(report.fs_kind, iokernel::writer::FilesystemKind::Lustre);
    assert_eq!(std::fs::read(&path).unwrap(), text);
    // The request only applies on Lustre: no lustre.lov here.
    let lov = iokernel::io::getxattr(&path, "lustre.lov", 4096).wait();
    let errno = lov.expect_err("no layout off Lustre").raw_os_error();
    assert!(
        errno == Some(libc::ENODATA) || errno == Some(libc::EOPNOTSUPP),
        "errno {errno:?}"
    );
}

/// The filler for gaps of 1 to 25 bytes above 0..3 multiples of the
/// largest single empty member (and the multiples), and just under and
/// over 64 KiB, written to a real file after a member each: GNU gzip reads
/// every member (it stops silently at a zero byte between members).
#[test]
fn padding_edge_gaps_are_read_whole_by_gnu_gzip() {
    use iokernel::writer::gzip::{encode_member, pad_member, MAX_EMPTY_MEMBER_BYTES};
    let largest = MAX_EMPTY_MEMBER_BYTES;
    let mut gaps: Vec<usize> = (0..=3)
        .flat_map(|k| (1..=25).map(move |j| k * largest + j))
        .collect();
    gaps.extend((1..=3).map(|k| k * largest));
    gaps.extend((64 << 10) - 4..=(64 << 10) + 4);
    let (mut file, mut text) = (Vec::new(), Vec::new());
    for (i, gap) in gaps.iter().enumerate() {
        let line = format!("{{\"gap\":{gap},\"i\":{i}}}\n").into_bytes();
        let mut member = encode_member(&line, 6);
        let before = member.len();
        pad_member(&mut member, *gap).unwrap();
        assert_eq!(member.len(), before + gap, "gap {gap}");
        file.extend_from_slice(&member);
        text.extend_from_slice(&line);
    }
    file.extend_from_slice(&encode_member(b"{\"last\":true}\n", 6));
    text.extend_from_slice(b"{\"last\":true}\n");
    assert_eq!(gunzip(&file), text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge-gaps.jsonl.gz");
    std::fs::write(&path, &file).unwrap();
    let gzip = Path::new("/usr/bin/gzip");
    if !gzip.exists() {
        eprintln!("skipping gzip -dc: /usr/bin/gzip is not installed");
        return;
    }
    let out = std::process::Command::new(gzip)
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("gzip runs");
    assert!(out.status.success(), "gzip -dc failed: {out:?}");
    assert!(
        out.stdout == text,
        "gzip -dc dropped members: {} of {} bytes",
        out.stdout.len(),
        text.len()
    );
}

#[test]
fn padded_gzip_with_megabyte_stripes_stays_readable_by_flate2_and_gzip() {
    // 1 MiB slots hold a few ~100 KiB members each, so the filler at a
    // slot's end is often larger than one gzip comment may be (64 KiB).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("padded-1m.jsonl.gz");
    // Random hex compresses to about half, so members are ~500 KiB.
    let mut lcg = Lcg(11);
    let lines: Vec<Vec<u8>> = (0..100_000)
        .map(|i| {
            let hex: String = (0..6).map(|_| format!("{:08x}", lcg.next())).collect();
            format!("{{\"i\":{i},\"x\":\"{hex}\"}}").into_bytes()
        })
        .collect();
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    let rt = runtime(Backend::Auto);
    let config = WriterConfig::new(&path)
        .mimic_lustre(None)
        .content(ContentKind::JsonLines)
        .layout(Layout::PaddedStriped)
        .ordered(true)
        .gzip(Some(6))
        .stripe_bytes(Some(StripeBytes::LUSTRE_DEFAULT))
        .chunk_bytes(Some(1 << 20));
    let report = write_all(&rt, config, &[lines]);
    assert!(
        report.padding_bytes > 64 << 10,
        "padding {}",
        report.padding_bytes
    );
    assert_eq!(gunzip(&std::fs::read(&path).unwrap()), text);
    gzip_test(&path);
}

#[cfg(feature = "sim")]
mod on_simulated_lustre {
    use super::*;
    use iokernel::sim::{self, SimKernel, SimOptions};
    use iokernel::writer::{parse_lov, FilesystemKind, StripeRequest};
    use std::sync::Arc;

    const REQUEST: StripeRequest = StripeRequest {
        stripe_bytes: match StripeBytes::new(4 << 20) {
            Ok(stripe) => stripe,
            Err(_) => panic!("4 MiB is a stripe size"),
        },
        stripe_count: 2,
    };

    fn lustre_kernel(seed: u64) -> Arc<SimKernel> {
        let mut options = SimOptions::new(seed);
        options.fs_magic = 0x0BD0_0BD0;
        sim::new_kernel(options).unwrap()
    }

    fn layout_of(kernel: &SimKernel, path: &str) -> (u64, u32) {
        let blob = kernel.xattr(path, "lustre.lov").expect("a layout");
        let layout = parse_lov(&blob).expect("a v1 layout");
        (layout.stripe_bytes, layout.stripe_count)
    }

    fn write_on(kernel: &Arc<SimKernel>, config: WriterConfig, lines: Vec<Vec<u8>>) -> WriteReport {
        sim::run(kernel, async move {
            let writer = ParallelWriter::new(config).await?;
            let mut producer = writer.producer();
            for line in &lines {
                producer.write_line(line).await?;
            }
            producer.close().await?;
            writer.finish().await
        })
        .expect("the sim run ends")
        .expect("the writer finishes")
    }

    #[test]
    fn an_existing_output_is_recreated_with_the_requested_layout() {
        let kernel = lustre_kernel(3);
        // An older output, created with the default layout (1 MiB x 1),
        // which Lustre would keep if the writer only truncated it.
        kernel.write_file_durable("/out.pfw", b"old\n").unwrap();
        assert_eq!(layout_of(&kernel, "/out.pfw"), (1 << 20, 1));
        let (lines, text) = numbered_lines(3000);
        let config = WriterConfig::new("/out.pfw")
            .overwrite(true)
            .mimic_lustre(None)
            .content(ContentKind::JsonLines)
            .stripe_request(Some(REQUEST));
        let report = write_on(&kernel, config, lines);
        assert_eq!(layout_of(&kernel, "/out.pfw"), (4 << 20, 2));
        assert_eq!(report.fs_kind, FilesystemKind::Lustre);
        assert_eq!(
            report.stripe_bytes,
            4 << 20,
            "sized from the read-back layout"
        );
        assert_eq!(kernel.read_file("/out.pfw").unwrap(), text);
    }

    #[test]
    fn shards_and_the_merged_file_all_get_the_layout() {
        let kernel = lustre_kernel(4);
        let (lines, text) = numbered_lines(3000);
        let config = WriterConfig::new("/merged.pfw")
            .mimic_lustre(None)
            .content(ContentKind::JsonLines)
            .layout(Layout::Sharded {
                shards: 2,
                merge: true,
            })
            .durability(Durability::AtomicRename)
            .stripe_request(Some(REQUEST));
        let report = write_on(&kernel, config, lines);
        assert_eq!(layout_of(&kernel, "/merged.pfw"), (4 << 20, 2));
        assert_eq!(report.fs_kind, FilesystemKind::Lustre);
        assert_eq!(kernel.read_file("/merged.pfw").unwrap(), text);
    }

    #[test]
    fn without_a_request_the_default_layout_is_read_back() {
        let kernel = lustre_kernel(5);
        let (lines, _) = numbered_lines(100);
        let config = WriterConfig::new("/plain.pfw")
            .mimic_lustre(None)
            .content(ContentKind::JsonLines);
        let report = write_on(&kernel, config, lines);
        assert_eq!(report.fs_kind, FilesystemKind::Lustre);
        assert_eq!(report.stripe_bytes, 1 << 20);
        assert_eq!(layout_of(&kernel, "/plain.pfw"), (1 << 20, 1));
    }
}

/// Write `lines` to a new writer for `config` and finish it.
fn try_write(
    rt: &Runtime,
    config: WriterConfig,
    lines: &[Vec<u8>],
) -> std::io::Result<WriteReport> {
    let lines = lines.to_vec();
    rt.block_on(async move {
        let writer = ParallelWriter::new(config).await?;
        let mut producer = writer.producer();
        for line in &lines {
            producer.write_line(line).await?;
        }
        producer.close().await?;
        writer.finish().await
    })
}

#[test]
fn an_existing_output_is_refused_unless_overwrite_and_then_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Backend::Auto);
    let (lines, text) = numbered_lines(2000);
    for durability in [
        Durability::None,
        Durability::Fsync,
        Durability::AtomicRename,
    ] {
        for layout in layouts() {
            let path = dir
                .path()
                .join(format!("existing-{}-{durability:?}", layout.name()));
            // The file the writer would create first: the output, or shard 0.
            let first = match layout {
                Layout::Sharded { merge: false, .. } => shard_path(&path, 0),
                _ => path.clone(),
            };
            std::fs::write(&first, b"precious\n").unwrap();
            let config = WriterConfig::new(&path)
                .layout(layout)
                .durability(durability)
                .content(ContentKind::JsonLines)
                .ordered(true)
                .mimic_lustre(Some(MIMIC.into()));
            let err = try_write(&rt, config.clone(), &lines).expect_err("refused");
            assert_eq!(
                errno_of(&err),
                Some(libc::EEXIST),
                "{layout} {durability:?}"
            );
            assert!(err.to_string().contains("overwrite is off"), "{err}");
            assert_eq!(std::fs::read(&first).unwrap(), b"precious\n");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&format!("existing-{}-{durability:?}", layout.name())))
                .collect();
            assert_eq!(left.len(), 1, "only the precious file: {left:?}");

            let report = try_write(&rt, config.overwrite(true), &lines).expect("overwritten");
            let mut got = Vec::new();
            for file in &report.files {
                got.extend(std::fs::read(file).unwrap());
            }
            if layout != Layout::PaddedStriped {
                assert!(got == text, "{layout} {durability:?}: new content");
            }
            assert!(no_temp_left(&path));
        }
    }
}

#[test]
fn a_file_at_a_later_shard_name_survives_and_the_created_shards_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Backend::Auto);
    let path = dir.path().join("sharded.pfw");
    let foreign = shard_path(&path, 2);
    std::fs::write(&foreign, b"someone else's\n").unwrap();
    let config = WriterConfig::new(&path)
        .layout(Layout::Sharded {
            shards: 3,
            merge: true,
        })
        .content(ContentKind::JsonLines)
        .mimic_lustre(None);
    let err = try_write(&rt, config, &numbered_lines(100).0).expect_err("shard 2 exists");
    assert_eq!(errno_of(&err), Some(libc::EEXIST));
    assert!(err.to_string().contains("sharded.pfw.shard_2"), "{err}");
    assert_eq!(std::fs::read(&foreign).unwrap(), b"someone else's\n");
    assert!(!shard_path(&path, 0).exists() && !shard_path(&path, 1).exists());
    assert!(!path.exists());
}

#[test]
fn concurrent_atomic_rename_writers_never_share_a_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.pfw");
    // Someone's file at the first temporary name: skipped, never touched.
    let squatter = iokernel::writer::temp_path(&path, 0);
    std::fs::write(&squatter, b"squatter\n").unwrap();
    let rt = runtime(Backend::Auto);
    let texts: Vec<(Vec<Vec<u8>>, Vec<u8>)> = (0..4)
        .map(|w| {
            let lines: Vec<Vec<u8>> = (0..3000)
                .map(|i| format!("{{\"writer\":{w},\"i\":{i}}}").into_bytes())
                .collect();
            let mut text = lines.join(&b'\n');
            text.push(b'\n');
            (lines, text)
        })
        .collect();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for (lines, _) in &texts {
            let lines = lines.clone();
            let config = WriterConfig::new(&path)
                .durability(Durability::AtomicRename)
                .content(ContentKind::JsonLines)
                .ordered(true)
                .chunk_bytes(Some(4096))
                .overwrite(true)
                .mimic_lustre(None);
            tasks.push(iokernel::runtime::spawn(async move {
                let writer = ParallelWriter::new(config).await?;
                let mut producer = writer.producer();
                for line in &lines {
                    producer.write_line(line).await?;
                }
                producer.close().await?;
                writer.finish().await
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        results
    });
    for result in &results {
        result.as_ref().expect("each writer finishes");
    }
    let got = std::fs::read(&path).unwrap();
    assert!(
        texts.iter().any(|(_, text)| *text == got),
        "the output is one writer's whole output, not a mix"
    );
    assert_eq!(std::fs::read(&squatter).unwrap(), b"squatter\n");
    let temps: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| is_temp_name(n))
        .collect();
    assert_eq!(temps.len(), 1, "only the squatter: {temps:?}");
}

#[test]
fn planned_paths_name_the_output_and_every_shard() {
    use iokernel::writer::planned_paths;
    let path = Path::new("/d/out.pfw");
    assert_eq!(
        planned_paths(&WriterConfig::new(path)),
        vec![path.to_path_buf()]
    );
    let kept = WriterConfig::new(path).layout(Layout::Sharded {
        shards: 2,
        merge: false,
    });
    assert_eq!(
        planned_paths(&kept),
        vec![shard_path(path, 0), shard_path(path, 1)]
    );
    assert!(planned_paths(&WriterConfig::new(path).stream_fd(Some(1))).is_empty());
}

#[cfg(feature = "sim")]
mod on_the_simulator_with_faults {
    use super::*;
    use iokernel::sim::{self, SimOptions};

    /// With faults on, whatever the writer does (finish or fail), a file
    /// it did not create — at its first temporary name and at a name next
    /// to its shards — keeps its bytes, and nothing the writer created is
    /// left after a failure.
    #[test]
    fn a_failing_writer_never_removes_a_file_it_did_not_create() {
        let mut failures = 0;
        for seed in 0..40u64 {
            let kernel = sim::new_kernel(SimOptions::with_faults(seed, 0.05)).unwrap();
            let out = Path::new("/out.pfw");
            let squatter = iokernel::writer::temp_path(out, 0);
            let neighbour = shard_path(out, 9);
            kernel.write_file_durable(&squatter, b"squatter\n").unwrap();
            kernel
                .write_file_durable(&neighbour, b"neighbour\n")
                .unwrap();
            let layout = if seed % 2 == 0 {
                Layout::Striped
            } else {
                Layout::Sharded {
                    shards: 3,
                    merge: true,
                }
            };
            let config = WriterConfig::new(out)
                .layout(layout)
                .durability(Durability::AtomicRename)
                .content(ContentKind::JsonLines)
                .producers(2)
                .chunk_bytes(Some(2048))
                .mimic_lustre(None);
            let (lines, _) = numbered_lines(400);
            let result = sim::run(&kernel, async move {
                let writer = ParallelWriter::new(config).await?;
                let mut producer = writer.producer();
                for line in &lines {
                    producer.write_line(line).await?;
                }
                producer.close().await?;
                writer.finish().await
            })
            .expect("the sim run ends");
            assert_eq!(
                kernel.read_file(&squatter).unwrap(),
                b"squatter\n",
                "seed {seed}"
            );
            assert_eq!(
                kernel.read_file(&neighbour).unwrap(),
                b"neighbour\n",
                "seed {seed}"
            );
            if result.is_err() {
                failures += 1;
                let listed = kernel.list_dir("/").unwrap_or_default();
                let metadata_faults = kernel
                    .core()
                    .stats()
                    .injected
                    .keys()
                    .any(|(class, _)| *class == sim::OpClass::Metadata);
                let extra: Vec<_> = listed
                    .iter()
                    .filter(|n| {
                        !["out.pfw", "out.pfw.shard_9"].contains(&n.as_str())
                            && Some(n.as_str()) != squatter.file_name().and_then(|f| f.to_str())
                    })
                    .collect();
                assert!(
                    extra.is_empty() || metadata_faults,
                    "seed {seed}: left behind {extra:?}"
                );
            }
        }
        assert!(failures > 0, "the faults made at least one run fail");
    }
}

/// The created-files journal (`CreatedFiles::with_journal`, what `iok`'s
/// cleanup helper reads) on the simulator with faults: wherever the run
/// stops (killed mid-write with no cleanup at all, finish failed, finish
/// done), replaying the journal names exactly the files the run made that
/// are still there and are not the finished output, so removing them
/// leaves the directory as the run found it.
#[cfg(feature = "sim")]
mod created_files_journal {
    use super::*;
    use iokernel::sim::{self, SimKernel, SimOptions};
    use iokernel::writer::{CreatedFiles, JournalRecord};
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    /// A journal the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct SharedJournal(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedJournal {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The names the journal still lists, in the root directory.
    fn replay(journal: &SharedJournal) -> BTreeSet<String> {
        let bytes = journal.0.lock().unwrap().clone();
        JournalRecord::still_listed(&bytes)
            .expect("whole records")
            .iter()
            .map(|path| name_of(path))
            .collect()
    }

    fn name_of(path: &Path) -> String {
        assert_eq!(path.parent(), Some(Path::new("/")), "{}", path.display());
        path.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn names(kernel: &SimKernel) -> BTreeSet<String> {
        kernel
            .list_dir("/")
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    #[derive(Clone, Copy, Debug)]
    enum Stop {
        /// Killed after this many lines: the writer is leaked, no cleanup.
        Killed(usize),
        Finished,
    }

    #[test]
    fn names_exactly_what_a_run_leaves_wherever_it_stops() {
        let (lines, _) = numbered_lines(600);
        let mut seen = HashMap::<&str, usize>::new();
        for seed in 0..60u64 {
            let kernel = sim::new_kernel(SimOptions::with_faults(seed, 0.04)).unwrap();
            let out = Path::new("/out.pfw");
            kernel
                .write_file_durable("/unrelated", b"not the run's\n")
                .unwrap();
            let before = names(&kernel);
            let (layout, durability) = match seed % 4 {
                0 => (Layout::Striped, Durability::AtomicRename),
                1 => (Layout::Striped, Durability::Fsync),
                2 => (
                    Layout::Sharded {
                        shards: 3,
                        merge: true,
                    },
                    Durability::AtomicRename,
                ),
                _ => (
                    Layout::Sharded {
                        shards: 3,
                        merge: false,
                    },
                    Durability::None,
                ),
            };
            let stop = match seed % 3 {
                0 => Stop::Finished,
                _ => Stop::Killed((seed as usize * 37) % lines.len()),
            };
            let journal = SharedJournal::default();
            let config = WriterConfig::new(out)
                .layout(layout)
                .durability(durability)
                .content(ContentKind::JsonLines)
                .producers(2)
                .chunk_bytes(Some(2048))
                .mimic_lustre(None)
                .created_files(Some(CreatedFiles::with_journal(journal.clone())));
            let run_lines = lines.clone();
            let finished = sim::run(&kernel, async move {
                let writer = ParallelWriter::new(config).await?;
                let mut producer = writer.producer();
                for (i, line) in run_lines.iter().enumerate() {
                    if let Stop::Killed(at) = stop {
                        if i == at {
                            // As SIGKILL: nothing runs after this point.
                            std::mem::forget(producer);
                            std::mem::forget(writer);
                            return Ok(None);
                        }
                    }
                    producer.write_line(line).await?;
                }
                producer.close().await?;
                writer.finish().await.map(Some)
            })
            .expect("the sim run ends");
            let after = names(&kernel);
            let made: BTreeSet<String> = after.difference(&before).cloned().collect();
            let kept: BTreeSet<String> = match &finished {
                Ok(Some(_)) => match layout {
                    Layout::Sharded { merge: false, .. } => made
                        .iter()
                        .filter(|n| n.contains(".shard_"))
                        .cloned()
                        .collect(),
                    _ => ["out.pfw".to_string()].into(),
                },
                // A finish that failed after the rename (syncing the
                // directory) leaves the complete output in place: kept.
                Err(_) if after.contains("out.pfw") && !replay(&journal).contains("out.pfw") => {
                    let mut got: Vec<Vec<u8>> = kernel
                        .read_file(out)
                        .unwrap()
                        .split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect();
                    got.sort();
                    let mut want = lines.clone();
                    want.sort();
                    assert_eq!(
                        got, want,
                        "seed {seed}: a kept output after a failed finish is whole"
                    );
                    ["out.pfw".to_string()].into()
                }
                _ => BTreeSet::new(),
            };
            let leftovers: BTreeSet<String> = made.difference(&kept).cloned().collect();
            let outcome = match &finished {
                Ok(Some(_)) => "finished",
                Ok(None) => "killed",
                Err(_) => "failed",
            };
            *seen.entry(outcome).or_default() += 1;
            if !leftovers.is_empty() {
                *seen.entry("left files").or_default() += 1;
            }
            assert_eq!(
                replay(&journal),
                leftovers,
                "seed {seed} ({layout:?}, {durability:?}, {stop:?}, {outcome} {:?}): \
                 the journal must list exactly the run's leftovers; files now {after:?}",
                finished.as_ref().err()
            );
            assert!(after.contains("unrelated"), "seed {seed}");
        }
        for outcome in ["finished", "killed", "failed", "left files"] {
            assert!(seen.contains_key(outcome), "no run {outcome}: {seen:?}");
        }
    }
}

/// Pieces of lines far longer than a chunk, as `iok pgzip` writes them:
/// `Producer::write_line_piece` seals at the chunk size inside a line, so
/// no member holds more than a chunk; whole lines around them still cut
/// at line ends; the output decompresses to exactly what was written.
#[cfg(feature = "sim")]
mod line_pieces {
    use super::*;
    use iokernel::sim::{self, SimOptions};

    const CHUNK: u64 = 64 << 10;

    /// Short lines, a 300 KiB line in 7 KiB pieces, short lines, and an
    /// unterminated last line written as a piece.
    fn script() -> (Vec<(bool, Vec<u8>)>, Vec<u8>) {
        let mut parts = Vec::new();
        for i in 0..200 {
            parts.push((false, format!("{{\"i\":{i}}}\n").into_bytes()));
        }
        let long: Vec<u8> = (0..300 << 10).map(|i| b'a' + (i % 23) as u8).collect();
        for piece in long.chunks(7 << 10) {
            parts.push((true, piece.to_vec()));
        }
        parts.push((false, b"\n{\"after\":1}\n".to_vec()));
        parts.push((true, b"{\"last\":true}".to_vec()));
        let text = parts.iter().flat_map(|(_, p)| p.clone()).collect();
        (parts, text)
    }

    fn config(path: &str) -> WriterConfig {
        WriterConfig::new(path)
            .mimic_lustre(None)
            .content(ContentKind::JsonLines)
            .ordered(true)
            .gzip(Some(1))
            .chunk_bytes(Some(CHUNK))
            .final_newline(false)
            .durability(Durability::None)
    }

    async fn write(
        config: WriterConfig,
        parts: Vec<(bool, Vec<u8>)>,
    ) -> std::io::Result<WriteReport> {
        let writer = ParallelWriter::new(config).await?;
        let mut producer = writer.producer();
        for (piece, bytes) in &parts {
            if *piece {
                producer.write_line_piece(bytes).await?;
            } else {
                producer.write(bytes).await?;
            }
        }
        producer.close().await?;
        writer.finish().await
    }

    /// Every member decodes to at most a chunk; all of them to `text`.
    fn check_members(bytes: &[u8], text: &[u8]) {
        assert_eq!(gunzip(bytes), text);
        let mut rest = bytes;
        let mut members = 0;
        while !rest.is_empty() {
            let mut decoder = flate2::bufread::GzDecoder::new(rest);
            let mut member = Vec::new();
            decoder.read_to_end(&mut member).expect("a member");
            assert!(member.len() as u64 <= CHUNK, "member of {}", member.len());
            rest = decoder.into_inner();
            members += 1;
        }
        assert!(members >= 5, "{members} members");
    }

    #[test]
    fn on_the_real_kernel_members_stay_within_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pieces.pfw.gz");
        let (parts, text) = script();
        let rt = runtime(Backend::Auto);
        let config = config(path.to_str().unwrap());
        rt.block_on(write(config, parts)).unwrap();
        check_members(&std::fs::read(&path).unwrap(), &text);
    }

    #[test]
    fn on_the_simulated_kernel_with_faults_nothing_is_lost_or_added() {
        let (parts, text) = script();
        let mut finished = 0;
        for seed in 0..24u64 {
            let kernel = sim::new_kernel(SimOptions::with_faults(seed, 0.02)).unwrap();
            let outcome = sim::run(&kernel, write(config("/pieces.pfw.gz"), parts.clone()))
                .expect("the sim run ends");
            match outcome {
                Ok(_) => {
                    finished += 1;
                    check_members(&kernel.read_file("/pieces.pfw.gz").unwrap(), &text);
                }
                // A failed run names an errno and leaves no output.
                Err(e) => {
                    assert!(errno_of(&e).is_some(), "seed {seed}: {e}");
                    assert!(kernel.read_file("/pieces.pfw.gz").is_none(), "seed {seed}");
                }
            }
        }
        assert!(finished > 0, "no seed finished");
    }
}

/// `WriterConfig::new` never reads `IOKERNEL_MIMIC_LUSTRE`; `from_env`
/// does (nextest runs this test in its own process, so setting the
/// variable touches no other test).
#[test]
fn writer_config_new_ignores_the_environment_and_from_env_reads_it() {
    std::env::set_var("IOKERNEL_MIMIC_LUSTRE", "1M:4");
    assert_eq!(WriterConfig::new("/x").mimic_lustre, None);
    assert_eq!(
        WriterConfig::from_env("/x").mimic_lustre.as_deref(),
        Some("1M:4")
    );
    std::env::set_var("IOKERNEL_MIMIC_LUSTRE", "  ");
    assert_eq!(
        WriterConfig::from_env("/x").mimic_lustre,
        None,
        "blank is unset"
    );
    std::env::remove_var("IOKERNEL_MIMIC_LUSTRE");
    assert_eq!(WriterConfig::from_env("/x").mimic_lustre, None);
}

/// `Producer::write_line` on the default `Binary` content keeps lines
/// whole: every gzip member (one per chunk) ends at a line end, except
/// around a line longer than a chunk, which is cut at the chunk size.
#[cfg(feature = "sim")]
mod binary_lines {
    use super::*;
    use iokernel::sim::{self, SimOptions};

    const CHUNK: u64 = 1000;

    /// Lines of 1 to ~300 bytes, with one 2500-byte line in the middle.
    fn lines() -> Vec<Vec<u8>> {
        let mut lines: Vec<Vec<u8>> = (0..400)
            .map(|i| format!("line-{i}-{}", "z".repeat(i * 7 % 290)).into_bytes())
            .collect();
        lines.insert(200, vec![b'L'; 2500]);
        lines
    }

    fn config(path: &str) -> WriterConfig {
        WriterConfig::new(path)
            .ordered(true)
            .gzip(Some(1))
            .chunk_bytes(Some(CHUNK))
            .durability(Durability::None)
    }

    async fn write(config: WriterConfig, lines: Vec<Vec<u8>>) -> std::io::Result<WriteReport> {
        assert_eq!(config.content, ContentKind::Binary, "the default content");
        let writer = ParallelWriter::new(config).await?;
        let mut producer = writer.producer();
        for line in &lines {
            producer.write_line(line).await?;
        }
        producer.close().await?;
        writer.finish().await
    }

    /// The members, decoded one by one.
    fn members(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let mut decoder = flate2::bufread::GzDecoder::new(rest);
            let mut member = Vec::new();
            decoder.read_to_end(&mut member).expect("a member");
            rest = decoder.into_inner();
            out.push(member);
        }
        out
    }

    fn check(bytes: &[u8], lines: &[Vec<u8>]) {
        let text: Vec<u8> = lines
            .iter()
            .flat_map(|l| [&l[..], b"\n"].concat())
            .collect();
        assert_eq!(gunzip(bytes), text);
        let members = members(bytes);
        assert!(members.len() > 10, "{} members", members.len());
        let mut cut_inside = 0;
        for member in &members {
            assert!(member.len() as u64 <= CHUNK, "member of {}", member.len());
            if member.last() != Some(&b'\n') {
                cut_inside += 1;
                assert!(
                    member.iter().all(|&b| b == b'L'),
                    "only the long line is cut"
                );
            }
        }
        // 2501 bytes after a sealed buffer: two full chunks of it, cut inside.
        assert!(cut_inside <= 2, "{cut_inside} members end inside a line");
    }

    #[test]
    fn on_the_real_kernel_every_member_ends_at_a_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binary-lines.gz");
        let rt = runtime(Backend::Auto);
        rt.block_on(write(config(path.to_str().unwrap()), lines()))
            .unwrap();
        check(&std::fs::read(&path).unwrap(), &lines());
    }

    #[test]
    fn on_the_simulated_kernel_with_faults_lines_stay_whole() {
        let mut finished = 0;
        for seed in 0..16u64 {
            let kernel = sim::new_kernel(SimOptions::with_faults(seed, 0.02)).unwrap();
            let outcome = sim::run(&kernel, write(config("/binary-lines.gz"), lines()))
                .expect("the sim run ends");
            if outcome.is_ok() {
                finished += 1;
                check(&kernel.read_file("/binary-lines.gz").unwrap(), &lines());
            }
        }
        assert!(finished > 0, "at least one run finished");
    }

    /// `write` (not `write_line`) on Binary content still cuts at the chunk
    /// size wherever it falls.
    #[test]
    fn binary_write_still_cuts_at_the_chunk_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binary-write.gz");
        let rt = runtime(Backend::Auto);
        let data: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let written = data.clone();
        rt.block_on(async move {
            let writer = ParallelWriter::new(config(path.to_str().unwrap())).await?;
            let mut producer = writer.producer();
            for piece in written.chunks(300) {
                producer.write(piece).await?;
            }
            producer.close().await?;
            writer.finish().await
        })
        .unwrap();
        let bytes = std::fs::read(dir.path().join("binary-write.gz")).unwrap();
        let members = members(&bytes);
        assert_eq!(members.concat(), data);
        assert!(
            members[..members.len() - 1]
                .iter()
                .all(|m| m.len() as u64 == CHUNK),
            "full chunks: {:?}",
            members.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
}

/// A writer handed a stream fd (here one end of a socket pair) writes the
/// lines in order to it and says in its report that the output was a
/// stream, whose layout fields describe nothing.
#[test]
fn a_stream_output_is_reported_as_a_stream() {
    use std::os::fd::IntoRawFd;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let reader = iokernel::sys::real::thread::spawn_named("stream-reader".to_string(), move || {
        let mut got = Vec::new();
        (&theirs).read_to_end(&mut got).unwrap();
        got_tx.send(got).unwrap();
    })
    .unwrap();
    let lines: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("{{\"i\":{i}}}").into_bytes())
        .collect();
    let config = WriterConfig::new("stream-out")
        .ordered(true)
        .producers(1)
        .stream_fd(Some(ours.into_raw_fd()));
    let report = write_all(
        &runtime(Backend::Auto),
        config,
        std::slice::from_ref(&lines),
    );
    assert!(report.stream, "{report:?}");
    let mut want = lines.join(&b'\n');
    want.push(b'\n');
    reader.join().unwrap();
    let got = got_rx.recv().unwrap();
    assert_eq!(got, want, "the stream got every line in order");
    assert_eq!(report.bytes_out, want.len() as u64);
}

/// A chunk size given outright keeps to the memory budget: one too big for
/// even one chunk per producer plus one in flight is refused before any
/// file exists (it was allocated, and aborted the process on a failed
/// allocation), and one that fits writes the lines whole.
#[test]
fn an_explicit_chunk_size_keeps_to_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.jsonl");
    let too_big = WriterConfig::new(&path)
        .producers(2)
        .memory_budget_bytes(64 << 20)
        .chunk_bytes(Some(1 << 40));
    let refused = runtime(Backend::Auto).block_on(ParallelWriter::new(too_big));
    let err = refused.err().expect("a 1 TiB chunk within a 64 MiB budget");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("memory budget"), "{err}");
    assert!(!path.exists(), "nothing is created");
    let lines: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let fits = WriterConfig::new(&path)
        .producers(2)
        .ordered(true)
        .memory_budget_bytes(64 << 20)
        .chunk_bytes(Some(16 << 20));
    let report = write_all(&runtime(Backend::Auto), fits, &[lines.clone(), Vec::new()]);
    assert_eq!(report.chunk_bytes, 16 << 20);
    let mut want = lines.join(&b'\n');
    want.push(b'\n');
    assert_eq!(std::fs::read(&path).unwrap(), want);
}
