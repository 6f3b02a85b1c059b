//! Unit tests of the log capture.
use super::*;
use crate::testdir::TempDir;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, UNIX_EPOCH};

/// 2025-11-22T04:40:01.123Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_763_786_401_123)
}

const TS: &str = "2025-11-22T04:40:01.123Z";

fn at_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// The file's lines in the format written with time `TS`.
fn lines(items: &[(&str, &str)]) -> String {
    items
        .iter()
        .map(|(label, text)| format!("{TS} {label} {text}\n"))
        .collect()
}

fn open(dir: &TempDir, max_size: u64, max_files: u32) -> AppLog {
    AppLog::open(&dir.0, "app", max_size, max_files).unwrap()
}

#[test]
fn open_creates_the_directory_and_a_0640_file() {
    let tmp = TempDir::new("logs", "open");
    let dir = tmp.0.join("a/b");
    let log = AppLog::open(&dir, "web", 1000, 3).unwrap();
    assert_eq!(log.path(), dir.join("web.log"));
    let mode = fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "mode {mode:o}");
    for bad in ["", "a/b", "..", "."] {
        let err = AppLog::open(&dir, bad, 1000, 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
    }
}

#[test]
fn appends_to_an_existing_file() {
    let tmp = TempDir::new("logs", "append");
    fs::write(tmp.0.join("app.log"), "old\n").unwrap();
    let mut log = open(&tmp, 1000, 3);
    log.feed(Stream::Stdout, b"new\n", t0()).unwrap();
    assert_eq!(
        read(log.path()),
        format!("old\n{}", lines(&[("stdout", "new")]))
    );
}

#[test]
fn splits_lines_across_feeds() {
    let tmp = TempDir::new("logs", "split");
    let mut log = open(&tmp, 1 << 20, 3);
    for chunk in ["hel", "lo\nwor", "ld\n\nlast", " one"] {
        log.feed(Stream::Stdout, chunk.as_bytes(), t0()).unwrap();
    }
    assert_eq!(
        read(log.path()),
        lines(&[("stdout", "hello"), ("stdout", "world"), ("stdout", "")])
    );
    log.flush_partial(t0()).unwrap();
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", "hello"),
            ("stdout", "world"),
            ("stdout", ""),
            ("stdout", "last one"),
        ])
    );
}

#[test]
fn stamps_each_line_with_the_time_it_was_completed() {
    let tmp = TempDir::new("logs", "time");
    let mut log = open(&tmp, 1 << 20, 3);
    log.feed(Stream::Stdout, b"a", at_ms(0)).unwrap();
    log.feed(Stream::Stdout, b"b\nc", at_ms(1_500)).unwrap();
    log.feed(Stream::Stdout, b"\n", at_ms(61_000)).unwrap();
    assert_eq!(
        read(log.path()),
        "1970-01-01T00:00:01.500Z stdout ab\n1970-01-01T00:01:01.000Z stdout c\n"
    );
}

#[test]
fn keeps_the_streams_apart() {
    let tmp = TempDir::new("logs", "streams");
    let mut log = open(&tmp, 1 << 20, 3);
    log.feed(Stream::Stdout, b"out 1\nout", t0()).unwrap();
    log.feed(Stream::Stderr, b"err 1\nerr", t0()).unwrap();
    log.feed(Stream::Stdout, b" 2\n", t0()).unwrap();
    log.feed(Stream::Stderr, b" 2\nerr 3", t0()).unwrap();
    log.feed(Stream::Stdout, b"out 3", t0()).unwrap();
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", "out 1"),
            ("stderr", "err 1"),
            ("stdout", "out 2"),
            ("stderr", "err 2"),
        ])
    );
    log.flush_partial(t0()).unwrap();
    log.flush_partial(t0()).unwrap(); // nothing left the second time
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", "out 1"),
            ("stderr", "err 1"),
            ("stdout", "out 2"),
            ("stderr", "err 2"),
            ("stdout", "out 3"),
            ("stderr", "err 3"),
        ])
    );
}

#[test]
fn drops_a_carriage_return_at_the_end_of_a_line_only() {
    let tmp = TempDir::new("logs", "cr");
    let mut log = open(&tmp, 1 << 20, 3);
    log.feed(Stream::Stdout, b"dos\r\nsplit\r", t0()).unwrap();
    log.feed(Stream::Stdout, b"\nmid\rdle\n\r\n", t0()).unwrap();
    log.feed(Stream::Stderr, b"at eof\r", t0()).unwrap();
    log.flush_partial(t0()).unwrap();
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", "dos"),
            ("stdout", "split"),
            ("stdout", "mid\\x0ddle"),
            ("stdout", ""),
            ("stderr", "at eof"),
        ])
    );
}

#[test]
fn replaces_invalid_utf8() {
    let tmp = TempDir::new("logs", "utf8");
    let mut log = open(&tmp, 1 << 20, 3);
    log.feed(Stream::Stdout, b"bad \xff\xfe end\n", t0())
        .unwrap();
    // A character split between two reads is joined again.
    log.feed(Stream::Stdout, b"caf\xc3", t0()).unwrap();
    log.feed(Stream::Stdout, b"\xa9\n", t0()).unwrap();
    assert_eq!(
        read(log.path()),
        lines(&[("stdout", "bad \u{fffd}\u{fffd} end"), ("stdout", "café")])
    );
    assert_eq!(log.tail(1), [format!("{TS} stdout café")]);
}

#[test]
fn cuts_overlong_lines_and_drops_their_rest() {
    let tmp = TempDir::new("logs", "cut");
    let mut log = open(&tmp, 1 << 24, 3);
    let exact = "e".repeat(MAX_LINE);
    let over = "o".repeat(MAX_LINE);
    // Exactly MAX_LINE, also with a \r: whole.
    log.feed(
        Stream::Stdout,
        format!("{exact}\n{exact}\r\n").as_bytes(),
        t0(),
    )
    .unwrap();
    // One byte over, in one read.
    log.feed(Stream::Stdout, format!("{over}x\n").as_bytes(), t0())
        .unwrap();
    // Far over, across reads: the rest is dropped up to the newline.
    let long = "l".repeat(3000);
    log.feed(Stream::Stdout, long.as_bytes(), t0()).unwrap();
    log.feed(Stream::Stdout, long.as_bytes(), t0()).unwrap();
    log.feed(Stream::Stdout, long.as_bytes(), t0()).unwrap();
    log.feed(Stream::Stdout, b"dropped\nnext\n", t0()).unwrap();
    // MAX_LINE + 1 bytes ending in \r, then more than a newline: cut.
    log.feed(Stream::Stdout, format!("{over}\r").as_bytes(), t0())
        .unwrap();
    log.feed(Stream::Stdout, b"y\n", t0()).unwrap();
    // A cut that would split a character keeps it out whole.
    let wide = format!("{}é and more\n", "w".repeat(MAX_LINE - 1));
    log.feed(Stream::Stderr, wide.as_bytes(), t0()).unwrap();
    // An overlong partial line at end-of-file.
    log.feed(Stream::Stderr, format!("{over}zz").as_bytes(), t0())
        .unwrap();
    log.flush_partial(t0()).unwrap();

    let cut = |s: &str| format!("{s}{CUT_MARK}");
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", &exact),
            ("stdout", &exact),
            ("stdout", &cut(&over)),
            ("stdout", &cut(&"l".repeat(MAX_LINE))),
            ("stdout", "next"),
            ("stdout", &cut(&over)),
            ("stderr", &cut(&"w".repeat(MAX_LINE - 1))),
            ("stderr", &cut(&over)),
        ])
    );
}

#[test]
fn writes_berth_events() {
    let tmp = TempDir::new("logs", "event");
    let mut log = open(&tmp, 1 << 20, 3);
    log.feed(Stream::Stdout, b"partial", t0()).unwrap();
    log.event("restart 3 in 800ms", t0()).unwrap();
    log.event("two\nlines\r", t0()).unwrap();
    log.feed(Stream::Stdout, b" line\n", t0()).unwrap();
    let want = [
        ("berth", "restart 3 in 800ms"),
        ("berth", "two lines "),
        ("stdout", "partial line"),
    ];
    assert_eq!(read(log.path()), lines(&want));
    assert_eq!(
        log.tail(10),
        want.map(|(label, text)| format!("{TS} {label} {text}"))
    );
}

/// Each line is `TS stdout lineN\n`: 38 bytes.
fn line_n(n: u32) -> String {
    format!("line{n}")
}

fn feed_lines(log: &mut AppLog, range: std::ops::RangeInclusive<u32>) {
    for n in range {
        log.feed(Stream::Stdout, format!("{}\n", line_n(n)).as_bytes(), t0())
            .unwrap();
    }
}

fn numbered_files(tmp: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn content(tmp: &TempDir, name: &str) -> String {
    read(&tmp.0.join(name))
}

fn stdout_lines(range: std::ops::RangeInclusive<u32>) -> String {
    range
        .map(|n| format!("{TS} stdout {}\n", line_n(n)))
        .collect()
}

#[test]
fn rotates_at_the_size() {
    assert_eq!(stdout_lines(1..=1).len(), 38);
    let tmp = TempDir::new("logs", "rotate");
    // Two lines fit exactly (76 bytes); a third would not.
    let mut log = open(&tmp, 76, 3);
    feed_lines(&mut log, 1..=2);
    assert_eq!(numbered_files(&tmp), ["app.log"]);
    feed_lines(&mut log, 3..=3);
    assert_eq!(numbered_files(&tmp), ["app.log", "app.log.000001"]);
    assert_eq!(content(&tmp, "app.log.000001"), stdout_lines(1..=2));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(3..=3));
    feed_lines(&mut log, 4..=5);
    assert_eq!(
        numbered_files(&tmp),
        ["app.log", "app.log.000001", "app.log.000002"]
    );
    assert_eq!(content(&tmp, "app.log.000001"), stdout_lines(1..=2));
    assert_eq!(content(&tmp, "app.log.000002"), stdout_lines(3..=4));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(5..=5));
    assert_eq!(
        log.rotated(),
        [tmp.0.join("app.log.000001"), tmp.0.join("app.log.000002")]
    );
}

#[test]
fn keeps_at_most_max_files() {
    let tmp = TempDir::new("logs", "max-files");
    let mut log = open(&tmp, 76, 3);
    feed_lines(&mut log, 1..=9);
    // Rotations 1 to 4; the two newest numbered files are kept.
    assert_eq!(
        numbered_files(&tmp),
        ["app.log", "app.log.000003", "app.log.000004"]
    );
    assert_eq!(content(&tmp, "app.log.000003"), stdout_lines(5..=6));
    assert_eq!(content(&tmp, "app.log.000004"), stdout_lines(7..=8));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(9..=9));
    // Read in name order, the files are the end of the output in order.
    let all: String = numbered_files(&tmp)
        .iter()
        .skip(1)
        .chain(["app.log".to_owned()].iter())
        .map(|name| content(&tmp, name))
        .collect();
    assert_eq!(all, stdout_lines(5..=9));
    // The ring still has them all.
    assert_eq!(log.tail(9).len(), 9);
}

#[test]
fn a_hundred_files_rotate_in_one_rename_and_one_removal() {
    let tmp = TempDir::new("logs", "hundred");
    // Each line rotates: a full set of 99 numbered files, then more rotations. Were
    // every kept file renamed at each rotation, the inode of the oldest would change.
    let mut log = open(&tmp, 38, 100);
    feed_lines(&mut log, 1..=100);
    assert_eq!(numbered_files(&tmp).len(), 100);
    let ino = |name: &str| {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(tmp.0.join(name)).unwrap().ino()
    };
    let kept_ino = ino("app.log.000050");
    feed_lines(&mut log, 101..=140);
    let names = numbered_files(&tmp);
    assert_eq!(names.len(), 100);
    assert_eq!(names[1], "app.log.000041");
    assert_eq!(names[99], "app.log.000139");
    assert_eq!(ino("app.log.000050"), kept_ino, "a kept file was not moved");
    assert_eq!(content(&tmp, "app.log.000050"), stdout_lines(50..=50));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(140..=140));
}

#[test]
fn new_limits_apply_to_an_open_log() {
    let tmp = TempDir::new("logs", "set-limits");
    let mut log = open(&tmp, 76, 4);
    feed_lines(&mut log, 1..=7);
    assert_eq!(
        numbered_files(&tmp),
        [
            "app.log",
            "app.log.000001",
            "app.log.000002",
            "app.log.000003"
        ]
    );
    // Fewer files: the oldest go at once. A smaller size: the next line rotates.
    log.set_limits(38, 2).unwrap();
    assert_eq!(numbered_files(&tmp), ["app.log", "app.log.000003"]);
    feed_lines(&mut log, 8..=8);
    assert_eq!(numbered_files(&tmp), ["app.log", "app.log.000004"]);
    assert_eq!(content(&tmp, "app.log.000004"), stdout_lines(7..=7));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(8..=8));
    // More files and a larger size: kept from the next rotation on.
    log.set_limits(76, 3).unwrap();
    feed_lines(&mut log, 9..=10);
    assert_eq!(
        numbered_files(&tmp),
        ["app.log", "app.log.000004", "app.log.000005"]
    );
    assert_eq!(content(&tmp, "app.log.000005"), stdout_lines(8..=9));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(10..=10));
}

#[test]
fn one_file_starts_over() {
    let tmp = TempDir::new("logs", "one-file");
    fs::write(tmp.0.join("app.log.000001"), "left from max_files: 2").unwrap();
    let mut log = open(&tmp, 76, 1);
    assert_eq!(numbered_files(&tmp), ["app.log"]);
    feed_lines(&mut log, 1..=5);
    assert_eq!(numbered_files(&tmp), ["app.log"]);
    assert_eq!(content(&tmp, "app.log"), stdout_lines(5..=5));
}

#[test]
fn rotation_counts_the_size_found_at_open_and_renames_the_old_naming() {
    let tmp = TempDir::new("logs", "reopen");
    fs::write(tmp.0.join("app.log"), "x".repeat(50)).unwrap();
    // The old naming (.1 newest), from a time when max_files was 5; and another
    // app's file, left alone.
    for name in [
        "app.log.1",
        "app.log.2",
        "app.log.3",
        "app.log.4",
        "other.log.1",
    ] {
        fs::write(tmp.0.join(name), name).unwrap();
    }
    let mut log = open(&tmp, 76, 3);
    assert_eq!(
        numbered_files(&tmp),
        ["app.log", "app.log.000001", "app.log.000002", "other.log.1"]
    );
    assert_eq!(content(&tmp, "app.log.000001"), "app.log.2");
    assert_eq!(content(&tmp, "app.log.000002"), "app.log.1");
    feed_lines(&mut log, 1..=1); // 50 + 38 > 76
    assert_eq!(
        numbered_files(&tmp),
        ["app.log", "app.log.000002", "app.log.000003", "other.log.1"]
    );
    assert_eq!(content(&tmp, "app.log.000003"), "x".repeat(50));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(1..=1));
    assert_eq!(content(&tmp, "other.log.1"), "other.log.1");
}

#[test]
fn a_failed_rotation_loses_no_line() {
    let tmp = TempDir::new("logs", "rotate-fails");
    let mut log = open(&tmp, 76, 3);
    // A non-empty directory where app.log.000001 should go: the rename fails.
    fs::create_dir_all(tmp.0.join("app.log.000001/x")).unwrap();
    feed_lines(&mut log, 1..=2);
    let err = log
        .feed(Stream::Stdout, format!("{}\n", line_n(3)).as_bytes(), t0())
        .unwrap_err();
    assert!(err.to_string().starts_with("rename "), "{err}");
    assert_eq!(content(&tmp, "app.log"), stdout_lines(1..=3));
    // Once the way is clear, the next line rotates.
    fs::remove_dir_all(tmp.0.join("app.log.000001")).unwrap();
    feed_lines(&mut log, 4..=4);
    assert_eq!(content(&tmp, "app.log.000001"), stdout_lines(1..=3));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(4..=4));
}

#[test]
fn a_line_larger_than_max_size_gets_a_file_of_its_own() {
    let tmp = TempDir::new("logs", "huge-line");
    let mut log = open(&tmp, 10, 2);
    feed_lines(&mut log, 1..=2);
    assert_eq!(content(&tmp, "app.log.000001"), stdout_lines(1..=1));
    assert_eq!(content(&tmp, "app.log"), stdout_lines(2..=2));
}

#[test]
fn tail_returns_the_last_lines_within_the_bound() {
    let tmp = TempDir::new("logs", "tail");
    let mut log = open(&tmp, 1 << 20, 3);
    assert!(log.tail(5).is_empty());
    feed_lines(&mut log, 1..=100);
    let all = log.tail(usize::MAX);
    assert_eq!(all.len(), RING_LINES);
    let first = 100 - RING_LINES as u32 + 1;
    let want: Vec<String> = (first..=100)
        .map(|n| format!("{TS} stdout {}", line_n(n)))
        .collect();
    assert_eq!(all, want);
    assert_eq!(log.tail(2), want[RING_LINES - 2..]);
    assert!(log.tail(0).is_empty());

    // Long lines are truncated in the ring only, on a character boundary.
    let long = format!("{}é{}", "a".repeat(RING_LINE_BYTES - 33), "b".repeat(500));
    log.feed(Stream::Stderr, format!("{long}\n").as_bytes(), t0())
        .unwrap();
    let entry = log.tail(1).pop().unwrap();
    let head = format!("{TS} stderr {}", "a".repeat(RING_LINE_BYTES - 33));
    assert_eq!(head.len(), RING_LINE_BYTES - 1);
    assert_eq!(entry, head);
    assert!(read(log.path()).ends_with(&format!("{TS} stderr {long}\n")));
}

#[test]
fn utf8_floor_keeps_whole_characters() {
    assert_eq!(utf8_floor(b""), b"");
    assert_eq!(utf8_floor(b"ab"), b"ab");
    assert_eq!(utf8_floor("aé".as_bytes()), "aé".as_bytes());
    assert_eq!(utf8_floor(b"a\xc3"), b"a");
    assert_eq!(utf8_floor(b"a\xe2\x82"), b"a");
    assert_eq!(utf8_floor("a€".as_bytes()), "a€".as_bytes());
    assert_eq!(utf8_floor(b"a\xf0\x9f\x98"), b"a");
    assert_eq!(utf8_floor("a😀".as_bytes()), "a😀".as_bytes());
    // Stray continuation bytes are not a character to keep whole.
    assert_eq!(utf8_floor(b"a\x80\x80\x80"), b"a\x80\x80\x80");
}

/// A writer whose bytes the test reads back (the console of `echo_to`), one entry per
/// write call.
#[derive(Clone, Default)]
struct Writes(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .borrow_mut()
            .push(String::from_utf8(buf.to_vec()).unwrap());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn echo_copies_the_apps_lines_to_the_console_one_write_each() {
    let dir = TempDir::new("logs", "echo");
    let mut log = open(&dir, 1 << 20, 2);
    let console = Writes::default();
    log.echo_to("web", Box::new(console.clone()));
    log.feed(Stream::Stdout, b"listening on :8080\nhal", t0())
        .unwrap();
    log.event("restart 1 in 100ms", t0()).unwrap();
    log.feed(Stream::Stderr, b"warn\r\n", t0()).unwrap();
    log.flush_partial(t0()).unwrap();
    // berth's own lines are in the file, not echoed: berth logs them itself.
    assert_eq!(
        *console.0.borrow(),
        [
            format!("{TS} web stdout listening on :8080\n"),
            format!("{TS} web stderr warn\n"),
            format!("{TS} web stdout hal\n"),
        ]
    );
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", "listening on :8080"),
            ("berth", "restart 1 in 100ms"),
            ("stderr", "warn"),
            ("stdout", "hal"),
        ])
    );
}

#[test]
fn control_characters_reach_no_file_console_or_tail_raw() {
    let tmp = TempDir::new("logs", "escape");
    let mut log = open(&tmp, 1 << 20, 2);
    let console = Writes::default();
    log.echo_to("web", Box::new(console.clone()));
    log.feed(
        Stream::Stdout,
        b"\x1b[2J\x1b[H\rberth: all apps stopped\x00\x7f\ttab \xc3\xa9\r\n",
        t0(),
    )
    .unwrap();
    log.feed(Stream::Stderr, "csi \u{9b}31m\n".as_bytes(), t0())
        .unwrap();
    log.event("exec probe said \x1b[31mred\r\n", t0()).unwrap();
    let out = "\\x1b[2J\\x1b[H\\x0dberth: all apps stopped\\x00\\x7f\ttab \u{e9}";
    let err = "csi \\xc2\\x9b31m";
    assert_eq!(
        read(log.path()),
        lines(&[
            ("stdout", out),
            ("stderr", err),
            ("berth", "exec probe said \\x1b[31mred  "),
        ])
    );
    assert_eq!(
        *console.0.borrow(),
        [
            format!("{TS} web stdout {out}\n"),
            format!("{TS} web stderr {err}\n"),
        ]
    );
    assert_eq!(
        log.tail(3),
        [
            format!("{TS} stdout {out}"),
            format!("{TS} stderr {err}"),
            format!("{TS} berth exec probe said \\x1b[31mred  "),
        ]
    );
}
