//! The kernel side of the event loop: one epoll set, a signalfd for the signals the
//! supervisor handles, and one timerfd armed for the earliest deadline. No threads, no
//! polling: with nothing due and nothing readable, `wait` sleeps in the kernel.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The signals the supervisor takes through its signalfd (blocked for the whole
/// process before any app is started; every launched child resets its mask).
pub const SIGNALS: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPWR,
];

fn cvt(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(ret)
    }
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor just returned by the kernel, owned by nobody.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The epoll set.
pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain integer argument.
        let fd = cvt(
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
            "epoll_create1",
        )?;
        Ok(Epoll(owned(fd)))
    }

    /// Watches `fd` for reading (and writing when `write`), reported with `token`.
    pub fn add(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        let events = if write { libc::EPOLLOUT } else { libc::EPOLLIN };
        let mut ev = libc::epoll_event {
            events: u32::try_from(events | libc::EPOLLRDHUP).unwrap_or(0),
            u64: token,
        };
        // SAFETY: `ev` is a valid event borrowed for the call.
        cvt(
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &raw mut ev) },
            "epoll_ctl add",
        )
        .map(drop)
    }

    /// Stops watching `fd` (closing it does too; this is for descriptors kept open).
    pub fn remove(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// Waits for events (EINTR is retried); returns the tokens that are ready.
    pub fn wait(&self, tokens: &mut Vec<u64>) -> io::Result<()> {
        // SAFETY: an all-zero epoll_event is a valid value of the plain C struct.
        let mut events = [unsafe { std::mem::zeroed::<libc::epoll_event>() }; 32];
        let len = libc::c_int::try_from(events.len()).unwrap_or(32);
        loop {
            // SAFETY: `events` is writable for `len` entries for the call.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), len, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            tokens.clear();
            tokens.extend(
                events
                    .iter()
                    .take(usize::try_from(n).unwrap_or(0))
                    .map(|e| e.u64),
            );
            return Ok(());
        }
    }
}

fn signal_set(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is valid; sigemptyset/sigaddset fill it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for &s in signals {
            libc::sigaddset(&raw mut set, s);
        }
        set
    }
}

/// Blocks [`SIGNALS`] (before anything else as PID 1, so none is lost during the
/// boot).
pub fn block_signals() -> io::Result<()> {
    let set = signal_set(&SIGNALS);
    // SAFETY: `set` is a valid set, read for the call.
    let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    cvt(ret, "block signals").map(drop)
}

/// Blocks [`SIGNALS`] and returns a signalfd for them.
pub fn signalfd() -> io::Result<OwnedFd> {
    let set = signal_set(&SIGNALS);
    // SAFETY: `set` is a valid set, read for the call.
    let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    cvt(ret, "block signals")?;
    // SAFETY: as above; -1 asks for a new descriptor.
    let ret = unsafe { libc::signalfd(-1, &raw const set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    let fd = cvt(ret, "signalfd")?;
    Ok(owned(fd))
}

/// A signal read from the signalfd, with what the kernel says of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: i32,
    /// `ssi_code`: how it was sent (`SI_USER` for kill, `SI_KERNEL`, `CLD_*`...).
    pub code: i32,
    /// `ssi_pid`: the sender, in berth's pid namespace (0 from an ancestor one).
    pub pid: u32,
}

/// Reads the pending signals from a signalfd.
pub fn read_signals(fd: &OwnedFd, out: &mut Vec<Received>) {
    out.clear();
    loop {
        // SAFETY: an all-zero siginfo is a valid value of the plain C struct.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes for the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
        if usize::try_from(n).ok() != Some(size) {
            return;
        }
        out.push(Received {
            signal: i32::try_from(info.ssi_signo).unwrap_or(0),
            code: info.ssi_code,
            pid: info.ssi_pid,
        });
    }
}

/// A monotonic timerfd, armed for one absolute deadline at a time.
pub struct Timer(OwnedFd);

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain integer arguments.
        let fd = cvt(
            unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
                )
            },
            "timerfd_create",
        )?;
        Ok(Timer(owned(fd)))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Arms for `deadline_ms` on the monotonic clock, or disarms with `None`.
    pub fn arm(&self, deadline_ms: Option<u64>) -> io::Result<()> {
        let mut spec: libc::itimerspec =
            // SAFETY: an all-zero itimerspec (disarmed) is a valid value.
            unsafe { std::mem::zeroed() };
        if let Some(ms) = deadline_ms {
            // A zero it_value disarms: the earliest deadline is at least 1 ns.
            let ms = ms.max(1);
            // time_t is 32 bits on some 32-bit targets: the deadline saturates there.
            spec.it_value.tv_sec = (ms / 1000).try_into().unwrap_or(libc::c_long::MAX as _);
            spec.it_value.tv_nsec = ((ms % 1000) * 1_000_000).try_into().unwrap_or(0);
        }
        // SAFETY: `spec` is valid and read for the call; no old value is asked for.
        cvt(
            unsafe {
                libc::timerfd_settime(
                    self.0.as_raw_fd(),
                    libc::TFD_TIMER_ABSTIME,
                    &raw const spec,
                    std::ptr::null_mut(),
                )
            },
            "timerfd_settime",
        )
        .map(drop)
    }

    /// Consumes an expiry.
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: `buf` is writable for 8 bytes for the call.
        unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}

/// Milliseconds on the monotonic clock (the timers' clock).
pub fn now_ms() -> u64 {
    // SAFETY: an all-zero timespec is valid; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is writable for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

/// Marks `fd` non-blocking.
pub fn nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) }, "fcntl F_GETFL")?;
    // SAFETY: plain integer arguments.
    cvt(
        unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) },
        "fcntl F_SETFL",
    )
    .map(drop)
}

/// Reaps one exited child: `Some((pid, status))`, or `None` when nothing is left.
pub fn reap() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: `status` is writable for the call.
    let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Makes this process the reaper of its orphaned descendants when it is not PID 1.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: plain integer arguments.
    cvt(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        "PR_SET_CHILD_SUBREAPER",
    )
    .map(drop)
}

/// Sends `signal` to `pid`.
pub fn signal(pid: i32, signal: i32) {
    // SAFETY: plain integer arguments.
    unsafe { libc::kill(pid, signal) };
}

/// `read(2)` into `buf`: the byte count (0 at end of file), or the error
/// (`WouldBlock` when a non-blocking descriptor has nothing).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length for the call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `write(2)` of `bytes`: how many were written.
pub fn write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is readable for its length for the call.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
