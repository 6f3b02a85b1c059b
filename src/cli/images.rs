//! `berth images`: the installed images, as `docker images` lists them. Read from the
//! files (the store in `state_dir`, the manifests in `apps_dir`): no supervisor needed.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::human::Bytes;
use crate::config::Config;
use crate::control::json::{self, Object};
use crate::image::ImageError;
use crate::image::store::{Store, disk_usage};
use crate::manifest::{self, Manifest};
use crate::timefmt::format_time;

/// One installed image.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    pub digest: String,
    /// As `berth unpack` detected it: `docker-save`, `oci`, `rootfs tar`...
    pub format: String,
    /// Bytes on disk (hard links counted once).
    pub size: u64,
    /// When it was installed.
    pub created: Option<SystemTime>,
    /// The valid manifests of `apps_dir` that name it.
    pub apps: Vec<String>,
}

/// Lists the images of `config.state_dir`; returns the exit status.
pub fn run(config: &Config, json: bool, out: &mut impl Write) -> u8 {
    let apps = apps_of(config);
    match rows(&config.state_dir, &apps) {
        Ok(rows) => {
            let written = match json {
                true => writeln!(out, "{}", to_json(&rows)),
                false => table(&rows, out),
            };
            u8::from(written.is_err())
        }
        Err(e) => {
            eprintln!("berth images: {e}");
            1
        }
    }
}

/// The valid manifests of the apps directory; none when it is missing.
pub(crate) fn apps_of(config: &Config) -> Vec<Manifest> {
    let dir = &config.apps_dir;
    if !dir.is_dir() {
        return Vec::new();
    }
    manifest::load_with(std::slice::from_ref(dir), &config.reserved(dir)).apps
}

/// The images installed under `state_dir`, newest first, each with the `apps` that
/// name it.
pub fn rows(state_dir: &Path, apps: &[Manifest]) -> Result<Vec<Row>, ImageError> {
    let Some(store) = Store::existing(state_dir)? else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for digest in store.list()? {
        let path = store.path(&digest);
        let created = std::fs::metadata(path.join("image.yaml"))
            .and_then(|m| m.modified())
            .ok();
        rows.push(Row {
            format: store.info(&digest)?.format,
            size: disk_usage(&path)?,
            created,
            apps: apps
                .iter()
                .filter(|m| m.image.sha256 == digest)
                .map(|m| m.name.as_str().to_owned())
                .collect(),
            digest: digest.to_string(),
        });
    }
    rows.sort_by(|a, b| b.created.cmp(&a.created).then(a.digest.cmp(&b.digest)));
    Ok(rows)
}

/// The aligned table: DIGEST (12 hex), FORMAT, SIZE, CREATED (UTC, to the minute), APPS.
fn table(rows: &[Row], out: &mut impl Write) -> std::io::Result<()> {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let created = r.created.map(format_time).unwrap_or_default();
            let apps = r.apps.join(",");
            [
                r.digest.chars().take(12).collect(),
                r.format.clone(),
                Bytes(r.size).to_string(),
                created.get(..16).unwrap_or("-").replacen('T', " ", 1),
                if apps.is_empty() { "-".into() } else { apps },
            ]
        })
        .collect();
    let head = ["DIGEST", "FORMAT", "SIZE", "CREATED", "APPS"].map(String::from);
    let mut widths = [0; 5];
    for row in std::iter::once(&head).chain(&cells) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&head).chain(&cells) {
        for (cell, w) in row.iter().zip(widths).take(4) {
            write!(out, "{cell:<w$}  ")?;
        }
        writeln!(out, "{}", row.get(4).map_or("", String::as_str))?;
    }
    Ok(())
}

/// The rows as a JSON array: `digest` (64 hex), `format`, `size_bytes`, `created`
/// (RFC 3339, UTC) and `apps`.
pub fn to_json(rows: &[Row]) -> String {
    json::array(rows.iter().map(|r| {
        Object::new()
            .str("digest", &r.digest)
            .str("format", &r.format)
            .num("size_bytes", r.size)
            .opt_str("created", r.created.map(format_time).as_deref())
            .raw("apps", &json::array(r.apps.iter().map(|a| json::string(a))))
            .end()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;
    use std::fs;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn install(state: &Path, digest: &str, format: &str, bytes: usize) {
        let dir = state.join("images/sha256").join(digest);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        fs::write(dir.join("rootfs/file"), vec![7u8; bytes]).unwrap();
        fs::write(
            dir.join("image.yaml"),
            format!("format: \"{format}\"\ndefaults: {{}}\n"),
        )
        .unwrap();
    }

    #[test]
    fn images_with_the_apps_that_name_them() {
        let d = TempDir::new("images", "rows");
        assert_eq!(rows(&d.0, &[]).unwrap(), []);
        install(&d.0, A, "rootfs tar", 10_000);
        install(&d.0, B, "docker-save", 100);
        let app = |name: &str, sha: &str| {
            let text = format!("name: {name}\nimage: {{ path: x.tar, sha256: {sha} }}\n");
            (format!("{name}.yaml").into(), text)
        };
        let apps = manifest::load_texts([app("web", A), app("api", A), app("db", B)]).apps;
        let found = rows(&d.0, &apps).unwrap();
        let mut by_digest: Vec<(&str, &str, Vec<String>)> = found
            .iter()
            .map(|r| (r.digest.as_str(), r.format.as_str(), r.apps.clone()))
            .collect();
        by_digest.sort();
        assert_eq!(
            by_digest,
            [
                (B, "docker-save", vec!["db".to_owned()]),
                (A, "rootfs tar", vec!["web".to_owned(), "api".to_owned()]),
            ]
        );
        let a = found.iter().find(|r| r.digest == A).unwrap();
        assert!(a.size >= 10_000 && a.created.is_some(), "{a:?}");
    }

    #[test]
    fn table_and_json() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let rows = [
            Row {
                digest: A.into(),
                format: "rootfs tar".into(),
                size: 18_300_000,
                created: Some(t),
                apps: vec!["web".into(), "api".into()],
            },
            Row {
                digest: B.into(),
                format: "oci".into(),
                size: 512,
                created: None,
                apps: vec![],
            },
        ];
        let mut out = Vec::new();
        table(&rows, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "DIGEST        FORMAT      SIZE     CREATED           APPS\n\
             9f86d081884c  rootfs tar  18.3 MB  2023-11-14 22:13  web,api\n\
             2cf24dba5fb0  oci         512 B    -                 -\n"
        );
        assert_eq!(
            to_json(&rows),
            format!(
                "[{{\"digest\":\"{A}\",\"format\":\"rootfs tar\",\"size_bytes\":18300000,\
                 \"created\":\"2023-11-14T22:13:20.000Z\",\"apps\":[\"web\",\"api\"]}},\
                 {{\"digest\":\"{B}\",\"format\":\"oci\",\"size_bytes\":512,\"created\":null,\
                 \"apps\":[]}}]"
            )
        );
    }
}
