//! The device cgroup: which device nodes an app may create (`m`), read (`r`) and
//! write (`w`). Without it, an app with CAP_MKNOD (or an image carrying device nodes,
//! `images.allow_devices`) reaches every host device, e.g. `mknod c 1 11` gives it
//! the host's `/dev/kmsg`.
//!
//! Every app gets the same shape of list: everything denied, then the standard set
//! ([`standard`]: the nodes berth itself puts in the app's `/dev`, and the
//! pseudo-terminals of its own devpts), then one rule per node of the manifest's
//! `devices:`. On cgroup v1 the list is written to `devices.deny` / `devices.allow`
//! ([`v1_lines`]); on v2, where the controller does not exist, it becomes an eBPF
//! program attached to the app's cgroup ([`bpf`]).
//!
//! Unlike runc and Docker, berth does not add `c *:* m` / `b *:* m` (mknod of any
//! node, opening still refused). They keep it so that image builds and package
//! managers running in a container can create nodes; berth's apps run images built
//! elsewhere, and a node planted in a writable layer or a shared volume would still
//! open for whoever reaches it from outside the app's cgroup (a host process, a backup,
//! another app with a different list). The only nodes an app can create are those of
//! its own list, which berth needs to create them in the app's `/dev`.

pub mod bpf;

use std::fmt;
use std::path::Path;

use super::{CgroupError, Result};

/// Block or character device; `All` matches both (only in v1's `a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Char,
    Block,
    All,
}

/// The accesses a rule grants, as v1 writes them: `r`, `w`, `m` (mknod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);

    /// The bits in the kernel's order (`BPF_DEVCG_ACC_*`: mknod 1, read 2, write 4).
    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    pub const fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (bit, letter) in [
            (Access::READ, "r"),
            (Access::WRITE, "w"),
            (Access::MKNOD, "m"),
        ] {
            if self.contains(bit) {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

/// One allow rule; `None` as major or minor is the wildcard `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Type,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl Rule {
    /// All accesses to the character device `major:minor`.
    pub const fn char(major: u32, minor: u32) -> Rule {
        Rule {
            kind: Type::Char,
            major: Some(major),
            minor: Some(minor),
            access: Access::ALL,
        }
    }

    /// All accesses to one host node.
    pub fn node(block: bool, major: u32, minor: u32) -> Rule {
        Rule {
            kind: if block { Type::Block } else { Type::Char },
            major: Some(major),
            minor: Some(minor),
            access: Access::ALL,
        }
    }

    /// Whether the rule grants `access` to the device `kind major:minor` (the
    /// semantics both backends implement; the BPF tests check the program against it).
    pub fn allows(&self, kind: Type, major: u32, minor: u32, access: Access) -> bool {
        (self.kind == Type::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && self.access.contains(access)
    }
}

/// The v1 text of a rule: `c 1:3 rwm`, `c 136:* rwm`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = match self.kind {
            Type::Char => 'c',
            Type::Block => 'b',
            Type::All => 'a',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        write!(
            f,
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// The devices every app may use: null 1:3, zero 1:5, full 1:7, random 1:8,
/// urandom 1:9, tty 5:0, ptmx 5:2 and the pseudo-terminals of its devpts (136:*),
/// as in runc's and Docker's default list (which berth makes in each app's `/dev`).
pub const fn standard() -> [Rule; 8] {
    [
        Rule::char(1, 3),
        Rule::char(1, 5),
        Rule::char(1, 7),
        Rule::char(1, 8),
        Rule::char(1, 9),
        Rule::char(5, 0),
        Rule::char(5, 2),
        Rule {
            kind: Type::Char,
            major: Some(136),
            minor: None,
            access: Access::ALL,
        },
    ]
}

/// The full allow list of an app: the standard set, then `extra` (the manifest's
/// device nodes), each rule once.
pub fn rules(extra: &[Rule]) -> Vec<Rule> {
    let mut out = standard().to_vec();
    for rule in extra {
        if !out.contains(rule) {
            out.push(*rule);
        }
    }
    out
}

/// What v1 writes, in order: `a` to `devices.deny` (nothing is allowed any more, the
/// parent's list notwithstanding), then each rule to `devices.allow`.
pub fn v1_lines(rules: &[Rule]) -> Vec<(&'static str, String)> {
    let mut out = vec![("devices.deny", "a".to_owned())];
    out.extend(rules.iter().map(|r| ("devices.allow", r.to_string())));
    out
}

/// Writes `rules` into the v1 devices cgroup `dir` (before any process joins it):
/// each file opened once and each rule one `write` of its own (the kernel takes one
/// rule per write), not one open per rule.
pub fn apply_v1(app: &str, dir: &Path, rules: &[Rule]) -> Result<()> {
    use std::io::Write;
    let mut open: Option<(&str, std::fs::File)> = None;
    for (file, line) in v1_lines(rules) {
        let path = dir.join(file);
        let refused = |e: std::io::Error| {
            CgroupError::Refused(format!(
                "{app}: cannot set the device cgroup rule {line:?} in {}: write {line:?} to {}: {e}",
                dir.display(),
                path.display()
            ))
        };
        let out = match &mut open {
            Some((name, out)) if *name == file => out,
            _ => {
                let out = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(refused)?;
                &mut open.insert((file, out)).1
            }
        };
        out.write_all(line.as_bytes()).map_err(refused)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_rules_read_as_v1_writes_them() {
        let lines: Vec<String> = standard().iter().map(Rule::to_string).collect();
        assert_eq!(
            lines,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
        let partial = Rule {
            kind: Type::Block,
            major: None,
            minor: Some(4),
            access: Access::READ.union(Access::MKNOD),
        };
        assert_eq!(partial.to_string(), "b *:4 rm");
    }

    #[test]
    fn v1_denies_everything_first_then_allows_each_rule_once() {
        let list = rules(&[Rule::node(false, 188, 0), Rule::char(1, 3)]);
        let lines = v1_lines(&list);
        assert_eq!(lines.first(), Some(&("devices.deny", "a".to_owned())));
        assert_eq!(lines.len(), 1 + 8 + 1);
        assert_eq!(
            lines.last(),
            Some(&("devices.allow", "c 188:0 rwm".to_owned()))
        );
        assert_eq!(lines.iter().filter(|(_, l)| l == "c 1:3 rwm").count(), 1);
    }

    #[test]
    fn kmsg_and_disks_are_outside_the_standard_set() {
        let list = rules(&[]);
        let allowed =
            |kind, major, minor, access| list.iter().any(|r| r.allows(kind, major, minor, access));
        // /dev/kmsg (1:11), /dev/mem (1:1), the first disk (b 8:0), any mknod of them.
        for access in [Access::READ, Access::WRITE, Access::MKNOD] {
            assert!(!allowed(Type::Char, 1, 11, access));
            assert!(!allowed(Type::Char, 1, 1, access));
            assert!(!allowed(Type::Block, 8, 0, access));
            assert!(
                !allowed(Type::Block, 1, 3, access),
                "block 1:3 is not /dev/null"
            );
        }
        assert!(allowed(Type::Char, 1, 3, Access::ALL));
        assert!(allowed(Type::Char, 136, 42, Access::WRITE));
        assert!(!allowed(Type::Char, 137, 0, Access::READ));
    }

    #[test]
    fn apply_v1_writes_into_the_directory_and_names_a_refused_rule() {
        let dir = std::env::temp_dir().join(format!("berth-devices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        apply_v1("gw", &dir, &standard()).unwrap();
        // One open per file, one write per rule: a plain file holds them all.
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "c 1:3 rwmc 1:5 rwmc 1:7 rwmc 1:8 rwmc 1:9 rwmc 5:0 rwmc 5:2 rwmc 136:* rwm"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.deny")).unwrap(),
            "a"
        );
        let missing = dir.join("absent");
        let e = apply_v1("gw", &missing, &standard())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "gw: cannot set the device cgroup rule \"a\" in {}: write \"a\" to {}/devices.deny: ",
                missing.display(),
                missing.display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
