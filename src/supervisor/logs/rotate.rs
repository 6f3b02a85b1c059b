//! The numbered files of an app's log, and their rotation in constant work.
//!
//! ```text
//! web.log.000041    oldest kept
//! web.log.000042
//! web.log           being written
//! ```
//!
//! `<app>.log` is the file being written. A rotation renames it to `<app>.log.NNNNNN`,
//! the next number of a sequence (six digits, zero-padded), opens a fresh `<app>.log`,
//! and removes the oldest numbered file when more than `max_files - 1` are kept. So a
//! rotation is one rename, at most one removal and one open, however many files are
//! kept: an app that rotates often costs no more per rotation than one that rarely
//! does. Higher numbers are newer, and the names sort in the order the lines were
//! written: `ls` lists them oldest first (after `<app>.log` itself), and
//! `cat web.log.* web.log` prints the whole log in order.
//!
//! The sequence goes on from the highest number found in the directory when the log
//! is opened, so it survives restarts of berth. After 999999 it starts again at
//! 000001: the kept files are renumbered once, in order (at most 99 renames, once in
//! 999999 rotations), so the names never grow a seventh digit and still sort.
//!
//! Berth before this naming shifted every file up by one at each rotation
//! (`<app>.log.1` newest). Files named so (a number without leading zeros, not six
//! digits long) are taken as older than the numbered ones, the highest oldest, and
//! renamed into the sequence when the log is opened.
//!
//! Every name is reached through the directory's descriptor: a link planted in the
//! log directory is renamed or removed, never followed ([`Dir`]).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;

use nix::dir::Dir as DirStream;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::hostfs::Dir;

/// The digits of a file's number.
const DIGITS: usize = 6;
/// The last number of the sequence; the next rotation starts again at 1.
const LAST: u32 = 999_999;

/// The numbered files of one log.
#[derive(Debug)]
pub(super) struct Numbered {
    /// `<app>.log`: the file being written; the numbered ones are `<app>.log.NNNNNN`.
    base: String,
    /// The numbers of the files kept, oldest first. At most `keep` after a rotation
    /// (more only while a removal fails), so at most `MAX_FILES - 1` (manifest
    /// validation bounds `max_files`).
    kept: VecDeque<u32>,
    /// How many numbered files to keep: `max_files - 1`.
    keep: u32,
    /// The number the next rotation gives.
    next: u32,
    /// The last number before the sequence starts again ([`LAST`]; smaller in tests).
    last: u32,
}

/// What a name in the log directory is to the log `base`.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    /// `<base>.NNNNNN`: a file of the sequence.
    Numbered(u32),
    /// `<base>.N` (no leading zero, not six digits): a file of the old naming.
    Old(u64),
}

impl Numbered {
    /// Finds the files of the log `base` in `dir`: renames files of the old naming
    /// into the sequence and removes the oldest beyond `max_files - 1` (left from a
    /// time when `max_files` was larger). `max_files` counts the current file; 0 is
    /// taken as 1.
    pub(super) fn scan(dir: &Dir, base: &str, max_files: u32) -> io::Result<Numbered> {
        Numbered::scan_with(dir, base, max_files, LAST)
    }

    fn scan_with(dir: &Dir, base: &str, max_files: u32, last: u32) -> io::Result<Numbered> {
        let mut numbered = Vec::new();
        let mut old = Vec::new();
        for name in names(dir)? {
            match parse(base, &name) {
                Some(Name::Numbered(n)) => numbered.push(n),
                Some(Name::Old(n)) => old.push(n),
                None => {}
            }
        }
        numbered.sort_unstable();
        // Oldest first: the old naming's highest number is its oldest file.
        old.sort_unstable_by(|a, b| b.cmp(a));
        let mut files = Numbered {
            base: base.to_owned(),
            kept: VecDeque::new(),
            keep: max_files.max(1) - 1,
            next: numbered.last().map_or(1, |n| n.saturating_add(1)),
            last,
        };
        // The old files go first, removed first if there are too many.
        let excess = (old.len() + numbered.len()).saturating_sub(files.keep as usize);
        let (drop_old, keep_old) = old.split_at(excess.min(old.len()));
        for &n in drop_old {
            dir.remove(&format!("{base}.{n}"))?;
        }
        let drop_numbered = excess.saturating_sub(drop_old.len());
        for (i, &n) in numbered.iter().enumerate() {
            if i < drop_numbered {
                dir.remove(&files.name(n))?;
            } else {
                files.kept.push_back(n);
            }
        }
        if !keep_old.is_empty() {
            // Into the sequence, before the files already in it: everything kept is
            // renumbered after the highest number, in order (once, at most keep files).
            let kept = std::mem::take(&mut files.kept);
            for &n in keep_old {
                files.append(dir, &format!("{base}.{n}"))?;
            }
            for n in kept {
                files.append(dir, &files.name(n))?;
            }
        }
        Ok(files)
    }

    /// `<app>.log.NNNNNN`.
    pub(super) fn name(&self, n: u32) -> String {
        format!("{}.{n:0DIGITS$}", self.base)
    }

    /// The numbered files kept, oldest first.
    pub(super) fn kept(&self) -> impl Iterator<Item = String> + '_ {
        self.kept.iter().map(|&n| self.name(n))
    }

    /// Renames `<app>.log` to the next number and removes the oldest numbered file
    /// beyond the limit; with `max_files: 1`, removes `<app>.log`. The caller opens a
    /// fresh `<app>.log` after, also when the removal failed (the error is returned
    /// once the rename is done; the next rotation tries the removal again). When the
    /// rename fails nothing changed.
    pub(super) fn rotate(&mut self, dir: &Dir) -> io::Result<()> {
        if self.keep == 0 {
            return dir.remove(&self.base);
        }
        if self.next > self.last {
            self.renumber(dir)?;
        }
        let base = self.base.clone();
        self.append(dir, &base)?;
        self.trim(dir)
    }

    /// Keeps at most `max_files - 1` numbered files from now on, removing the oldest
    /// beyond that at once.
    pub(super) fn set_max_files(&mut self, dir: &Dir, max_files: u32) -> io::Result<()> {
        self.keep = max_files.max(1) - 1;
        self.trim(dir)
    }

    /// Renames `from` to the next number, the newest kept file.
    fn append(&mut self, dir: &Dir, from: &str) -> io::Result<()> {
        let n = self.next;
        dir.rename(from, &self.name(n))?;
        self.kept.push_back(n);
        self.next = n.saturating_add(1);
        Ok(())
    }

    /// Removes the oldest numbered files beyond `keep`.
    fn trim(&mut self, dir: &Dir) -> io::Result<()> {
        while self.kept.len() > self.keep as usize {
            let Some(&oldest) = self.kept.front() else {
                break;
            };
            dir.remove(&self.name(oldest))?;
            self.kept.pop_front();
        }
        Ok(())
    }

    /// Starts the sequence again: the kept files become 1, 2, ... in order. Each
    /// target is free: the numbers kept are distinct and ascending, so the i-th
    /// (from 0) is at least i + 1, and the ones after it are larger still.
    fn renumber(&mut self, dir: &Dir) -> io::Result<()> {
        let mut want = 1;
        for i in 0..self.kept.len() {
            let Some(&n) = self.kept.get(i) else { break };
            if n != want {
                dir.rename(&self.name(n), &self.name(want))?;
                if let Some(slot) = self.kept.get_mut(i) {
                    *slot = want;
                }
            }
            want += 1;
        }
        self.next = want;
        Ok(())
    }
}

/// What `name` is to the log `base`, if anything.
fn parse(base: &str, name: &str) -> Option<Name> {
    let digits = name.strip_prefix(base)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() == DIGITS {
        // 000000 is not a number this sequence gives.
        return digits.parse().ok().filter(|&n| n > 0).map(Name::Numbered);
    }
    if digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().map(Name::Old)
}

/// The names in `dir` (read through its descriptor).
/// The numbered files of the log `base` in `dir`, oldest first (as they are: nothing
/// is renamed or removed).
pub(super) fn numbered(dir: &Dir, base: &str) -> io::Result<Vec<String>> {
    let mut found: Vec<u32> = names(dir)?
        .iter()
        .filter_map(|name| match parse(base, name) {
            Some(Name::Numbered(n)) => Some(n),
            _ => None,
        })
        .collect();
    found.sort_unstable();
    Ok(found
        .into_iter()
        .map(|n| format!("{base}.{n:0DIGITS$}"))
        .collect())
}

fn names(dir: &Dir) -> io::Result<Vec<String>> {
    let failed = |e: nix::Error| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("list {}: {e}", dir.path().display()),
        )
    };
    let mut stream = DirStream::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(failed)?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let entry = entry.map_err(failed)?;
        if let Ok(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;
    use std::fs;

    fn listing(tmp: &TempDir) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&tmp.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn write(tmp: &TempDir, name: &str) {
        fs::write(tmp.0.join(name), name).unwrap();
    }

    fn content(tmp: &TempDir, name: &str) -> String {
        fs::read_to_string(tmp.0.join(name)).unwrap()
    }

    #[test]
    fn names_are_read_as_numbered_old_or_not_the_logs() {
        let p = |name| parse("web.log", name);
        assert_eq!(p("web.log.000001"), Some(Name::Numbered(1)));
        assert_eq!(p("web.log.999999"), Some(Name::Numbered(999_999)));
        assert_eq!(p("web.log.1"), Some(Name::Old(1)));
        assert_eq!(p("web.log.12"), Some(Name::Old(12)));
        assert_eq!(p("web.log.1234567"), Some(Name::Old(1_234_567)));
        for other in [
            "web.log",
            "web.log.",
            "web.log.000000",
            "web.log.01",
            "web.log.0000001",
            "web.log.1.gz",
            "web.log.-1",
            "web.logs.000001",
            "web.log.x",
            "webx.log.000001",
            "api.log.000001",
        ] {
            assert_eq!(p(other), None, "{other}");
        }
    }

    #[test]
    fn a_rotation_renames_one_file_and_removes_only_the_oldest() {
        let tmp = TempDir::new("rotate", "one");
        let dir = Dir::open(&tmp.0).unwrap();
        let mut files = Numbered::scan(&dir, "web.log", 3).unwrap();
        for n in 1..=4 {
            fs::write(tmp.0.join("web.log"), format!("part {n}")).unwrap();
            files.rotate(&dir).unwrap();
        }
        assert_eq!(listing(&tmp), ["web.log.000003", "web.log.000004"]);
        assert_eq!(content(&tmp, "web.log.000003"), "part 3");
        assert_eq!(content(&tmp, "web.log.000004"), "part 4");
        assert_eq!(
            files.kept().collect::<Vec<_>>(),
            ["web.log.000003", "web.log.000004"]
        );
    }

    #[test]
    fn the_sequence_goes_on_after_the_highest_number_found() {
        let tmp = TempDir::new("rotate", "goes-on");
        for name in [
            "web.log.000007",
            "web.log.000009",
            "web.log",
            "api.log.000050",
        ] {
            write(&tmp, name);
        }
        let dir = Dir::open(&tmp.0).unwrap();
        let mut files = Numbered::scan(&dir, "web.log", 4).unwrap();
        files.rotate(&dir).unwrap();
        assert_eq!(
            listing(&tmp),
            [
                "api.log.000050",
                "web.log.000007",
                "web.log.000009",
                "web.log.000010"
            ]
        );
        assert_eq!(content(&tmp, "web.log.000010"), "web.log");
    }

    #[test]
    fn the_oldest_beyond_the_limit_are_removed_at_scan() {
        let tmp = TempDir::new("rotate", "scan-trim");
        for n in 1..=5 {
            write(&tmp, &format!("web.log.{n:06}"));
        }
        write(&tmp, "web.log");
        let dir = Dir::open(&tmp.0).unwrap();
        let files = Numbered::scan(&dir, "web.log", 3).unwrap();
        assert_eq!(
            listing(&tmp),
            ["web.log", "web.log.000004", "web.log.000005"]
        );
        assert_eq!(files.next, 6);
    }

    #[test]
    fn old_names_are_renamed_into_the_sequence_oldest_first() {
        let tmp = TempDir::new("rotate", "old");
        // The old naming: .1 newest. Plus one file of the sequence, newer than both.
        for name in ["web.log.1", "web.log.2", "web.log.3", "web.log.000004"] {
            write(&tmp, name);
        }
        let dir = Dir::open(&tmp.0).unwrap();
        let files = Numbered::scan(&dir, "web.log", 4).unwrap();
        // Three kept: .3, the oldest, went; .2, .1 and 000004 follow in order.
        assert_eq!(
            listing(&tmp),
            ["web.log.000005", "web.log.000006", "web.log.000007"]
        );
        assert_eq!(content(&tmp, "web.log.000005"), "web.log.2");
        assert_eq!(content(&tmp, "web.log.000006"), "web.log.1");
        assert_eq!(content(&tmp, "web.log.000007"), "web.log.000004");
        assert_eq!(files.next, 8);

        // Only old names: they start the sequence.
        let tmp = TempDir::new("rotate", "old-only");
        for name in ["web.log.1", "web.log.2"] {
            write(&tmp, name);
        }
        let dir = Dir::open(&tmp.0).unwrap();
        Numbered::scan(&dir, "web.log", 3).unwrap();
        assert_eq!(listing(&tmp), ["web.log.000001", "web.log.000002"]);
        assert_eq!(content(&tmp, "web.log.000001"), "web.log.2");
    }

    #[test]
    fn after_the_last_number_the_kept_files_start_again_at_1() {
        let tmp = TempDir::new("rotate", "wrap");
        let dir = Dir::open(&tmp.0).unwrap();
        let mut files = Numbered::scan_with(&dir, "web.log", 3, 5).unwrap();
        for n in 1..=7 {
            fs::write(tmp.0.join("web.log"), format!("part {n}")).unwrap();
            files.rotate(&dir).unwrap();
        }
        // 1..5 given; at the sixth rotation 4 and 5 became 1 and 2, and 3 was new;
        // the seventh gave 4.
        assert_eq!(listing(&tmp), ["web.log.000003", "web.log.000004"]);
        assert_eq!(content(&tmp, "web.log.000003"), "part 6");
        assert_eq!(content(&tmp, "web.log.000004"), "part 7");
    }

    #[test]
    fn one_file_keeps_no_numbered_file() {
        let tmp = TempDir::new("rotate", "one-file");
        write(&tmp, "web.log.000003");
        write(&tmp, "web.log");
        let dir = Dir::open(&tmp.0).unwrap();
        let mut files = Numbered::scan(&dir, "web.log", 1).unwrap();
        assert_eq!(listing(&tmp), ["web.log"]);
        files.rotate(&dir).unwrap();
        assert_eq!(listing(&tmp), Vec::<String>::new());
    }

    #[test]
    fn fewer_files_apply_at_once_and_more_from_the_next_rotation() {
        let tmp = TempDir::new("rotate", "limits");
        for n in 1..=4 {
            write(&tmp, &format!("web.log.{n:06}"));
        }
        let dir = Dir::open(&tmp.0).unwrap();
        let mut files = Numbered::scan(&dir, "web.log", 5).unwrap();
        files.set_max_files(&dir, 2).unwrap();
        assert_eq!(listing(&tmp), ["web.log.000004"]);
        files.set_max_files(&dir, 3).unwrap();
        write(&tmp, "web.log");
        files.rotate(&dir).unwrap();
        assert_eq!(listing(&tmp), ["web.log.000004", "web.log.000005"]);
    }

    #[test]
    fn a_failed_removal_is_tried_again_at_the_next_rotation() {
        let tmp = TempDir::new("rotate", "remove-fails");
        let dir = Dir::open(&tmp.0).unwrap();
        // A directory where the oldest file should be: unlink fails.
        fs::create_dir(tmp.0.join("web.log.000001")).unwrap();
        let mut files = Numbered::scan(&dir, "web.log", 2).unwrap();
        assert_eq!(files.next, 2);
        write(&tmp, "web.log");
        let err = files.rotate(&dir).unwrap_err();
        assert!(err.to_string().starts_with("remove "), "{err}");
        assert_eq!(listing(&tmp), ["web.log.000001", "web.log.000002"]);
        fs::remove_dir(tmp.0.join("web.log.000001")).unwrap();
        write(&tmp, "web.log");
        files.rotate(&dir).unwrap();
        assert_eq!(listing(&tmp), ["web.log.000003"]);
    }
}
