SUMMARY = "Container supervisor for embedded and edge Linux, small enough to be PID 1"
DESCRIPTION = "berth runs every app of a device in its own namespaces under cgroup \
limits, from verified images, health-checks it and restarts it. One static binary; \
it can be the init of the image."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# Where berth's repository is: set BERTH_GIT_URI and SRCREV (a commit id) in
# local.conf or a bbappend, e.g.
#   BERTH_GIT_URI = "git://git.example.com/berth.git;protocol=https;branch=main"
#   SRCREV:pn-berth = "0123456789abcdef0123456789abcdef01234567"
BERTH_GIT_URI ??= "git://git.example.com/berth.git;protocol=https;branch=main"
SRC_URI = "${BERTH_GIT_URI}"
SRCREV ??= "${AUTOREV}"
PV = "0.1.0+git"
# Yocto 5.1 (styhead) and later unpack into ${UNPACKDIR}: use S = "${UNPACKDIR}/git".
S = "${WORKDIR}/git"

# cargo: cargo build --frozen --release for the machine's Rust target, with the
# crates of berth-crates.inc fetched by bitbake (regenerate it after a Cargo.lock
# change with `bitbake -c update_crates berth`, or in the berth tree with
# `BERTH_BLESS=1 cargo test --test targets`).
inherit cargo cargo-update-recipe-crates update-alternatives
require berth-crates.inc

# Only the berth binary (not the benches).
CARGO_BUILD_FLAGS:append = " --bin berth"
# Cargo.toml's release profile strips the binary; leave that to Yocto, which splits
# the debug information into berth-dbg (and would stop at "already-stripped").
export CARGO_PROFILE_RELEASE_STRIP = "false"

# PACKAGECONFIG options:
#   static    link berth statically (-C target-feature=+crt-static): no dependency
#             on the image's C library (musl machines are static anyway)
#   init      berth is /sbin/init (through update-alternatives); the kernel starts
#             it with no arguments, and berth as PID 1 without arguments does what
#             `berth run` does. Its berth.yaml gets the host name BERTH_HOSTNAME.
#   modprobe  berth is /sbin/modprobe (low priority: kmod's or busybox's win), for
#             images with no other module tools
#
# berth as the init system of an image, in local.conf or the distro configuration:
#   INIT_MANAGER = "none"
#   VIRTUAL-RUNTIME_init_manager = "berth"
#   PACKAGECONFIG:append:pn-berth = " init static"
# packagegroup-core-boot then puts berth in the image as its init manager.
PACKAGECONFIG ??= ""
PACKAGECONFIG[static] = ""
PACKAGECONFIG[init] = ""
PACKAGECONFIG[modprobe] = ""

RUSTFLAGS:append = "${@bb.utils.contains('PACKAGECONFIG', 'static', ' -C target-feature=+crt-static', '', d)}"

BERTH_HOSTNAME ??= "${MACHINE}"

do_install() {
    install -D -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/berth ${D}${base_sbindir}/berth
    install -d -m 0755 ${D}${sysconfdir}/berth/apps.d
    install -m 0644 ${S}/targets/berth.yaml ${D}${sysconfdir}/berth/berth.yaml
    if ${@bb.utils.contains('PACKAGECONFIG', 'init', 'true', 'false', d)} && [ -n "${BERTH_HOSTNAME}" ]; then
        printf 'hostname: "%s"\n' "${BERTH_HOSTNAME}" >> ${D}${sysconfdir}/berth/berth.yaml
    fi
}

FILES:${PN} += "${base_sbindir}/berth ${sysconfdir}/berth"
CONFFILES:${PN} = "${sysconfdir}/berth/berth.yaml"

ALTERNATIVE:${PN} = "${@bb.utils.contains('PACKAGECONFIG', 'init', 'init', '', d)} \
                     ${@bb.utils.contains('PACKAGECONFIG', 'modprobe', 'modprobe', '', d)}"
ALTERNATIVE_LINK_NAME[init] = "${base_sbindir}/init"
ALTERNATIVE_TARGET[init] = "${base_sbindir}/berth"
# High, so that with PACKAGECONFIG "init" berth is the image's /sbin/init.
ALTERNATIVE_PRIORITY[init] = "400"
ALTERNATIVE_LINK_NAME[modprobe] = "${base_sbindir}/modprobe"
ALTERNATIVE_TARGET[modprobe] = "${base_sbindir}/berth"
ALTERNATIVE_PRIORITY[modprobe] = "10"
