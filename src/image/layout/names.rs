//! The entry names of OCI layout and docker-save archives, and lexical path checks.
//! Pure string work: nothing here touches the filesystem.

/// What an archive entry is, from its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name<'a> {
    /// `blobs`, `blobs/sha256`, `<hex>`: directories of the layout.
    Dir,
    /// `oci-layout`.
    Layout,
    /// `index.json`.
    Index,
    /// `manifest.json` (docker save).
    DockerManifest,
    /// Files of these formats that berth does not need: `repositories`,
    /// `<hex>/json`, `<hex>/VERSION`.
    Unused,
    /// `blobs/sha256/<hex>`: content addressed, its sha256 must be `<hex>`.
    Blob(&'a str),
    /// `<hex>.json` (docker save, podman) or `sha256:<hex>` (go-containerregistry):
    /// an image config named by its own sha256.
    Config(&'a str),
    /// `<hex>/layer.tar` (docker save), `<hex>.tar` (podman docker-archive),
    /// `<hex>.tar.gz` (go-containerregistry): a layer, checked against its diff_id.
    Layer,
}

/// Classifies an entry name (already without leading `./`; a trailing `/` of a
/// directory entry is allowed). `None`: not a file of either format.
pub(super) fn classify(path: &str) -> Option<Name<'_>> {
    let path = path.strip_suffix('/').unwrap_or(path);
    match path {
        "oci-layout" => return Some(Name::Layout),
        "index.json" => return Some(Name::Index),
        "manifest.json" => return Some(Name::DockerManifest),
        "repositories" => return Some(Name::Unused),
        "blobs" | "blobs/sha256" => return Some(Name::Dir),
        _ => {}
    }
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        return is_hex64(hex).then_some(Name::Blob(hex));
    }
    if let Some((dir, file)) = path.split_once('/') {
        return match file {
            "layer.tar" if is_hex64(dir) => Some(Name::Layer),
            "json" | "VERSION" if is_hex64(dir) => Some(Name::Unused),
            _ => None,
        };
    }
    if is_hex64(path) {
        return Some(Name::Dir);
    }
    if let Some(hex) = path
        .strip_suffix(".json")
        .or_else(|| path.strip_prefix("sha256:"))
    {
        return is_hex64(hex).then_some(Name::Config(hex));
    }
    let hex = path
        .strip_suffix(".tar")
        .or_else(|| path.strip_suffix(".tar.gz"))?;
    is_hex64(hex).then_some(Name::Layer)
}

/// The sha256 (hex) that the file at `path` must hash to, when its name says.
pub(super) fn named_digest(path: &str) -> Option<&str> {
    match classify(path)? {
        Name::Blob(hex) | Name::Config(hex) => Some(hex),
        _ => None,
    }
}

/// 64 lower-case hex digits: a sha256 as OCI and docker write it.
pub(super) fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Refuses an entry name that is absolute or has a `..` component.
pub(super) fn check_name(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        return Err("absolute path in an image archive".into());
    }
    if path.split('/').any(|c| c == "..") {
        return Err("`..` in a path of an image archive".into());
    }
    Ok(())
}

/// Resolves a link target lexically inside the archive: a symlink's `target`
/// relative to the directory of `link`, or (`hard`) a hard link's target from the
/// archive's root. Refuses absolute targets and targets that leave the archive.
pub(super) fn resolve_link(link: &str, target: &str, hard: bool) -> Result<String, String> {
    if target.starts_with('/') {
        return Err(format!(
            "link target {target:?} is absolute; links may only point inside the archive"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    if !hard {
        parts.extend(link.split('/').filter(|c| !c.is_empty() && *c != "."));
        parts.pop();
    }
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("link target {target:?} leaves the archive"));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(format!("link target {target:?} is the archive's root"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    #[test]
    fn oci_layout_names() {
        assert_eq!(classify("oci-layout"), Some(Name::Layout));
        assert_eq!(classify("index.json"), Some(Name::Index));
        assert_eq!(classify("blobs"), Some(Name::Dir));
        assert_eq!(classify("blobs/"), Some(Name::Dir));
        assert_eq!(classify("blobs/sha256/"), Some(Name::Dir));
        assert_eq!(
            classify(&format!("blobs/sha256/{HEX}")),
            Some(Name::Blob(HEX))
        );
        assert_eq!(classify("blobs/sha256/abc"), None);
        assert_eq!(classify(&format!("blobs/sha512/{HEX}")), None);
        assert_eq!(
            classify(&format!("blobs/sha256/{}", HEX.to_uppercase())),
            None
        );
    }

    #[test]
    fn docker_save_names() {
        assert_eq!(classify("manifest.json"), Some(Name::DockerManifest));
        assert_eq!(classify("repositories"), Some(Name::Unused));
        assert_eq!(classify(HEX), Some(Name::Dir));
        assert_eq!(classify(&format!("{HEX}/")), Some(Name::Dir));
        assert_eq!(classify(&format!("{HEX}/layer.tar")), Some(Name::Layer));
        assert_eq!(classify(&format!("{HEX}/json")), Some(Name::Unused));
        assert_eq!(classify(&format!("{HEX}/VERSION")), Some(Name::Unused));
        assert_eq!(classify(&format!("{HEX}.json")), Some(Name::Config(HEX)));
        assert_eq!(classify(&format!("{HEX}.tar")), Some(Name::Layer));
        assert_eq!(classify(&format!("{HEX}.tar.gz")), Some(Name::Layer));
        assert_eq!(classify(&format!("sha256:{HEX}")), Some(Name::Config(HEX)));
        assert_eq!(classify(&format!("{HEX}/other")), None);
        assert_eq!(classify(&format!("{HEX}/layer.tar/x")), None);
        assert_eq!(classify("etc/passwd"), None);
        assert_eq!(classify("bin"), None);
        assert_eq!(classify("layer.tar"), None);
        assert_eq!(named_digest(&format!("{HEX}.json")), Some(HEX));
        assert_eq!(named_digest(&format!("{HEX}/layer.tar")), None);
    }

    #[test]
    fn bad_names() {
        assert!(check_name("blobs/sha256/x").is_ok());
        assert_eq!(
            check_name("/etc/passwd"),
            Err("absolute path in an image archive".into())
        );
        assert_eq!(
            check_name("blobs/../x"),
            Err("`..` in a path of an image archive".into())
        );
        assert!(check_name("a..b/c").is_ok());
    }

    #[test]
    fn links_resolve_inside_the_archive() {
        let other = format!("{HEX}/layer.tar");
        // docker save writes `../<id>/layer.tar` for a layer it already saved.
        assert_eq!(
            resolve_link("1111/layer.tar", &format!("../{other}"), false),
            Ok(other.clone())
        );
        assert_eq!(
            resolve_link("./1111/./layer.tar", &format!("./../{other}"), false),
            Ok(other.clone())
        );
        assert_eq!(
            resolve_link("1111/layer.tar", &other, true),
            Ok(other.clone())
        );
        assert_eq!(
            resolve_link("blobs/sha256/x", "y", false),
            Ok("blobs/sha256/y".into())
        );
        assert_eq!(
            resolve_link("a/layer.tar", "../../etc/passwd", false),
            Err("link target \"../../etc/passwd\" leaves the archive".into())
        );
        assert_eq!(
            resolve_link("a/layer.tar", "/etc/passwd", false),
            Err(
                "link target \"/etc/passwd\" is absolute; links may only point inside the archive"
                    .into()
            )
        );
        assert!(resolve_link("a/layer.tar", "..", false).is_err());
    }
}
