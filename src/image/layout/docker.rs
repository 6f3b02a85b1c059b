//! docker-save archives (`docker save`, `podman save --format docker-archive`):
//! `manifest.json` → the first image's config and layer files.

use super::json::{self, Config, DockerImage};
use super::names::check_name;
use super::table::Table;
use super::{Layer, Plan};
use crate::image::unpack::entry_name;
use crate::image::{Format, ImageError};

pub(super) fn plan(table: &Table) -> Result<Plan, ImageError> {
    let (_, stored) = table.lookup("manifest.json", "manifest.json")?;
    let images: Vec<DockerImage> =
        json::parse(&table.document(stored, "manifest.json")?, "manifest.json")?;
    let Some(image) = images.first() else {
        return Err(ImageError::Format("manifest.json lists no image".into()));
    };
    if images.len() > 1 {
        let tags = image.repo_tags.as_deref().unwrap_or_default().join(", ");
        log::warn!(
            "manifest.json lists {} images; berth takes the first ({tags})",
            images.len()
        );
    }
    let config_path = archive_path(&image.config, "config")?;
    let what = format!("image config {config_path}");
    let (_, stored) = table.lookup(config_path, &what)?;
    let config: Config = json::parse(&table.document(stored, &what)?, &what)?;
    let n = image.layers.len();
    let diff_ids = config.diff_ids_for(&what, "manifest.json", n)?;
    let mut layers = Vec::with_capacity(n);
    for (i, (path, diff_id)) in image.layers.iter().zip(diff_ids).enumerate() {
        let path = archive_path(path, "layer")?;
        let what = format!("layer {} of {n} ({path})", i + 1);
        let (key, _) = table.lookup(path, &what)?;
        layers.push(Layer {
            path: key.to_owned(),
            what,
            diff_id,
        });
    }
    Ok(Plan {
        defaults: config.defaults(),
        layers,
        format: Format::DockerArchive,
    })
}

/// A path that manifest.json names, as a table key.
fn archive_path<'a>(path: &'a str, what: &str) -> Result<&'a str, ImageError> {
    let name = entry_name(path);
    check_name(name)
        .map_err(|why| ImageError::Format(format!("manifest.json: {what} {path:?}: {why}")))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Node, TempDir, sha, table, tar};
    use super::*;

    /// A docker-save archive of `layers` (v1 ids made up), with `manifest` written by
    /// `make_manifest(config name, layer paths)`.
    fn archive(layers: &[&[u8]], make_manifest: impl Fn(&str, &[String]) -> String) -> Vec<u8> {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("\"sha256:{}\"", sha(l)))
            .collect();
        let config = format!(
            r#"{{"architecture":"amd64","config":{{"Entrypoint":["/bin/gw"],"Env":["A=1"],"User":"app"}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            diff_ids.join(",")
        );
        let config_name = format!("{}.json", sha(config.as_bytes()));
        let ids: Vec<String> = (0..layers.len())
            .map(|i| format!("{i}").repeat(64))
            .collect();
        let paths: Vec<String> = ids.iter().map(|id| format!("{id}/layer.tar")).collect();
        let manifest = make_manifest(&config_name, &paths);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for ((id, path), layer) in ids.iter().zip(&paths).zip(layers) {
            files.push((format!("{id}/VERSION"), b"1.0".to_vec()));
            files.push((format!("{id}/json"), b"{}".to_vec()));
            files.push((path.clone(), layer.to_vec()));
        }
        files.push((config_name, config.into_bytes()));
        files.push(("manifest.json".into(), manifest.into_bytes()));
        files.push(("repositories".into(), b"{}".to_vec()));
        let mut entries: Vec<(&str, Node<'_>)> = vec![];
        for (i, (n, b)) in files.iter().enumerate() {
            if i % 3 == 0 && i < 3 * layers.len() {
                entries.push((&n[..65], Node::Dir));
            }
            entries.push((n.as_str(), Node::File(b)));
        }
        tar(&entries)
    }

    fn standard(config: &str, layers: &[String]) -> String {
        let layers: Vec<String> = layers.iter().map(|l| format!("\"{l}\"")).collect();
        format!(
            r#"[{{"Config":"{config}","RepoTags":["gw:1"],"Layers":[{}]}}]"#,
            layers.join(",")
        )
    }

    #[test]
    fn plan_of_a_docker_save_archive() {
        let dir = TempDir::new("docker-plan");
        let t = table(&archive(&[b"one", b"two"], standard), dir.path()).unwrap();
        let plan = plan(&t).unwrap();
        assert_eq!(plan.format, Format::DockerArchive);
        assert_eq!(plan.defaults.entrypoint, vec!["/bin/gw"]);
        assert_eq!(plan.defaults.env, vec!["A=1"]);
        assert_eq!(plan.defaults.user.as_deref(), Some("app"));
        let path = format!("{}/layer.tar", "1".repeat(64));
        assert_eq!(
            plan.layers[1],
            Layer {
                path: path.clone(),
                what: format!("layer 2 of 2 ({path})"),
                diff_id: sha(b"two").parse().unwrap()
            }
        );
    }

    #[test]
    fn a_missing_layer_is_named() {
        let dir = TempDir::new("docker-missing");
        let t = table(
            &archive(&[b"one"], |c, l| {
                standard(c, &[l[0].clone(), "ffff/layer.tar".into()])
            }),
            dir.path(),
        )
        .unwrap();
        // Two layers named, one diff_id: the count is checked first.
        assert_eq!(
            plan(&t).unwrap_err().to_string(),
            format!(
                "manifest.json lists 2 layers but image config {}.json has 1 diff_ids",
                config_sha(&t)
            )
        );
        let t = table(
            &archive(&[b"one", b"two"], |c, l| {
                standard(c, &[l[0].clone(), "ab/layer.tar".into()])
            }),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            plan(&t).unwrap_err().to_string(),
            "layer 2 of 2 (ab/layer.tar) is not in the archive (no file \"ab/layer.tar\")"
        );
        let t = table(
            &archive(&[b"one"], |c, _| standard(c, &["../x/layer.tar".into()])),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            plan(&t).unwrap_err().to_string(),
            "manifest.json: layer \"../x/layer.tar\": `..` in a path of an image archive"
        );
    }

    fn config_sha(t: &Table) -> String {
        let (_, stored) = t.lookup("manifest.json", "m").unwrap();
        let images: Vec<DockerImage> = json::parse(&t.document(stored, "m").unwrap(), "m").unwrap();
        images[0].config.trim_end_matches(".json").to_owned()
    }

    #[test]
    fn the_config_must_hash_to_its_name() {
        let dir = TempDir::new("docker-config");
        let wrong = format!("{}.json", "e".repeat(64));
        let archive = archive(&[b"one"], |_, l| standard(&wrong, l));
        // Put a config under the wrong name.
        let mut a = tar::Archive::new(&archive[..]);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut name = e.path().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with("manifest") {
                name = wrong.clone();
            }
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if e.header().entry_type().is_file() {
                files.push((name, data));
            }
        }
        let entries: Vec<(&str, Node<'_>)> = files
            .iter()
            .map(|(n, b)| (n.as_str(), Node::File(b)))
            .collect();
        let t = table(&tar(&entries), dir.path()).unwrap();
        match plan(&t).unwrap_err() {
            ImageError::BlobMismatch { what, expected, .. } => {
                assert_eq!(what, format!("image config {wrong}"));
                assert_eq!(expected, "e".repeat(64));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_manifest_is_refused() {
        let dir = TempDir::new("docker-empty");
        let t = table(&archive(&[b"one"], |_, _| "[]".into()), dir.path()).unwrap();
        assert_eq!(
            plan(&t).unwrap_err().to_string(),
            "manifest.json lists no image"
        );
    }
}
