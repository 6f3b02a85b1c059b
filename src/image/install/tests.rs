//! The job's side of the pipe (frames cut anywhere, end of file, the wait status),
//! the errors made again from the wire, and the report throttle. No root, no child:
//! the real child is tested in tests/image_store.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use super::*;
use crate::image::extract::Report as ExtractReport;
use crate::image::{Format, ImageDefaults};

/// A job reading a pipe this test writes into, for a child that does not exist.
fn new_job() -> (InstallJob, File) {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    set_nonblocking(read.as_fd()).unwrap();
    let job = InstallJob {
        pid: 0,
        pipe: File::from(read),
        partial: Vec::new(),
        eof: false,
        result: None,
        rootfs: PathBuf::from("/store/abc/rootfs"),
    };
    (job, File::from(write))
}

fn unpacked() -> Unpacked {
    Unpacked {
        format: Format::OciLayout,
        defaults: ImageDefaults {
            cmd: vec!["/bin/sh".into()],
            ..ImageDefaults::default()
        },
        report: ExtractReport {
            entries: 3,
            bytes: 10,
            skipped_devices: 1,
            cleared_setuid: 0,
        },
        file_size: 4096,
    }
}

const EXITED_0: i32 = 0;

#[test]
fn reports_arrive_whole_however_the_bytes_are_cut() {
    let (mut job, mut w) = new_job();
    let mut bytes = frame(&Message::Progress(Progress {
        read: 1,
        total: 4096,
    }));
    bytes.extend(frame(&Message::Progress(Progress {
        read: 4096,
        total: 4096,
    })));
    bytes.extend(frame(&Message::Installed(Box::new(unpacked()))));
    let mut seen = Vec::new();
    // One byte at a time: nothing is reported until a frame is complete.
    for b in &bytes {
        w.write_all(std::slice::from_ref(b)).unwrap();
        seen.extend(job.read_reports());
    }
    assert_eq!(
        seen,
        [
            Report::Progress(Progress {
                read: 1,
                total: 4096
            }),
            Report::Progress(Progress {
                read: 4096,
                total: 4096
            }),
            Report::Finished
        ]
    );
    assert!(!job.at_eof());
    drop(w);
    assert_eq!(job.read_reports(), []);
    assert!(job.at_eof());
    match job.finish(EXITED_0).unwrap() {
        Installed::Fresh(rootfs, got) => {
            assert_eq!(rootfs, Path::new("/store/abc/rootfs"));
            assert_eq!(*got, unpacked());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_error_reads_as_it_did_in_the_child() {
    let errors = [
        ImageError::DigestMismatch {
            path: "/img/a.tar".into(),
            expected: "aa".into(),
            actual: "bb".into(),
        },
        ImageError::Io {
            action: "open image".into(),
            path: "/img/gone.tar".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        },
        ImageError::Corrupt {
            last: Some("etc/passwd".into()),
            offset: 1536,
            source: io::Error::new(io::ErrorKind::InvalidData, "bad\nheader"),
        },
        ImageError::TooLarge {
            limit: Size::from_bytes(1 << 20),
        },
        ImageError::NotRegular {
            path: "/dev/zero".into(),
            kind: "a character device",
        },
        ImageError::NoPlatform {
            wanted: "linux/arm64".into(),
            available: vec!["linux/amd64".into()],
        },
    ];
    for e in errors {
        let (mut job, mut w) = new_job();
        w.write_all(&frame(&Message::Failed(WireError::from(&e))))
            .unwrap();
        drop(w);
        assert_eq!(job.read_reports(), [Report::Finished]);
        let again = job.finish(EXITED_0).unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
        assert_eq!(
            std::mem::discriminant(&again),
            std::mem::discriminant(&e),
            "{e}"
        );
    }
}

#[test]
fn no_result_says_how_the_child_ended() {
    let (job, w) = new_job();
    drop(w);
    // As waitpid reports a SIGKILL, and an exit with status 125.
    assert_eq!(
        job.finish(libc::SIGKILL).unwrap_err().to_string(),
        "the install process was killed by signal 9"
    );
    let (job, w) = new_job();
    drop(w);
    assert_eq!(
        job.finish(125 << 8).unwrap_err().to_string(),
        "the install process failed: it exited with status 125 and no result"
    );
    let (mut job, mut w) = new_job();
    w.write_all(&[5, 0, 0, 0, b'{', b'{', b'{', b'{', b'{'])
        .unwrap();
    drop(w);
    assert_eq!(job.read_reports(), [Report::Finished]);
    let e = job.finish(EXITED_0).unwrap_err().to_string();
    assert!(
        e.starts_with("the install process failed: an unreadable report: "),
        "{e}"
    );
    let (mut job, mut w) = new_job();
    w.write_all(&u32::MAX.to_le_bytes()).unwrap();
    drop(w);
    assert_eq!(job.read_reports(), [Report::Finished]);
    assert_eq!(
        job.finish(EXITED_0).unwrap_err().to_string(),
        "the install process failed: a report of 4294967295 bytes, more than 1048576"
    );
}

#[test]
fn progress_is_reported_at_most_once_a_second() {
    let start = Instant::now();
    let mut t = Throttle { last: start };
    let at = |ms| start + Duration::from_millis(ms);
    let due: Vec<u64> = [0, 500, 999, 1000, 1500, 1999, 2000, 2001, 3500]
        .into_iter()
        .filter(|&ms| t.due(at(ms)))
        .collect();
    assert_eq!(due, [1000, 2000, 3500]);
}

#[test]
fn progress_reads_in_bytes_and_percent() {
    let p = Progress {
        read: 52_428_800,
        total: 874_512_384,
    };
    assert_eq!(p.to_string(), "52428800 of 874512384 bytes (5%)");
    assert_eq!(Progress { read: 0, total: 0 }.percent(), 100);
    assert_eq!(Progress { read: 9, total: 3 }.percent(), 100);
}

#[test]
fn the_child_arguments_round_trip() {
    let args: Vec<OsString> = [
        "41",
        "/s/images/sha256",
        "/img/a.tar",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "1024",
        "7",
        "1",
        "0",
        "linux",
        "arm",
        "v7",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let a = ChildArgs::parse(&args).unwrap();
    assert_eq!(a.parent, 41);
    assert_eq!(a.limits.max_size.bytes(), 1024);
    assert_eq!(
        (a.limits.allow_devices, a.limits.allow_setuid),
        (true, false)
    );
    assert_eq!(a.platform.variant.as_deref(), Some("v7"));
    assert!(ChildArgs::parse(&args[1..]).is_none());
    let mut bad = args.clone();
    bad[6] = "yes".into();
    assert!(ChildArgs::parse(&bad).is_none());
}
