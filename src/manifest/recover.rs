//! Every parse problem of a manifest, not only the first one serde stops at. After each
//! problem the entry it is in (a key and its value) is blanked out of the text with
//! spaces, which keeps every later line and column true, and the text is parsed again.
//! A problem the blanking may have caused (a required key now missing, a list item now
//! empty) is not reported; its own entry is blanked in turn. A syntax error ends the
//! search: what follows it cannot be read.

use serde::de::DeserializeOwned;

use super::locate::{Pos, Seg, locate};
use super::{ProblemKind, YamlKind, parse_yaml};

/// At most this many parses of one file.
const MAX_ROUNDS: usize = 32;

/// A parse problem: where, and what.
pub type Found = (Option<Pos>, ProblemKind);

/// Parses `text` into `T`, or returns every problem found in it, in the order found.
pub fn parse_all<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Found>> {
    let mut next = match parse_yaml::<T>(text) {
        Ok(value) => return Ok(value),
        Err(problem) => problem,
    };
    let original = text;
    let mut text = text.to_owned();
    let mut found: Vec<Found> = Vec::new();
    // The entries blanked for a bad value, as serde_yaml writes paths (`mounts[0].target`).
    let mut blanked: Vec<String> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let (pos, kind) = next;
        let ProblemKind::Yaml {
            kind: yaml,
            message,
        } = &kind
        else {
            found.push((pos, kind));
            break;
        };
        let (yaml, site) = (*yaml, site(message).to_owned());
        let key_problem = matches!(yaml, YamlKind::UnknownField | YamlKind::DuplicateKey);
        let caused = match yaml {
            YamlKind::UnknownField | YamlKind::DuplicateKey => false,
            // Caused if that very key was blanked.
            YamlKind::MissingField => blanked.contains(&missing(&site, message)),
            // A list item or a mapping left empty.
            _ => blanked.iter().any(|b| within(b, &site)),
        };
        match yaml {
            YamlKind::Syntax if !found.is_empty() => break,
            YamlKind::Syntax => {
                found.push((pos, kind));
                break;
            }
            _ if caused => {}
            // Where the mapping starts in the file, not in what is left of it.
            YamlKind::MissingField => {
                let mapping = segments(&site).and_then(|path| locate(original, &path));
                found.push((mapping.or(pos), kind));
            }
            _ => found.push((pos, kind)),
        }
        let Some((path, span)) = pos.and_then(|pos| entry(&text, pos, key_problem, &site)) else {
            break;
        };
        if span.is_empty() || !blank(&mut text, span) {
            break;
        }
        if !key_problem {
            blanked.push(path);
        }
        next = match parse_yaml::<T>(&text) {
            Ok(_) => break,
            Err(problem) => problem,
        };
    }
    Err(found)
}

/// The key path serde_yaml puts before its message (`resources.memory: invalid size`);
/// empty for the document's root.
fn site(message: &str) -> &str {
    match message.split_once(": ") {
        Some((path, _)) if !path.contains(' ') => path,
        _ => "",
    }
}

/// The path of the key a "missing field `K`" message names.
fn missing(site: &str, message: &str) -> String {
    let key = message.split('`').nth(1).unwrap_or_default();
    match site {
        "" => key.to_owned(),
        _ => format!("{site}.{key}"),
    }
}

/// Whether `path` is at or inside `site`.
fn within(path: &str, site: &str) -> bool {
    site.is_empty()
        || path
            .strip_prefix(site)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The entry to blank for a problem at `pos` in `site`: its path and its byte range.
/// The problem's own key for an unknown or repeated key; else the nearest key that
/// holds the node at `site`.
fn entry(
    text: &str,
    pos: Pos,
    key_problem: bool,
    site: &str,
) -> Option<(String, std::ops::Range<usize>)> {
    let (parent, key, key_at) = if key_problem {
        (site, "", pos)
    } else {
        let mut held = site;
        while let Some(list) = held.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
            held = list.0;
        }
        let (parent, key) = held.rsplit_once('.').unwrap_or(("", held));
        if key.is_empty() {
            return None;
        }
        let mut path = segments(parent)?;
        path.push(Seg::KeyOf(key));
        (parent, key, locate(text, &path)?)
    };
    let start = offset(text, key_at)?;
    // A key not found points at its mapping: blank nothing then.
    let at_key = text.get(start..)?.trim_start_matches(['"', '\'']);
    if !at_key.starts_with(key) {
        return None;
    }
    let mapping = offset(text, locate(text, &segments(parent)?)?)?;
    let end = match text.get(mapping..)?.starts_with('{') {
        true => flow_end(text, start),
        false => block_end(text, start, key_at.column.checked_sub(1)?),
    };
    let path = match parent {
        "" => key.to_owned(),
        _ => format!("{parent}.{key}"),
    };
    Some((path, start..end))
}

/// `mounts[0].target` as steps for [`locate`].
fn segments(path: &str) -> Option<Vec<Seg<'_>>> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        segs.push(Seg::Key(pieces.next()?));
        for index in pieces {
            segs.push(Seg::Index(index.strip_suffix(']')?.parse().ok()?));
        }
    }
    Some(segs)
}

/// The byte offset of a 1-based line and column (columns count characters).
fn offset(text: &str, pos: Pos) -> Option<usize> {
    let line = match pos.line.checked_sub(2) {
        None => 0,
        Some(n) => text.match_indices('\n').nth(n)?.0 + 1,
    };
    let column = pos.column.checked_sub(1)?;
    let (i, _) = text.get(line..)?.char_indices().nth(column)?;
    Some(line + i)
}

/// The end of a block mapping's entry whose key starts at `start`, in column `indent`
/// (0-based): the rest of its line and every following line indented more (or a list
/// at its own indent); blank and comment lines between them go with it.
fn block_end(text: &str, start: usize, indent: usize) -> usize {
    let line_end = |from: usize| {
        text.get(from..)
            .and_then(|t| t.find('\n'))
            .map(|i| from + i)
    };
    let Some(mut end) = line_end(start) else {
        return text.len();
    };
    let mut kept = end;
    while let Some(line) = text.get(end + 1..) {
        let next = line_end(end + 1).unwrap_or(text.len());
        let body = line.get(..next - end - 1).unwrap_or_default();
        let trimmed = body.trim_start_matches(' ');
        let depth = body.len() - trimmed.len();
        let list = trimmed == "-" || trimmed.starts_with("- ");
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            // Goes with the entry only if a deeper line follows.
        } else if depth > indent || (depth == indent && list) {
            kept = next;
        } else {
            break;
        }
        if next == text.len() {
            break;
        }
        end = next;
    }
    kept
}

/// The end of a flow mapping's entry whose key starts at `start`: after its comma, or
/// before the bracket that closes the mapping.
fn flow_end(text: &str, start: usize) -> usize {
    let (mut depth, mut quote, mut escaped, mut comment) = (0usize, None, false, false);
    let mut prev = ' ';
    for (i, c) in text.get(start..).unwrap_or_default().char_indices() {
        let at = start + i;
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if c == q && !escaped {
                quote = None;
            }
            escaped = q == '"' && c == '\\' && !escaped;
        } else {
            let token_start = prev.is_whitespace() || "[{,:".contains(prev) || i == 0;
            match c {
                '"' | '\'' if token_start || (c == '\'' && prev == '\'') => quote = Some(c),
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => depth += 1,
                ',' if depth == 0 => return at + 1,
                ']' | '}' if depth == 0 => return at,
                ']' | '}' => depth -= 1,
                _ => {}
            }
        }
        prev = c;
    }
    text.len()
}

/// Replaces the characters of `range` with spaces (line breaks stay); false if the
/// range is not in `text`.
fn blank(text: &mut String, range: std::ops::Range<usize>) -> bool {
    let Some(old) = text.get(range.clone()) else {
        return false;
    };
    let spaces: String = old
        .chars()
        .map(|c| if c == '\n' || c == '\r' { c } else { ' ' })
        .collect();
    text.replace_range(range, &spaces);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_flow_entries_end_where_their_value_does() {
        let text = "\na: 1\nb:\n  c: [x, {y: 1}]\n\n  # note\n  d: 2\ne:\n- 1\n- 2\nf: 3\n";
        // A key at the start of a line, or "c:".
        let start = |key: &str| text.find(key).unwrap() + usize::from(key.starts_with('\n'));
        assert_eq!(
            &text[start("\na")..block_end(text, start("\na"), 0)],
            "a: 1"
        );
        assert_eq!(
            &text[start("\nb")..block_end(text, start("\nb"), 0)],
            "b:\n  c: [x, {y: 1}]\n\n  # note\n  d: 2"
        );
        assert_eq!(
            &text[start("c:")..block_end(text, start("c:"), 2)],
            "c: [x, {y: 1}]"
        );
        assert_eq!(
            &text[start("\ne")..block_end(text, start("\ne"), 0)],
            "e:\n- 1\n- 2"
        );
        assert_eq!(
            &text[start("\nf")..block_end(text, start("\nf"), 0)],
            "f: 3"
        );
        let flow = "{ a: [1, 2], b: 'it''s, }', c: \"\\\", x\" }";
        let start = |key: &str| flow.find(key).unwrap();
        assert_eq!(
            &flow[start("a:")..flow_end(flow, start("a:"))],
            "a: [1, 2],"
        );
        assert_eq!(
            &flow[start("b:")..flow_end(flow, start("b:"))],
            "b: 'it''s, }',"
        );
        assert_eq!(
            &flow[start("c:")..flow_end(flow, start("c:"))],
            "c: \"\\\", x\" "
        );
    }

    #[test]
    fn paths_and_positions() {
        assert_eq!(site("mounts[0].target: invalid path"), "mounts[0].target");
        assert_eq!(site("unknown field `x`, expected one of: a"), "");
        assert!(within("mounts[0].target", "mounts[0]"));
        assert!(within("name", ""));
        assert!(!within("mounts[10]", "mounts[1]"));
        assert_eq!(
            segments("mounts[1].target"),
            Some(vec![Seg::Key("mounts"), Seg::Index(1), Seg::Key("target")])
        );
        assert_eq!(offset("ab\ncé d", Pos { line: 2, column: 3 }), Some(6));
        assert_eq!(offset("ab", Pos { line: 3, column: 1 }), None);
        let mut text = String::from("a: é\nb: 1");
        assert!(blank(&mut text, 0..5));
        assert_eq!(text, "    \nb: 1");
    }
}
