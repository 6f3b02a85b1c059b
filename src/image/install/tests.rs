//! The job's side of the pipe (lines cut anywhere, end of file, the wait status), the
//! errors made again from their text, and the report throttle. No root, no child: the
//! real child is tested in tests/image_store.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::io::Write as _;

use super::*;

/// A job reading a pipe this test writes into, for a child that does not exist.
fn new_job() -> (InstallJob, File) {
    let (read, write) = sys::fd::pipe().unwrap();
    sys::fd::nonblocking(read.as_fd()).unwrap();
    let job = InstallJob {
        pid: 0,
        pipe: File::from(read),
        partial: Vec::new(),
        eof: false,
        result: None,
    };
    (job, File::from(write))
}

const EXITED_0: i32 = 0;

#[test]
fn reports_arrive_whole_however_the_bytes_are_cut() {
    let text = b"progress 1 4096\nprogress 4096 4096\ninstalled oci-layout\n";
    for cut in 1..text.len() {
        let (mut job, mut w) = new_job();
        let (a, b) = text.split_at(cut);
        w.write_all(a).unwrap();
        let mut reports = job.read_reports();
        w.write_all(b).unwrap();
        drop(w);
        reports.extend(job.read_reports());
        assert_eq!(
            reports,
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
            ],
            "cut at {cut}"
        );
        assert!(job.at_eof());
        assert_eq!(
            job.finish(EXITED_0).unwrap(),
            Done::Installed {
                format: "oci-layout".into()
            }
        );
    }
}

#[test]
fn an_error_reads_as_it_did_in_the_child() {
    let e = ImageError::DigestMismatch {
        path: "/img/a.tar".into(),
        expected: "aa".into(),
        actual: "bb".into(),
    };
    let (mut job, mut w) = new_job();
    w.write_all(result_line(&Err(e)).as_bytes()).unwrap();
    drop(w);
    assert_eq!(job.read_reports(), [Report::Finished]);
    let again = job.finish(EXITED_0).unwrap_err();
    let e = ImageError::DigestMismatch {
        path: "/img/a.tar".into(),
        expected: "aa".into(),
        actual: "bb".into(),
    };
    assert_eq!(again.to_string(), e.to_string());
    let (mut job, mut w) = new_job();
    w.write_all(b"already\n").unwrap();
    drop(w);
    assert_eq!(job.read_reports(), [Report::Finished]);
    assert_eq!(job.finish(EXITED_0).unwrap(), Done::Already);
}

#[test]
fn no_result_says_how_the_child_ended() {
    let (job, w) = new_job();
    drop(w);
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
    w.write_all(b"hello there\n").unwrap();
    drop(w);
    assert_eq!(job.read_reports(), [Report::Finished]);
    assert_eq!(
        job.finish(EXITED_0).unwrap_err().to_string(),
        "the install process failed: an unreadable report: \"hello there\""
    );
    // A line that never ends (written in parts: a pipe holds 64 KiB).
    let (mut job, mut w) = new_job();
    w.write_all(&vec![b'x'; MAX_LINE / 2]).unwrap();
    assert_eq!(job.read_reports(), []);
    w.write_all(&vec![b'x'; MAX_LINE / 2 + 1]).unwrap();
    drop(w);
    assert_eq!(job.read_reports(), [Report::Finished]);
    assert_eq!(
        job.finish(EXITED_0).unwrap_err().to_string(),
        format!("the install process failed: a report longer than {MAX_LINE} bytes")
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
