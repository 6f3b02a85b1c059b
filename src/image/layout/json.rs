//! The JSON documents of OCI layouts and docker-save archives, as far as berth reads
//! them. They are parsed with serde_yaml: JSON is YAML (berth carries no second
//! parser). Unknown fields are ignored: these are other tools' formats, and they grow.
//!
//! One limit of libyaml matters here: a mapping key longer than 1024 characters is not
//! recognised as a key. No field of these formats comes near it.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::super::{ImageDefaults, ImageError};
use crate::manifest::types::Digest;

pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Parses `bytes` (a JSON document) as a `T`; `what` names it in the error.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ImageError::Format(format!("{what} is not UTF-8 text: {e}")))?;
    serde_yaml::from_str(text).map_err(|e| ImageError::Format(format!("{what} is not valid: {e}")))
}

/// `sha256:<64 hex>` → the digest; other algorithms are refused.
pub(super) fn sha256(digest: &str, what: &str) -> Result<Digest, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if super::names::is_hex64(hex) => hex.parse().map_err(ImageError::Format),
        Some(_) => Err(ImageError::Format(format!(
            "{what}: digest {digest:?} is not 64 lower-case hex digits"
        ))),
        None => Err(ImageError::Format(format!(
            "{what}: digest {digest:?} is not sha256; berth verifies sha256 digests only"
        ))),
    }
}

/// `oci-layout`.
#[derive(Debug, Deserialize)]
pub(super) struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    pub version: String,
}

/// A content descriptor: what a blob is, its digest and size, and (in an index) the
/// platform of the image it describes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct PlatformJson {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image index (`index.json`, a nested index, a docker manifest list).
#[derive(Debug, Deserialize)]
pub(super) struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or docker schema 2).
#[derive(Debug, Deserialize)]
pub(super) struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// One image of a docker-save `manifest.json` (a list of them).
#[derive(Debug, Deserialize)]
pub(super) struct DockerImage {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// An image config (OCI and docker share it).
#[derive(Debug, Deserialize)]
pub(super) struct Config {
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

/// The `config` of an image config: how to run it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Config {
    /// What the image says about running it; empty strings count as unset.
    pub(super) fn defaults(&self) -> ImageDefaults {
        let run = self.config.as_ref();
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        ImageDefaults {
            entrypoint: run.and_then(|r| r.entrypoint.clone()).unwrap_or_default(),
            cmd: run.and_then(|r| r.cmd.clone()).unwrap_or_default(),
            env: run.and_then(|r| r.env.clone()).unwrap_or_default(),
            workdir: run.and_then(|r| non_empty(&r.working_dir)),
            user: run.and_then(|r| non_empty(&r.user)),
        }
    }

    /// The sha256 of each layer's uncompressed tar, in order.
    pub(super) fn diff_ids(&self, what: &str) -> Result<Vec<Digest>, ImageError> {
        if let Some(kind) = self.rootfs.kind.as_deref().filter(|k| *k != "layers") {
            return Err(ImageError::Format(format!(
                "{what}: rootfs type {kind:?} is not \"layers\""
            )));
        }
        self.rootfs
            .diff_ids
            .iter()
            .map(|d| sha256(d, &format!("{what}, rootfs.diff_ids")))
            .collect()
    }

    /// The diff_ids, which must be one per layer of the image: `lister` (the manifest
    /// that lists the layers) names `layers` of them.
    pub(super) fn diff_ids_for(
        &self,
        what: &str,
        lister: &str,
        layers: usize,
    ) -> Result<Vec<Digest>, ImageError> {
        let diff_ids = self.diff_ids(what)?;
        if diff_ids.len() != layers {
            return Err(ImageError::Format(format!(
                "{lister} lists {layers} layers but {what} has {} diff_ids",
                diff_ids.len()
            )));
        }
        Ok(diff_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    #[test]
    fn config_gives_the_defaults_and_diff_ids() {
        // As Go's encoding/json writes it: compact, `<` escaped, nulls.
        let text = format!(
            r#"{{"architecture":"arm64","os":"linux","config":{{"User":"1000:1000","Env":["PATH=/usr/bin","A=\u003cb\u003e"],"Entrypoint":["/bin/app","--x"],"Cmd":["serve"],"WorkingDir":"/srv","Labels":null}},"rootfs":{{"type":"layers","diff_ids":["sha256:{HEX}"]}},"history":[{{"created_by":"x"}}]}}"#
        );
        let config: Config = parse(text.as_bytes(), "image config").unwrap();
        assert_eq!(
            config.defaults(),
            ImageDefaults {
                entrypoint: vec!["/bin/app".into(), "--x".into()],
                cmd: vec!["serve".into()],
                env: vec!["PATH=/usr/bin".into(), "A=<b>".into()],
                workdir: Some("/srv".into()),
                user: Some("1000:1000".into()),
            }
        );
        assert_eq!(
            config.diff_ids("c").unwrap(),
            vec![HEX.parse::<Digest>().unwrap()]
        );
    }

    #[test]
    fn config_without_run_settings() {
        let text = "{\n\t\"config\": {\"Entrypoint\": null, \"Cmd\": null, \"WorkingDir\": \"\", \"User\": \"\"},\n\t\"rootfs\": {\"type\": \"layers\", \"diff_ids\": []}\n}\n";
        let config: Config = parse(text.as_bytes(), "c").unwrap();
        assert_eq!(config.defaults(), ImageDefaults::default());
        let config: Config = parse(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#, "c").unwrap();
        assert_eq!(config.defaults(), ImageDefaults::default());
    }

    #[test]
    fn bad_documents_say_what_they_are() {
        let err = parse::<Config>(b"{\"config\":{}}", "image config blobs/sha256/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "image config blobs/sha256/x is not valid: missing field `rootfs`"
        );
        let err = parse::<Config>(b"\xff", "c").unwrap_err();
        assert!(err.to_string().starts_with("c is not UTF-8 text"), "{err}");
        let config: Config = parse(br#"{"rootfs":{"type":"other","diff_ids":[]}}"#, "c").unwrap();
        assert_eq!(
            config.diff_ids("c").unwrap_err().to_string(),
            "c: rootfs type \"other\" is not \"layers\""
        );
    }

    #[test]
    fn digests_must_be_sha256() {
        assert_eq!(sha256(&format!("sha256:{HEX}"), "d").unwrap().as_str(), HEX);
        assert_eq!(
            sha256("sha512:abcd", "layer 1").unwrap_err().to_string(),
            "layer 1: digest \"sha512:abcd\" is not sha256; berth verifies sha256 digests only"
        );
        assert_eq!(
            sha256("sha256:ABCD", "layer 1").unwrap_err().to_string(),
            "layer 1: digest \"sha256:ABCD\" is not 64 lower-case hex digits"
        );
    }

    #[test]
    fn descriptors_and_indexes() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{HEX}","size":528,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        );
        let index: Index = parse(text.as_bytes(), "index.json").unwrap();
        let d = &index.manifests[0];
        assert_eq!(d.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(d.size, 528);
        let p = d.platform.as_ref().unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm", Some("v7"))
        );
        let err =
            parse::<Descriptor>(br#"{"digest":"sha256:x","size":-1}"#, "layer 2").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("layer 2 is not valid: size: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn docker_manifest() {
        let text = format!(
            r#"[{{"Config":"{HEX}.json","RepoTags":["gw:1.0"],"Layers":["{HEX}/layer.tar","b/layer.tar"]}}]"#
        );
        let images: Vec<DockerImage> = parse(text.as_bytes(), "manifest.json").unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].config, format!("{HEX}.json"));
        assert_eq!(images[0].repo_tags, Some(vec!["gw:1.0".to_owned()]));
        assert_eq!(
            images[0].layers,
            vec![format!("{HEX}/layer.tar"), "b/layer.tar".into()]
        );
        let none: Vec<DockerImage> = parse(b"[]\n", "manifest.json").unwrap();
        assert!(none.is_empty());
    }
}
