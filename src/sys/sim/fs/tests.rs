use super::*;

const BS: u64 = 4096;

fn options() -> SimOptions {
    SimOptions::new(1)
}

fn core_with(crash: CrashModel) -> SimCore {
    let mut o = options();
    o.crash = crash;
    SimCore::new(o)
}

/// Create `path` (parent must exist) and return its inode.
fn create(fs: &mut SimFs, path: &str) -> InodeId {
    let (dir, name) = fs.plan_create(ROOT, path.as_bytes()).expect("plan_create");
    fs.create_file(dir, &name, 0o644)
}

fn mkdir(fs: &mut SimFs, path: &str) -> InodeId {
    let (dir, name) = fs.plan_create(ROOT, path.as_bytes()).expect("plan_create");
    fs.mkdir(dir, &name, 0o755)
}

fn dir_of(fs: &SimFs, path: &str) -> InodeId {
    fs.lookup(ROOT, path.as_bytes()).expect("lookup")
}

fn rename(fs: &mut SimFs, from: &str, to: &str) -> SysResult<()> {
    if let Some(plan) = fs.plan_rename(from.as_bytes(), to.as_bytes())? {
        fs.rename(plan);
    }
    Ok(())
}

fn read(fs: &SimFs, path: &str) -> Option<Vec<u8>> {
    fs.read_file(path.as_bytes())
}

#[test]
fn path_errors() {
    let mut fs = SimFs::new(&options());
    let d = mkdir(&mut fs, "/d");
    create(&mut fs, "/d/f");
    assert_eq!(fs.lookup(ROOT, b"/d/f"), fs.lookup(d, b"f"));
    assert_eq!(fs.lookup(ROOT, b"/d/../d/./f"), fs.lookup(d, b"f"));
    assert_eq!(fs.lookup(ROOT, b"/.."), Ok(ROOT));
    assert_eq!(fs.lookup(ROOT, b"d/f"), fs.lookup(d, b"f"));
    assert_eq!(fs.lookup(ROOT, b""), Err(Errno::ENOENT));
    assert_eq!(fs.lookup(ROOT, b"/missing/f"), Err(Errno::ENOENT));
    assert_eq!(fs.lookup(ROOT, b"/d/f/x"), Err(Errno::ENOTDIR));
    assert_eq!(fs.lookup(ROOT, b"/d/f/"), Err(Errno::ENOTDIR));
    assert_eq!(fs.lookup(ROOT, b"/d/f/.."), Err(Errno::ENOTDIR));
    let long = format!("/d/{}", "x".repeat(256));
    assert_eq!(fs.lookup(ROOT, long.as_bytes()), Err(Errno::ENAMETOOLONG));
    assert_eq!(
        fs.plan_create(ROOT, long.as_bytes()).map(|_| ()),
        Err(Errno::ENAMETOOLONG)
    );
    let ok = format!("/d/{}", "x".repeat(255));
    assert!(fs.plan_create(ROOT, ok.as_bytes()).is_ok());
    let huge = "/a".repeat(PATH_MAX / 2);
    assert_eq!(fs.lookup(ROOT, huge.as_bytes()), Err(Errno::ENAMETOOLONG));
    assert_eq!(
        fs.plan_create(ROOT, b"/d/f").map(|_| ()),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        fs.plan_create(ROOT, b"/d/..").map(|_| ()),
        Err(Errno::EEXIST)
    );
    assert_eq!(fs.plan_unlink(ROOT, b"/d").map(|_| ()), Err(Errno::EISDIR));
    assert_eq!(
        fs.plan_unlink(ROOT, b"/d/.").map(|_| ()),
        Err(Errno::EISDIR)
    );
    assert_eq!(
        fs.plan_unlink(ROOT, b"/d/f/").map(|_| ()),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        fs.plan_unlink(ROOT, b"/d/g").map(|_| ()),
        Err(Errno::ENOENT)
    );
}

#[test]
fn rename_errors() {
    let mut fs = SimFs::new(&options());
    mkdir(&mut fs, "/a");
    mkdir(&mut fs, "/a/b");
    mkdir(&mut fs, "/e");
    create(&mut fs, "/f");
    create(&mut fs, "/a/b/g");
    assert_eq!(rename(&mut fs, "/a", "/a/b/c"), Err(Errno::EINVAL));
    assert_eq!(rename(&mut fs, "/a", "/a/x"), Err(Errno::EINVAL));
    assert_eq!(rename(&mut fs, "/e", "/a"), Err(Errno::ENOTEMPTY));
    assert_eq!(rename(&mut fs, "/a/b/g", "/a"), Err(Errno::ENOTEMPTY));
    assert_eq!(rename(&mut fs, "/f", "/e"), Err(Errno::EISDIR));
    assert_eq!(rename(&mut fs, "/e", "/f"), Err(Errno::ENOTDIR));
    assert_eq!(rename(&mut fs, "/f/", "/h"), Err(Errno::ENOTDIR));
    assert_eq!(rename(&mut fs, "/missing", "/h"), Err(Errno::ENOENT));
    assert_eq!(rename(&mut fs, "/f", "/missing/h"), Err(Errno::ENOENT));
    assert_eq!(rename(&mut fs, "/a/.", "/h"), Err(Errno::EBUSY));
    assert_eq!(rename(&mut fs, "/f", "/f"), Ok(()));
    // A directory may replace an empty one; a file replaces a file.
    assert_eq!(rename(&mut fs, "/a/b", "/e"), Ok(()));
    assert_eq!(fs.list_dir(b"/a"), Some(vec![]));
    assert_eq!(fs.lookup(ROOT, b"/e/.."), Ok(ROOT));
    create(&mut fs, "/h");
    assert_eq!(rename(&mut fs, "/f", "/h"), Ok(()));
    assert_eq!(
        fs.list_dir(b"/"),
        Some(vec!["a".into(), "e".into(), "h".into()])
    );
}

#[test]
fn sparse_files_count_only_written_blocks() {
    let mut fs = SimFs::new(&options());
    let f = create(&mut fs, "/f");
    fs.write(f, 3 * BS + 10, b"tail");
    let st = fs.stat(f).expect("stat");
    assert_eq!(st.size_bytes, 3 * BS + 14);
    assert_eq!(st.blocks_512, BS / 512);
    let mut buf = [7u8; 20];
    let n = fs.readable_len(f, 3 * BS, 20);
    assert_eq!(n, 14);
    fs.read(f, 3 * BS, &mut buf[..n]);
    assert_eq!(&buf[..14], b"\0\0\0\0\0\0\0\0\0\0tail");
    assert_eq!(buf[14], 7);
    fs.allocate(f, 0, 1, true);
    assert_eq!(fs.stat(f).map(|s| s.blocks_512), Some(2 * BS / 512));
    fs.punch(f, 3 * BS, BS);
    assert_eq!(
        fs.stat(f).map(|s| (s.size_bytes, s.blocks_512)),
        Some((3 * BS + 14, BS / 512))
    );
    fs.truncate(f, 5);
    fs.truncate(f, 100);
    assert_eq!(read(&fs, "/f"), Some(vec![0; 100]));
    assert_eq!(fs.statfs().blocks_available, (1 << 30) / BS - 1);
}

#[test]
fn truncate_zeroes_the_cut_tail() {
    let mut fs = SimFs::new(&options());
    let f = create(&mut fs, "/f");
    fs.write(f, 0, b"abcdef");
    fs.truncate(f, 2);
    fs.truncate(f, 6);
    assert_eq!(read(&fs, "/f"), Some(b"ab\0\0\0\0".to_vec()));
}

#[test]
fn capacity_cuts_a_write_then_fills_up() {
    let mut o = options();
    o.capacity_bytes = 2 * BS;
    let mut fs = SimFs::new(&o);
    let f = create(&mut fs, "/f");
    assert_eq!(fs.write_fit(f, 100, 3 * BS as usize), 2 * BS as usize - 100);
    fs.write(f, 100, &vec![1; 2 * BS as usize - 100]);
    assert_eq!(fs.write_fit(f, 2 * BS, 1), 0);
    // Rewriting allocated blocks needs no space.
    assert_eq!(fs.write_fit(f, 0, 2 * BS as usize), 2 * BS as usize);
    assert!(!fs.allocate_fits(f, 2 * BS, 1));
    // Unlinking a closed file gives its blocks back.
    let plan = fs.plan_unlink(ROOT, b"/f").expect("unlink");
    fs.unlink(plan);
    assert_eq!(fs.statfs().blocks_available, 2);
}

#[test]
fn open_unlinked_file_keeps_its_blocks_until_closed() {
    let mut fs = SimFs::new(&options());
    let f = create(&mut fs, "/f");
    fs.open_ref(f);
    fs.write(f, 0, b"x");
    let plan = fs.plan_unlink(ROOT, b"/f").expect("unlink");
    fs.unlink(plan);
    assert!(!fs.exists(b"/f"));
    assert_eq!(fs.readable_len(f, 0, 8), 1);
    assert_eq!(fs.statfs().blocks_available, (1 << 30) / BS - 1);
    fs.close_ref(f);
    assert_eq!(fs.statfs().blocks_available, (1 << 30) / BS);
    assert!(fs.stat(f).is_none(), "never durable: collected");
}

#[test]
fn xattr_namespaces() {
    let mut o = options();
    let fs = SimFs::new(&o);
    assert_eq!(fs.check_xattr_name(b"user.x"), Ok(()));
    assert_eq!(fs.check_xattr_name(b"lustre.lov"), Err(Errno::EOPNOTSUPP));
    assert_eq!(fs.check_xattr_name(b"bogus"), Err(Errno::EOPNOTSUPP));
    o.fs_magic = LUSTRE_MAGIC;
    let mut fs = SimFs::new(&o);
    assert_eq!(fs.check_xattr_name(b"lustre.lov"), Ok(()));
    let f = create(&mut fs, "/f");
    fs.set_xattr(f, b"lustre.lov", b"layout");
    assert_eq!(fs.xattr(f, b"lustre.lov"), Some(&b"layout"[..]));
    assert_eq!(fs.xattr(f, b"user.none"), None);
}

#[test]
fn fsynced_data_survives_but_the_name_needs_a_dir_sync() {
    let core = core_with(CrashModel::LoseUnsynced);
    let mut fs = SimFs::new(core.options());
    let f = create(&mut fs, "/f");
    fs.write(f, 0, b"data");
    fs.sync_file(f);
    fs.crash(&core);
    assert!(!fs.exists(b"/f"));
    let f = create(&mut fs, "/f");
    fs.write(f, 0, b"data");
    fs.sync_file(f);
    fs.sync_dir(ROOT);
    fs.crash(&core);
    assert_eq!(read(&fs, "/f"), Some(b"data".to_vec()));
    assert_eq!(core.stats().crashes, 2);
}

#[test]
fn unsynced_writes_are_lost() {
    let core = core_with(CrashModel::LoseUnsynced);
    let mut fs = SimFs::new(core.options());
    fs.write_file_durable(b"/d/f", b"old").expect("setup");
    let f = dir_of(&fs, "/d/f");
    fs.write(f, 0, b"new and longer");
    fs.truncate(f, 5);
    assert_eq!(read(&fs, "/d/f"), Some(b"new a".to_vec()));
    fs.crash(&core);
    assert_eq!(read(&fs, "/d/f"), Some(b"old".to_vec()));
    assert_eq!(fs.statfs().blocks_available, (1 << 30) / BS - 1);
}

#[test]
fn torn_crash_keeps_an_aligned_prefix() {
    let g = 512;
    let mut torn = 0;
    for seed in 0..40 {
        let mut o = SimOptions::new(seed);
        o.crash = CrashModel::Torn {
            granularity_bytes: g,
        };
        let core = SimCore::new(o);
        let mut fs = SimFs::new(core.options());
        fs.write_file_durable(b"/f", b"").expect("setup");
        let f = dir_of(&fs, "/f");
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8 + 1).collect();
        fs.write(f, 100, &data);
        fs.crash(&core);
        let got = read(&fs, "/f").expect("file");
        if got.is_empty() {
            continue;
        }
        let end = got.len() as u64;
        assert!(end == 3100 || end % g == 0, "cut at {end}");
        assert_eq!(&got[100..], &data[..got.len() - 100]);
        torn += u64::from(end != 3100);
        assert_eq!(core.stats().torn_writes, u64::from(end != 3100));
    }
    assert!(torn > 0, "some seed tears the write");
}

#[test]
fn failed_fsync_loses_earlier_writes_even_after_a_later_sync() {
    let core = core_with(CrashModel::LoseUnsynced);
    let mut fs = SimFs::new(core.options());
    fs.write_file_durable(b"/f", b"0000000000").expect("setup");
    let f = dir_of(&fs, "/f");
    fs.write(f, 0, b"AAAAAA");
    assert!(fs.drop_dirty(f), "fsync failed");
    assert_eq!(
        read(&fs, "/f"),
        Some(b"AAAAAA0000".to_vec()),
        "reads see it"
    );
    fs.write(f, 4, b"BBBB");
    fs.sync_file(f);
    assert_eq!(read(&fs, "/f"), Some(b"AAAABBBB00".to_vec()));
    fs.crash(&core);
    assert_eq!(read(&fs, "/f"), Some(b"0000BBBB00".to_vec()));
}

#[test]
fn dropped_writes_are_not_torn_back_in() {
    let mut o = options();
    o.crash = CrashModel::Torn {
        granularity_bytes: 512,
    };
    let core = SimCore::new(o);
    let mut fs = SimFs::new(core.options());
    fs.write_file_durable(b"/f", b"").expect("setup");
    let f = dir_of(&fs, "/f");
    fs.write(f, 0, &[1; 4096]);
    fs.drop_dirty(f);
    fs.crash(&core);
    assert_eq!(read(&fs, "/f"), Some(vec![]));
}

#[test]
fn rename_is_durable_only_after_the_dir_sync() {
    let core = core_with(CrashModel::LoseUnsynced);
    let mut fs = SimFs::new(core.options());
    fs.write_file_durable(b"/d/tmp", b"v2").expect("setup");
    fs.write_file_durable(b"/e/final", b"v1").expect("setup");
    rename(&mut fs, "/d/tmp", "/e/final").expect("rename");
    fs.crash(&core);
    assert_eq!(read(&fs, "/d/tmp"), Some(b"v2".to_vec()), "rename reverted");
    assert_eq!(read(&fs, "/e/final"), Some(b"v1".to_vec()));
    rename(&mut fs, "/d/tmp", "/e/final").expect("rename");
    fs.sync_dir(dir_of(&fs, "/e"));
    fs.sync_dir(dir_of(&fs, "/d"));
    fs.crash(&core);
    assert!(!fs.exists(b"/d/tmp"));
    assert_eq!(read(&fs, "/e/final"), Some(b"v2".to_vec()));
}

#[test]
fn rename_half_synced_shows_both_names_or_neither() {
    let core = core_with(CrashModel::LoseUnsynced);
    let mut fs = SimFs::new(core.options());
    fs.write_file_durable(b"/d/f", b"x").expect("setup");
    mkdir(&mut fs, "/e");
    fs.sync_dir(ROOT);
    rename(&mut fs, "/d/f", "/e/f").expect("rename");
    fs.sync_dir(dir_of(&fs, "/e"));
    fs.crash(&core);
    assert!(fs.exists(b"/d/f") && fs.exists(b"/e/f"));
    assert_eq!(fs.stat(dir_of(&fs, "/e/f")).map(|s| s.links), Some(2));
}

#[test]
fn unlink_reverts_without_a_dir_sync() {
    let core = core_with(CrashModel::LoseUnsynced);
    let mut fs = SimFs::new(core.options());
    fs.write_file_durable(b"/f", b"keep").expect("setup");
    let plan = fs.plan_unlink(ROOT, b"/f").expect("unlink");
    fs.unlink(plan);
    assert!(!fs.exists(b"/f"));
    fs.crash(&core);
    assert_eq!(read(&fs, "/f"), Some(b"keep".to_vec()));
    let plan = fs.plan_unlink(ROOT, b"/f").expect("unlink");
    fs.unlink(plan);
    fs.sync_dir(ROOT);
    let len_before = fs.inodes.len();
    fs.crash(&core);
    assert!(!fs.exists(b"/f"));
    assert_eq!(fs.inodes.len(), len_before);
    assert_eq!(fs.inodes.len(), 1, "only the root is left");
}

#[test]
fn inspection_helpers() {
    let mut fs = SimFs::new(&options());
    fs.write_file_durable(b"/a/b/c", b"hello").expect("write");
    fs.write_file_durable(b"a/b/c", b"hi").expect("rewrite");
    assert_eq!(read(&fs, "/a/b/c"), Some(b"hi".to_vec()));
    assert_eq!(fs.list_dir(b"/a"), Some(vec!["b".to_string()]));
    assert_eq!(fs.list_dir(b"/a/b/c"), None);
    assert_eq!(fs.write_file_durable(b"/a/b", b""), Err(Errno::EISDIR));
    assert_eq!(fs.write_file_durable(b"/a/b/c/d", b""), Err(Errno::ENOTDIR));
    assert!(fs.exists(b"/a/b") && !fs.exists(b"/a/x"));
}
