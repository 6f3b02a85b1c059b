# Stand-ins for the parts of Buildroot that berth/berth.mk relies on, so that
# targets/buildroot/check can run the package's own make fragments without a
# Buildroot tree. They mirror, for a target package with a local source:
#   support/misc/utils.mk     qstrip, UPPERCASE, sep
#   package/pkg-utils.mk      pkgdir, pkgname
#   package/pkg-cargo.mk      PKG_CARGO_ENV, the default cargo build command
#   package/pkg-generic.mk    the rsync, build and install-target steps and hooks
# The including makefile (written by targets/buildroot/check) sets the paths and the
# configuration (BR2_* symbols) first.

SHELL := /bin/bash
INSTALL := /usr/bin/install
RSYNC_VCS_EXCLUSIONS = --exclude .svn --exclude .git --exclude .hg --exclude .bzr --exclude CVS

qstrip = $(strip $(subst ",,$(1)))
UPPERCASE = $(shell printf '%s' '$(1)' | tr 'a-z.-' 'A-Z__')
define sep


endef
pkgdir = $(dir $(lastword $(MAKEFILE_LIST)))
pkgname = $(lastword $(subst /, ,$(pkgdir)))

TARGET_MAKE_ENV = PATH="$(PATH)"
TARGET_CONFIGURE_OPTS = \
	AR="$(TARGET_CROSS)ar" \
	CC="$(TARGET_CROSS)gcc" \
	CXX="$(TARGET_CROSS)g++" \
	LD="$(TARGET_CROSS)ld" \
	STRIP="$(TARGET_CROSS)strip"

# As pkg-cargo.mk sets it for target packages.
PKG_CARGO_ENV = \
	CARGO_HOME=$(BR_CARGO_HOME) \
	__CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS="nightly" \
	CARGO_UNSTABLE_HOST_CONFIG="true" \
	CARGO_UNSTABLE_TARGET_APPLIES_TO_HOST="true" \
	CARGO_TARGET_APPLIES_TO_HOST="false" \
	CARGO_BUILD_TARGET="$(RUSTC_TARGET_NAME)" \
	CARGO_HOST_RUSTFLAGS="" \
	CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_LINKER=$(notdir $(TARGET_CROSS))gcc
ifeq ($(NORMALIZED_ARCH),arm)
PKG_CARGO_ENV += \
	CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_RUSTFLAGS="-Clink-arg=-Wl,--allow-multiple-definition"
endif

# $(1): lower-case package name, $(2): upper-case name.
define inner-cargo-package
$(2)_PKGDIR := $(pkgdir)
$(2)_SUBDIR ?=
ifeq ($$($(2)_SITE_METHOD),local)
$(2)_OVERRIDE_SRCDIR ?= $$($(2)_SITE)
endif
ifeq ($$($(2)_OVERRIDE_SRCDIR),)
$$(error targets/buildroot/check.mk: only local sources are supported, not $(1)'s $$($(2)_SITE_METHOD))
endif
$(2)_VERSION := custom
$(2)_DIR := $$(BUILD_DIR)/$(1)-$$($(2)_VERSION)
$(2)_SRCDIR := $$($(2)_DIR)/$$($(2)_SUBDIR)

ifndef $(2)_BUILD_CMDS
define $(2)_BUILD_CMDS
	cd $$($(2)_SRCDIR) && \
	$$(TARGET_MAKE_ENV) \
		$$(TARGET_CONFIGURE_OPTS) \
		$$(PKG_CARGO_ENV) \
		$$($(2)_CARGO_ENV) \
		cargo build \
			--offline \
			$$(if $$(BR2_ENABLE_DEBUG),,--release) \
			--manifest-path Cargo.toml \
			--locked \
			$$($(2)_CARGO_BUILD_OPTS)
endef
endif

.PHONY: $(1)
$(1): $$($(2)_DIR)/.stamp_target_installed

$$($(2)_DIR)/.stamp_rsynced:
	@mkdir -p $$(@D)
	rsync -au --chmod=u=rwX,go=rX $$($(2)_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS) $$(RSYNC_VCS_EXCLUSIONS) $$(call qstrip,$$($(2)_OVERRIDE_SRCDIR))/ $$(@D)
	$$(foreach hook,$$($(2)_POST_RSYNC_HOOKS),$$(call $$(hook))$$(sep))
	@touch $$@

$$($(2)_DIR)/.stamp_built: $$($(2)_DIR)/.stamp_rsynced
	$$(foreach hook,$$($(2)_PRE_BUILD_HOOKS),$$(call $$(hook))$$(sep))
	+$$($(2)_BUILD_CMDS)
	$$(foreach hook,$$($(2)_POST_BUILD_HOOKS),$$(call $$(hook))$$(sep))
	@touch $$@

$$($(2)_DIR)/.stamp_target_installed: $$($(2)_DIR)/.stamp_built
	@mkdir -p $$(TARGET_DIR)
	$$(foreach hook,$$($(2)_PRE_INSTALL_TARGET_HOOKS),$$(call $$(hook))$$(sep))
	+$$($(2)_INSTALL_TARGET_CMDS)
	$$(foreach hook,$$($(2)_POST_INSTALL_TARGET_HOOKS),$$(call $$(hook))$$(sep))
	@touch $$@
endef

cargo-package = $(call inner-cargo-package,$(pkgname),$(call UPPERCASE,$(pkgname)))

# What a BR2_EXTERNAL's external.mk is included for.
include $(BR2_EXTERNAL_BERTH_PATH)/external.mk
