//! The process an app runs: the manifest's `command`, `env`, `workdir` and `user`, and
//! where it is silent, its image's defaults (OCI/docker config or `.berth-image.yaml`).
//! Pure apart from reading the image's `/etc/passwd` and `/etc/group` for user names.

use std::fs;
use std::path::Path;

use super::ImageDefaults;
use crate::manifest::Manifest;

/// `PATH` when neither the image nor the manifest sets one (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to exec, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub argv: Vec<String>,
    /// `NAME=value`, each name once, in order of first appearance.
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
}

/// Works out the app's process. `rootfs` is the image's unpacked root, read only to
/// turn a user or group name of the image's `User` into ids.
pub fn resolve(
    manifest: &Manifest,
    image: &ImageDefaults,
    rootfs: &Path,
) -> Result<Process, String> {
    let app = &manifest.name;
    let argv: Vec<String> = match &manifest.command {
        Some(command) => command
            .as_slice()
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        None => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(format!(
            "{app}: no command: the manifest sets none and the image has no Entrypoint or Cmd"
        ));
    }
    let mut env: Vec<String> = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={}", manifest.hostname.as_str()),
    ];
    for entry in &image.env {
        if entry.split_once('=').is_some_and(|(k, _)| !k.is_empty()) {
            set_env(&mut env, entry.clone());
        }
    }
    for (name, value) in &manifest.env {
        set_env(&mut env, format!("{}={}", name.as_str(), value.as_str()));
    }
    let workdir = match (&manifest.workdir, image.workdir.as_deref()) {
        (Some(dir), _) => dir.as_str().to_owned(),
        (None, Some(dir)) if dir.starts_with('/') => dir.to_owned(),
        (None, Some(dir)) if !dir.is_empty() => format!("/{dir}"),
        (None, _) => "/".to_owned(),
    };
    let (uid, gid) = match (manifest.user, image.user.as_deref()) {
        (Some(user), _) => (user.uid, user.gid),
        (None, Some(user)) if !user.is_empty() => {
            image_user(user, rootfs).map_err(|e| format!("{app}: image user {user:?}: {e}"))?
        }
        (None, _) => (0, 0),
    };
    refuse_proc(app.as_str(), &argv, &env, &workdir)?;
    Ok(Process {
        argv,
        env,
        workdir,
        uid,
        gid,
    })
}

/// Refuses a workdir or program under `/proc` (`/proc/self/fd/N`, `/proc/1/root`,
/// or a `PATH` entry there): such a path can lead out of the app's root through a
/// descriptor or a process of the host (CVE-2024-21626), and no app needs one.
fn refuse_proc(app: &str, argv: &[String], env: &[String], workdir: &str) -> Result<(), String> {
    let refuse = |what: &str, path: &str| {
        Err(format!(
            "{app}: {what} {path:?} is under /proc, which berth refuses from images and manifests"
        ))
    };
    if under_proc(workdir, "/") {
        return refuse("workdir", workdir);
    }
    let program = argv.first().map(String::as_str).unwrap_or_default();
    if program.contains('/') {
        if under_proc(program, workdir) {
            return refuse("program", program);
        }
        return Ok(());
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    match path.split(':').find(|dir| under_proc(dir, workdir)) {
        Some(dir) => refuse("PATH entry", dir),
        None => Ok(()),
    }
}

/// Whether `path` (absolute, or relative to `cwd`) is `/proc` or below, its `.` and
/// `..` read as the kernel would without symlinks.
pub fn under_proc(path: &str, cwd: &str) -> bool {
    let mut parts: Vec<&str> = Vec::new();
    let start = if path.starts_with('/') { "" } else { cwd };
    for part in start.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.first() == Some(&"proc")
}

/// Sets `NAME=value`, replacing an earlier value of the same name in place.
fn set_env(env: &mut Vec<String>, entry: String) {
    let name_len = entry.find('=').unwrap_or(entry.len());
    let same = |e: &String| e.get(..=name_len) == entry.get(..=name_len);
    match env.iter_mut().find(|e| same(e)) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// An OCI `User`: `uid`, `uid:gid`, `name`, `name:group`, `uid:group`, `name:gid`. A
/// user without a group gets its primary group from the image's /etc/passwd, else 0.
fn image_user(user: &str, rootfs: &Path) -> Result<(u32, u32), String> {
    let (user, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = || read_db(rootfs, "passwd");
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd()
                .ok()
                .and_then(|db| lookup(&db, |f| f.get(2) == Some(&user)).and_then(|f| field(&f, 3))),
        ),
        Err(_) => {
            let db = passwd()?;
            let entry = lookup(&db, |f| f.first() == Some(&user))
                .ok_or_else(|| format!("no user {user} in /etc/passwd"))?;
            (
                field(&entry, 2).ok_or("bad /etc/passwd line")?,
                field(&entry, 3),
            )
        }
    };
    let gid = match group {
        None => primary.unwrap_or(0),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let db = read_db(rootfs, "group")?;
                let entry = lookup(&db, |f| f.first() == Some(&group))
                    .ok_or_else(|| format!("no group {group} in /etc/group"))?;
                field(&entry, 2).ok_or("bad /etc/group line")?
            }
        },
    };
    Ok((uid, gid))
}

/// `user` as [`image_user`] takes it, looked up under `rootfs`, with its supplementary
/// groups: the gids of the `/etc/group` entries that list its name (the name given,
/// or the passwd name of a uid), at most `max_groups`. None for a uid without a name
/// or where there is no `/etc/group`. `berth exec -u` reads the app's files this way,
/// with the app's root as `rootfs`.
pub fn user_and_groups(
    user: &str,
    rootfs: &Path,
    max_groups: usize,
) -> Result<(u32, u32, Vec<u32>), String> {
    let (uid, gid) = image_user(user, rootfs)?;
    let given = user.split(':').next().unwrap_or_default();
    let name = if given.parse::<u32>().is_err() {
        Some(given.to_owned())
    } else {
        read_db(rootfs, "passwd").ok().and_then(|db| {
            lookup(&db, |f| f.get(2) == Some(&given))
                .and_then(|f| f.first().map(|n| (*n).to_owned()))
        })
    };
    let mut groups = Vec::new();
    let Some(name) = name else {
        return Ok((uid, gid, groups));
    };
    if fs::symlink_metadata(rootfs.join("etc/group")).is_err() {
        return Ok((uid, gid, groups));
    }
    for line in read_db(rootfs, "group")?.lines() {
        // name:password:gid:member,member...
        let mut fields = line.split(':').skip(2);
        let gid = fields.next().and_then(|g| g.parse().ok());
        let member = fields
            .next()
            .is_some_and(|m| m.split(',').any(|m| m == name));
        match gid {
            Some(g) if member && !groups.contains(&g) => groups.push(g),
            _ => {}
        }
    }
    if groups.len() > max_groups {
        return Err(format!("{name} is in more than {max_groups} groups"));
    }
    Ok((uid, gid, groups))
}

/// The largest `/etc/passwd` or `/etc/group` berth reads: far more than any image's
/// users need, and little enough for PID 1 to hold.
pub const MAX_DB_BYTES: u64 = 1024 * 1024;

/// Reads `/etc/NAME` of the image. The image is data from outside: the path is walked
/// from the image's root one component at a time without following a symbolic link
/// (one could lead to the host's own files), and the file must be a regular file of
/// at most [`MAX_DB_BYTES`] (a FIFO would block PID 1 forever, a huge file exhaust
/// its memory).
fn read_db(rootfs: &Path, name: &str) -> Result<String, String> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, SFlag, fstat};
    use std::io::Read as _;
    let path = format!("/etc/{name}");
    let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let open = |dir: &dyn std::os::fd::AsFd, part: &str, flags: OFlag| {
        openat(dir.as_fd(), part, flags | nofollow, Mode::empty()).map_err(|e| match e {
            nix::errno::Errno::ELOOP => format!("{path} is reached through a symbolic link"),
            // O_DIRECTORY and O_NOFOLLOW on a link: the kernel says "not a directory".
            nix::errno::Errno::ENOTDIR => {
                format!("{path} is reached through a symbolic link or a non-directory")
            }
            e => format!("cannot read {path}: {}", std::io::Error::from(e)),
        })
    };
    let root = fs::File::open(rootfs)
        .map_err(|e| format!("cannot open the image root {}: {e}", rootfs.display()))?;
    let etc = open(&root, "etc", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    // O_PATH opens neither a FIFO (which would block) nor a device (which could act):
    // the type is checked first, then the file reopened for reading.
    let file = open(&etc, name, OFlag::O_PATH)?;
    let stat = fstat(&file).map_err(|e| format!("cannot read {path}: {e}"))?;
    if stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() {
        return Err(format!("{path} is reached through a symbolic link"));
    }
    if stat.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
        return Err(format!("{path} is not a regular file"));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > MAX_DB_BYTES {
        return Err(format!(
            "{path} is {size} bytes, more than the {} MiB berth reads",
            MAX_DB_BYTES >> 20
        ));
    }
    let file = open(&etc, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
    let stat = fstat(&file).map_err(|e| format!("cannot read {path}: {e}"))?;
    if stat.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() {
        return Err(format!("{path} is not a regular file"));
    }
    let mut text = Vec::new();
    fs::File::from(file)
        .take(MAX_DB_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if text.len() as u64 > MAX_DB_BYTES {
        return Err(format!(
            "{path} is more than the {} MiB berth reads",
            MAX_DB_BYTES >> 20
        ));
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

fn lookup(db: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    db.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| matches(f))
}

fn field(fields: &[&str], i: usize) -> Option<u32> {
    fields.get(i).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn manifest(body: &str) -> Manifest {
        let text = format!(
            "name: web\nimage: {{ path: a.tar, sha256: {} }}\n{body}",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        let mut loaded = crate::manifest::load_texts([(PathBuf::from("apps.d/web.yaml"), text)]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.apps.remove(0)
    }

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/bin/server".into()],
            cmd: vec!["--port".into(), "80".into()],
            env: vec![
                "PATH=/opt/bin:/bin".into(),
                "MODE=image".into(),
                "KEEP=1".into(),
            ],
            workdir: Some("srv".into()),
            user: Some("www:web".into()),
        }
    }

    struct Root(PathBuf);
    impl Root {
        fn new(name: &str) -> Root {
            let d =
                std::env::temp_dir().join(format!("berth-process-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(d.join("etc")).unwrap();
            fs::write(
                d.join("etc/passwd"),
                "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/srv:/bin/false\n",
            )
            .unwrap();
            fs::write(d.join("etc/group"), "root:x:0:\nweb:x:80:\nwww:x:34:\n").unwrap();
            Root(d)
        }
    }
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_image_fills_in_what_the_manifest_leaves_out() {
        let root = Root::new("fill");
        let p = resolve(&manifest(""), &image(), &root.0).unwrap();
        assert_eq!(p.argv, ["/bin/server", "--port", "80"]);
        assert_eq!(
            p.env,
            ["PATH=/opt/bin:/bin", "HOSTNAME=web", "MODE=image", "KEEP=1"]
        );
        assert_eq!((p.workdir.as_str(), p.uid, p.gid), ("/srv", 33, 80));
    }

    #[test]
    fn the_manifest_wins_where_it_speaks() {
        let root = Root::new("wins");
        let m = manifest(
            "command: [/bin/sh, -c, \"exit 3\"]\nenv: { MODE: manifest, NEW: x }\nworkdir: /data\nuser: \"1000:1001\"\nhostname: front\n",
        );
        let p = resolve(&m, &image(), &root.0).unwrap();
        assert_eq!(p.argv, ["/bin/sh", "-c", "exit 3"]);
        assert_eq!(
            p.env,
            [
                "PATH=/opt/bin:/bin",
                "HOSTNAME=front",
                "MODE=manifest",
                "KEEP=1",
                "NEW=x"
            ]
        );
        assert_eq!((p.workdir.as_str(), p.uid, p.gid), ("/data", 1000, 1001));
    }

    #[test]
    fn paths_through_proc_are_refused() {
        let root = Root::new("proc");
        let image = |workdir: &str, entrypoint: &str| ImageDefaults {
            entrypoint: vec![entrypoint.into()],
            workdir: Some(workdir.into()),
            user: None,
            ..image()
        };
        let none = manifest("");
        let err = |m: &Manifest, i: &ImageDefaults| resolve(m, i, &root.0).err();
        assert_eq!(
            err(&none, &image("/proc/self/fd/7", "/bin/server")),
            Some("web: workdir \"/proc/self/fd/7\" is under /proc, which berth refuses from images and manifests".into())
        );
        assert_eq!(
            err(&none, &image("/srv/../../proc/1/cwd", "/bin/server")),
            Some("web: workdir \"/srv/../../proc/1/cwd\" is under /proc, which berth refuses from images and manifests".into())
        );
        assert_eq!(
            err(&none, &image("/", "/proc/self/fd/3")),
            Some("web: program \"/proc/self/fd/3\" is under /proc, which berth refuses from images and manifests".into())
        );
        assert_eq!(
            err(&none, &image("/", "../proc/self/exe")),
            Some("web: program \"../proc/self/exe\" is under /proc, which berth refuses from images and manifests".into())
        );
        assert_eq!(
            err(&manifest("workdir: /proc/self/fd/5\n"), &image("/", "/bin/server")),
            Some("web: workdir \"/proc/self/fd/5\" is under /proc, which berth refuses from images and manifests".into())
        );
        assert_eq!(
            err(&manifest("command: [sh]\nenv: { PATH: \"/bin:/proc/self/fd\" }\n"), &image("/", "x")),
            Some("web: PATH entry \"/proc/self/fd\" is under /proc, which berth refuses from images and manifests".into())
        );
        // Names that only look alike are fine.
        for (workdir, program) in [
            ("/procs", "/bin/server"),
            ("/srv/proc", "proc/x"),
            ("/", "/bin/proc"),
        ] {
            assert_eq!(
                err(&none, &image(workdir, program)),
                None,
                "{workdir} {program}"
            );
        }
    }

    #[test]
    fn users_with_their_supplementary_groups() {
        let root = Root::new("groups");
        fs::write(
            root.0.join("etc/group"),
            "root:x:0:\nweb:x:80:www,root\nwww:x:34:\nlog:x:4:syslog,www\nlog2:x:4:www\n",
        )
        .unwrap();
        let ids = |u: &str| user_and_groups(u, &root.0, 8);
        assert_eq!(ids("www"), Ok((33, 34, vec![80, 4])));
        assert_eq!(ids("33"), Ok((33, 34, vec![80, 4])), "a uid's passwd name");
        assert_eq!(ids("www:0"), Ok((33, 0, vec![80, 4])));
        assert_eq!(ids("1234"), Ok((1234, 0, vec![])), "a uid without a name");
        assert_eq!(ids("1234:5"), Ok((1234, 5, vec![])));
        assert_eq!(ids("bob"), Err("no user bob in /etc/passwd".to_owned()));
        assert_eq!(
            user_and_groups("www", &root.0, 1),
            Err("www is in more than 1 groups".to_owned())
        );
        fs::remove_file(root.0.join("etc/group")).unwrap();
        assert_eq!(ids("www"), Ok((33, 34, vec![])), "no /etc/group: none");
        std::os::unix::fs::symlink("/etc/group", root.0.join("etc/group")).unwrap();
        assert_eq!(
            ids("www"),
            Err("/etc/group is reached through a symbolic link".to_owned())
        );
    }

    #[test]
    fn users_by_id_or_name_and_the_errors() {
        let root = Root::new("users");
        let with_user = |u: &str| ImageDefaults {
            user: Some(u.into()),
            ..image()
        };
        let m = manifest("");
        let ids = |u: &str| resolve(&m, &with_user(u), &root.0).map(|p| (p.uid, p.gid));
        assert_eq!(ids("www"), Ok((33, 34)));
        assert_eq!(ids("33"), Ok((33, 34)));
        assert_eq!(ids("500"), Ok((500, 0)));
        assert_eq!(ids("500:7"), Ok((500, 7)));
        assert_eq!(ids("www:root"), Ok((33, 0)));
        assert_eq!(
            ids("nobody"),
            Err("web: image user \"nobody\": no user nobody in /etc/passwd".into())
        );
        assert_eq!(
            ids("www:staff"),
            Err("web: image user \"www:staff\": no group staff in /etc/group".into())
        );
        fs::remove_file(root.0.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.0.join("etc/passwd")).unwrap();
        assert_eq!(
            ids("root"),
            Err("web: image user \"root\": /etc/passwd is reached through a symbolic link".into())
        );
        // The type and the size are checked before anything is read.
        fs::remove_file(root.0.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(
            &root.0.join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert_eq!(
            ids("root"),
            Err("web: image user \"root\": /etc/passwd is not a regular file".into())
        );
        fs::remove_file(root.0.join("etc/passwd")).unwrap();
        let big = fs::File::create(root.0.join("etc/passwd")).unwrap();
        big.set_len(MAX_DB_BYTES + 1).unwrap();
        assert_eq!(
            ids("root"),
            Err(
                "web: image user \"root\": /etc/passwd is 1048577 bytes, more than the 1 MiB berth reads"
                    .into()
            )
        );
        fs::rename(root.0.join("etc"), root.0.join("etc.real")).unwrap();
        std::os::unix::fs::symlink("etc.real", root.0.join("etc")).unwrap();
        assert_eq!(
            ids("root"),
            Err("web: image user \"root\": /etc/passwd is reached through a symbolic link or a non-directory".into())
        );
        let none = ImageDefaults::default();
        assert_eq!(
            resolve(&m, &none, &root.0),
            Err(
                "web: no command: the manifest sets none and the image has no Entrypoint or Cmd"
                    .into()
            )
        );
        // An explicit 0:0 in the manifest wins over the image's user.
        let p = resolve(&manifest("user: \"0:0\"\n"), &image(), &root.0).unwrap();
        assert_eq!((p.uid, p.gid), (0, 0));
        let p = resolve(&manifest("command: [/app]\n"), &none, &root.0).unwrap();
        assert_eq!(
            (p.env[0].as_str(), p.workdir.as_str(), p.uid, p.gid),
            (format!("PATH={DEFAULT_PATH}").as_str(), "/", 0, 0)
        );
    }
}
