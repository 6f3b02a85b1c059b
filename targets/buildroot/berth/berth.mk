################################################################################
#
# berth
#
################################################################################

BERTH_VERSION = 0.1.0
BERTH_LICENSE = Apache-2.0

ifeq ($(BR2_PACKAGE_BERTH_SITE_GIT),y)
BERTH_VERSION = $(call qstrip,$(BR2_PACKAGE_BERTH_GIT_VERSION))
BERTH_SITE = $(call qstrip,$(BR2_PACKAGE_BERTH_GIT_URL))
BERTH_SITE_METHOD = git
else
# The berth tree this BR2_EXTERNAL (targets/buildroot) is part of.
BERTH_SITE = $(realpath $(BR2_EXTERNAL_BERTH_PATH)/../..)
BERTH_SITE_METHOD = local
endif

# A local tree (or BERTH_OVERRIDE_SRCDIR) is rsynced, not downloaded, so the
# download step's vendoring of the crates does not happen: fetch them into
# Buildroot's cargo home, where the --offline build finds them. The tree's own
# build output is not copied.
BERTH_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target
define BERTH_CARGO_FETCH
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) \
		cargo fetch --locked --manifest-path Cargo.toml
endef
BERTH_POST_RSYNC_HOOKS += BERTH_CARGO_FETCH

BERTH_CARGO_BUILD_OPTS = --bin berth

# Rust flags for the target. Setting this variable replaces the one
# pkg-cargo.mk sets on ARM, so its --allow-multiple-definition is kept here.
# The linker scripts (paths relative to the source tree, where cargo runs
# rustc) drop unwind tables a panic = "abort" berth never reads; see
# targets/cargo-config.toml, which these settings follow.
BERTH_RUSTFLAGS =
ifeq ($(BR2_PACKAGE_BERTH_STATIC),y)
BERTH_RUSTFLAGS += -C target-feature=+crt-static
endif
ifeq ($(NORMALIZED_ARCH),arm)
BERTH_RUSTFLAGS += -Clink-arg=-Wl,--allow-multiple-definition
BERTH_RUSTFLAGS += -C link-arg=-Ttargets/no-unwind-tables-arm.ld
endif
ifeq ($(BR2_PACKAGE_BERTH_RUST_LLD),y)
BERTH_RUSTFLAGS += -C link-arg=-Ttargets/no-unwind-tables.ld
ifeq ($(NORMALIZED_ARCH),x86_64)
BERTH_RUSTFLAGS += -C link-arg=--pack-dyn-relocs=relr
endif
BERTH_CARGO_ENV += CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_LINKER=rust-lld
endif
BERTH_CARGO_ENV += \
	CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_RUSTFLAGS="$(strip $(BERTH_RUSTFLAGS))"

# The build is pkg-cargo.mk's (cargo build --offline --release --locked, with
# Buildroot's target and linker); the install is not `cargo install`, which
# would put berth in /usr/bin.
BERTH_PROFILE_DIR = $(if $(BR2_ENABLE_DEBUG),debug,release)

BERTH_CONFIG_FILE = $(call qstrip,$(BR2_PACKAGE_BERTH_CONFIG_FILE))
BERTH_HOSTNAME = $(call qstrip,$(BR2_TARGET_GENERIC_HOSTNAME))

define BERTH_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/$(BERTH_PROFILE_DIR)/berth \
		$(TARGET_DIR)/sbin/berth
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/berth/apps.d
	$(INSTALL) -D -m 0644 $(or $(BERTH_CONFIG_FILE),$(@D)/targets/berth.yaml) \
		$(TARGET_DIR)/etc/berth/berth.yaml
endef

ifeq ($(BR2_PACKAGE_BERTH_INIT),y)
# The kernel runs /sbin/init with no arguments; berth as PID 1 without
# arguments is `berth run`.
define BERTH_INSTALL_INIT
	ln -sf berth $(TARGET_DIR)/sbin/init
endef
BERTH_POST_INSTALL_TARGET_HOOKS += BERTH_INSTALL_INIT
# As PID 1, berth sets the host name from its config (the default config only).
ifeq ($(BERTH_CONFIG_FILE),)
ifneq ($(BERTH_HOSTNAME),)
define BERTH_INSTALL_HOSTNAME
	printf 'hostname: "%s"\n' '$(BERTH_HOSTNAME)' >> $(TARGET_DIR)/etc/berth/berth.yaml
endef
BERTH_POST_INSTALL_TARGET_HOOKS += BERTH_INSTALL_HOSTNAME
endif
endif
endif

ifeq ($(BR2_PACKAGE_BERTH_MODPROBE),y)
define BERTH_INSTALL_MODPROBE
	ln -sf berth $(TARGET_DIR)/sbin/modprobe
endef
BERTH_POST_INSTALL_TARGET_HOOKS += BERTH_INSTALL_MODPROBE
endif

$(eval $(cargo-package))
