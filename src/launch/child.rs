//! The launched child, from `clone` to `execve`: one linear function.
//!
//! Runs in a copy of the supervisor made by `clone` without fork handlers, so it
//! allocates nothing and touches no lock: everything it needs is in the [`Plan`],
//! built before the clone. A failing step is sent to the parent as a
//! [`Report`](super::channel::Report) and the child exits: 125 for a setup step, 127
//! when the program is not found, 126 when it cannot be executed (the shell's codes).

use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};

use libc::c_char;

use super::channel::{self, Step};
use super::plan::Plan;
use super::rootfs;
use super::sandbox::At;
use crate::sys::{self, Error};

/// Exit status of a child whose setup failed before exec.
pub const EXIT_SETUP: i32 = 125;
/// Exit status when the program exists but cannot be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// Exit status when the program is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// The exit status of a child that failed at `step` with `errno`.
pub fn exit_status(step: Step, errno: i32) -> i32 {
    match (step, errno) {
        (Step::Exec, libc::ENOENT | libc::ENOTDIR) => EXIT_NOT_FOUND,
        (Step::Exec, _) => EXIT_CANNOT_EXEC,
        _ => EXIT_SETUP,
    }
}

/// What the child gets besides the plan: descriptors and ready-made pointer arrays.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    /// The child's end of the channel (close-on-exec).
    pub channel: RawFd,
    /// stdin (`/dev/null`), stdout and stderr (pipes to the supervisor).
    pub stdio: [RawFd; 3],
    pub argv: &'a [*const c_char],
    pub envp: &'a [*const c_char],
    /// `init: true`: the sealed reaper program and its argv.
    pub reaper: Option<(RawFd, &'a [*const c_char])>,
    /// Whether the kernel has `openat2`.
    pub openat2: bool,
    /// Enter the root by moving it over `/` instead of `pivot_root` (as from an
    /// initramfs).
    pub move_root: bool,
    /// cgroup v1: the app's `tasks` files to join by writing `0` (see
    /// [`Cgroup::tasks`](super::Cgroup::tasks)); empty when the parent joins.
    pub cgroup_tasks: &'a [RawFd],
}

/// The child's whole life: set up, exec, or report the failed step and exit.
pub fn run(inputs: &Inputs) -> ! {
    let Err((step, error)) = setup(inputs);
    channel::report(inputs.channel, step, error);
    sys::process::exit(exit_status(step, error.errno))
}

/// The setup, in the order of STYLE.md (habit 5). The pid and user namespaces exist
/// (clone made them), and the parent has written the id maps and, unless the child
/// does it itself (cgroup v1), joined the cgroup before sending the go; the child
/// makes its other namespaces itself.
fn setup(i: &Inputs) -> Result<Infallible, (Step, Error)> {
    let plan = i.plan;
    // 1. Wait for the parent: until it has written the uid/gid maps, this process has
    //    no ids in its user namespace, and until it has joined the cgroup, what it
    //    allocates would be charged to the supervisor.
    let lower = channel::wait_go(i.channel).at(Step::Wait)?;
    //    cgroup v1: join the app's cgroups now, before anything is allocated. The
    //    descriptors were opened by the supervisor, whose credentials the kernel
    //    checks, so this works from a user namespace without mapped ids too.
    //    (`close_except` below closes them, before any path of the image is opened.)
    for &tasks in i.cgroup_tasks {
        sys::fd::write_all(tasks, b"0").at(Step::Cgroup)?;
    }
    //    The namespaces clone did not make (clone made only the pid namespace, whose
    //    first process this must be, and the user namespace, whose maps the parent
    //    wrote): mount, UTS, IPC, network, in one call. Made here rather than by the
    //    parent, so that their cost (a network namespace is most of it) is paid on
    //    this core while the supervisor goes on with the next launch, and only now,
    //    in the app's cgroup, so that their kernel memory is charged to the app.
    //    In a user namespace they belong to it, as with clone. Its own cgroup
    //    namespace comes in the same call, rooted at the cgroup it is now in: the
    //    app sees its cgroup as `/` and nothing of the host's tree (not its path,
    //    not its siblings), and cannot move itself out through a cgroupfs it mounts
    //    (made at clone time it would be rooted at the supervisor's cgroup instead).
    sys::ns::unshare(plan.unshare_flags).at(Step::Namespaces)?;
    // 2. Signals first, so nothing of the supervisor's signalfd setup leaks into the
    //    app; then the standard descriptors.
    sys::signal::reset_all().at(Step::Signals)?;
    // Its own session: a Ctrl-C on berth's terminal, or a signal to berth's process
    // group, must not reach the apps; berth stops them itself, in order.
    sys::process::setsid().at(Step::Signals)?;
    let [stdin, stdout, stderr] = i.stdio;
    sys::fd::dup_to(stdin, 0).at(Step::Stdio)?;
    sys::fd::dup_to(stdout, 1).at(Step::Stdio)?;
    sys::fd::dup_to(stderr, 2).at(Step::Stdio)?;
    //    Then every descriptor of the supervisor's is closed but what the setup
    //    still needs (the channel, the reaper program, the idmapped image until it
    //    is attached): from here on the child opens paths the image controls, and a
    //    cgroup or directory descriptor of the host (clone3's cgroup among them)
    //    would be a way out of the new root (CVE-2024-21626).
    let lower_fd = lower.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    let mut keep = [
        0,
        1,
        2,
        i.channel,
        i.reaper.map_or(-1, |(fd, _)| fd),
        lower_fd,
    ];
    sys::fd::close_except(&mut keep);
    if plan.user_ns {
        // Become the namespace's root: until now this process kept the host ids it
        // was cloned with (which the new namespace does not map), so what it creates
        // and may open would still be judged as the host's root without privilege.
        sys::ids::set_ids(0, 0).at(Step::Ids)?;
    }
    if plan.net_ns {
        sys::net::loopback_up().at(Step::Loopback)?;
    }
    // 3. Mounts. Nothing may propagate back to the host: make every mount private
    //    before the first new one.
    sys::mount::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .at(Step::Propagation)?;
    if plan.user_ns {
        // The image, idmapped through our user namespace by the parent (it could
        // not be done from in here: the image's filesystem belongs to the host).
        sys::mount::attach_tree(lower_fd, &plan.lower).at(Step::Lower)?;
        drop(lower);
    }
    sys::mount::mount(
        Some(c"overlay"),
        &plan.root,
        Some(c"overlay"),
        0,
        Some(&plan.overlay),
    )
    .at(Step::Overlay)?;
    let root = sys::fs::openat(
        libc::AT_FDCWD,
        &plan.root,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .at(Step::OpenRoot)?;
    for (n, op) in plan.ops.iter().enumerate() {
        let step = Step::Mount(u32::try_from(n).unwrap_or(u32::MAX));
        rootfs::apply(root.as_raw_fd(), op, i.openat2).at(step)?;
    }
    // 4. Enter the new root; the old one is detached (or, from an initramfs,
    //    moved under).
    rootfs::enter(root.as_raw_fd(), i.move_root).at(Step::PivotRoot)?;
    drop(root);
    if plan.readonly_root {
        rootfs::root_read_only().at(Step::ReadOnlyRoot)?;
    }
    // 5. Host name: only in our own UTS namespace (else it would rename the host).
    if plan.uts_ns {
        sys::ns::sethostname(plan.hostname.to_bytes()).at(Step::Hostname)?;
    }
    // 6. Resource limits, groups, gid, uid, capabilities: the app's sandbox, the
    //    same one every exec probe enters (see `sandbox`).
    plan.sandbox.become_app()?;
    // 7. The working directory, as the app's user (so a directory it may not enter
    //    is refused here, as the kernel would refuse the app), opened inside the
    //    new root with no magic link followed, then `getcwd` checks the kernel sees
    //    it inside: a `/proc/self/fd/N` of a host descriptor would otherwise leave
    //    the app outside its root (CVE-2024-21626).
    rootfs::enter_workdir(&plan.sandbox.workdir, i.openat2).at(Step::Workdir)?;
    // 8. No descriptor but 0, 1, 2 reaches the app. Close-on-exec rather than close,
    //    so the channel stays open until the exec itself succeeds.
    sys::fd::cloexec_from(3).at(Step::CloseFds)?;
    // 9. no_new_privs, then the seccomp filter (which needs it), last before exec so
    //    that nothing of the setup runs under the filter.
    plan.sandbox.confine()?;
    // 10. Exec: the reaper (which forks and execs the app itself), or the app, trying
    //     each PATH candidate as execvp does.
    if let Some((program, argv)) = i.reaper {
        // The reaper keeps the channel across its exec (it reports the app's exec).
        sys::fd::dup_to(i.channel, i.channel).at(Step::Exec)?;
        return Err((Step::Exec, sys::process::execve_fd(program, argv, i.envp)));
    }
    let mut failure = Error::new("execve", libc::ENOENT);
    for candidate in &plan.exec.candidates {
        match sys::process::execve(candidate, i.argv, i.envp) {
            Error {
                errno: libc::ENOENT | libc::ENOTDIR,
                ..
            } => {}
            e @ Error {
                errno: libc::EACCES,
                ..
            } => failure = e,
            other => return Err((Step::Exec, other)),
        }
    }
    Err((Step::Exec, failure))
}
