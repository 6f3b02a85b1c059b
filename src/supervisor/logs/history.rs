//! `berth logs APP`: the lines of an app's log files, oldest first, as the client
//! reads them ([`Feed`]): a chunk at a time, so that however large the files, berth
//! holds a few dozen kilobytes of them, and the loop never reads more than one chunk
//! per wake-up of the client. Works for any app with files in the log directory,
//! running or not.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::control::server::Feed;
use crate::hostfs::Dir;

/// Bytes read per part.
const CHUNK: usize = 16 * 1024;

/// What of the log the client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    /// The last `n` lines only.
    pub lines: Option<usize>,
    /// Lines stamped at or after this time only (a formatted time, as the lines
    /// start with: fixed width, so it compares as text).
    pub since: Option<String>,
}

/// The log files of an app, from where the selection starts to their size when the
/// request came (lines written later come through the follower's tap).
pub struct History {
    /// Each file with the range still to send: (file, next offset, end).
    files: VecDeque<(File, u64, u64)>,
    since: Option<String>,
    /// The start of a line whose end is in the next chunk.
    partial: Vec<u8>,
}

impl History {
    /// Opens the files of `app` in `log_dir` (the numbered ones, then `<app>.log`): an
    /// empty history when there are none.
    pub fn open(log_dir: &Path, app: &str, select: Select) -> io::Result<History> {
        let mut files = VecDeque::new();
        if let Ok(dir) = Dir::open(log_dir) {
            let base = format!("{app}.log");
            let mut names = super::rotate::numbered(&dir, &base)?;
            names.push(base);
            for name in names {
                if let Some(file) = dir.open_read(&name)? {
                    let end = file.metadata()?.len();
                    files.push_back((file, 0, end));
                }
            }
        }
        if let Some(n) = select.lines {
            start_at_last(&mut files, n)?;
        }
        Ok(History {
            files,
            since: select.since,
            partial: Vec::new(),
        })
    }

    /// Whether no line is left to send (no file, or the selection ends at the end).
    pub fn is_empty(&self) -> bool {
        self.files.iter().all(|(_, at, end)| at >= end)
    }

    /// Appends `line` (without its newline) as a frame, if it is selected.
    fn push_line(&self, out: &mut Vec<u8>, line: &[u8]) {
        if let Some(since) = &self.since {
            if line
                .get(..since.len())
                .is_some_and(|t| t < since.as_bytes())
            {
                return;
            }
        }
        out.extend_from_slice(b"o ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

impl Feed for History {
    fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        let Some((file, at, end)) = self.files.front_mut() else {
            return false;
        };
        let want = usize::try_from((*end - *at).min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut buf = vec![0u8; want];
        let got = match file.read_at(&mut buf, *at) {
            Ok(n) => n,
            Err(e) => {
                out.extend_from_slice(format!("e berth: reading the log: {e}\n").as_bytes());
                0
            }
        };
        *at += got as u64;
        let file_done = got == 0 || *at >= *end;
        buf.truncate(got);
        self.partial.extend_from_slice(&buf);
        let mut rest = std::mem::take(&mut self.partial);
        let mut start = 0;
        while let Some(nl) = rest
            .get(start..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
        {
            self.push_line(out, rest.get(start..start + nl).unwrap_or_default());
            start += nl + 1;
        }
        rest.drain(..start.min(rest.len()));
        if file_done {
            // A last line without its newline (written as the request came) ends here.
            if !rest.is_empty() {
                self.push_line(out, &rest);
            }
            self.files.pop_front();
        } else {
            self.partial = rest;
        }
        !self.files.is_empty()
    }
}

/// Moves the start of `files` to the first of their last `n` lines: reads backwards
/// from the end, a chunk at a time, as far as those lines go. A file's last line
/// without a newline counts as a line.
fn start_at_last(files: &mut VecDeque<(File, u64, u64)>, n: usize) -> io::Result<()> {
    // Lines wholly after the current position.
    let mut seen = 0usize;
    let mut buf = vec![0u8; CHUNK];
    for i in (0..files.len()).rev() {
        let Some((file, start, end)) = files.get_mut(i) else {
            continue;
        };
        let mut pos = *end;
        while pos > 0 {
            let len = pos.min(CHUNK as u64);
            let from = pos - len;
            let slice = buf.get_mut(..len as usize).unwrap_or_default();
            file.read_exact_at(slice, from)?;
            for (j, &b) in slice.iter().enumerate().rev() {
                let at = from + j as u64;
                if at + 1 == *end && b != b'\n' {
                    seen += 1;
                }
                if b == b'\n' {
                    if seen == n {
                        *start = at + 1;
                        // The files before this one are not needed.
                        files.drain(..i);
                        return Ok(());
                    }
                    seen += 1;
                }
            }
            pos = from;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(files: &[&str], select: Select) -> String {
        let dir = crate::testdir::TempDir::new("logs", "history");
        let names: Vec<String> = (1..files.len())
            .map(|i| format!("web.log.{i:06}"))
            .chain(std::iter::once("web.log".to_owned()))
            .collect();
        for (name, text) in names.iter().zip(files) {
            std::fs::write(dir.0.join(name), text).unwrap();
        }
        let mut h = History::open(&dir.0, "web", select).unwrap();
        let mut out = Vec::new();
        while h.fill(&mut out) {}
        String::from_utf8(out).unwrap()
    }

    fn last(n: usize) -> Select {
        Select {
            lines: Some(n),
            since: None,
        }
    }

    #[test]
    fn every_line_of_every_file_oldest_first() {
        assert_eq!(
            history(&["a\nb\n", "c\n"], Select::default()),
            "o a\no b\no c\n"
        );
        assert_eq!(history(&["a\n", "b"], Select::default()), "o a\no b\n");
        assert_eq!(history(&[], Select::default()), "");
    }

    #[test]
    fn the_last_lines_across_files() {
        let files = ["x\ny\n", "a\nb\n"];
        assert_eq!(history(&files, last(0)), "");
        assert_eq!(history(&files, last(1)), "o b\n");
        assert_eq!(history(&files, last(2)), "o a\no b\n");
        assert_eq!(history(&files, last(3)), "o y\no a\no b\n");
        assert_eq!(history(&files, last(9)), "o x\no y\no a\no b\n");
        assert_eq!(history(&["a\nb"], last(1)), "o b\n");
        assert_eq!(history(&["a\n", "b"], last(2)), "o a\no b\n");
        // Longer than a chunk.
        let long = format!("{}\nend\n", "z".repeat(CHUNK * 2));
        assert_eq!(history(&[&long], last(1)), "o end\n");
        assert_eq!(history(&[&long], last(2)).len(), CHUNK * 2 + 3 + 6);
    }

    #[test]
    fn lines_since_a_time() {
        let files = [
            "2026-01-01T00:00:00.000Z stdout old\n",
            "2026-01-02T00:00:00.000Z stdout new\n2026-01-03T00:00:00.000Z berth newer\n",
        ];
        let select = Select {
            lines: None,
            since: Some("2026-01-02T00:00:00.000Z".into()),
        };
        assert_eq!(
            history(&files, select),
            "o 2026-01-02T00:00:00.000Z stdout new\no 2026-01-03T00:00:00.000Z berth newer\n"
        );
    }
}
