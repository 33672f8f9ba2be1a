# criu-plugin/: lazypages_plugin.so, a CRIU plugin that starts `lazypages daemon` when a
# `criu restore --lazy-pages` finds none listening in its work dir (docs/runc.md).
#
# Built against Debian's /usr/include/criu/criu-plugin.h (package criu). Never sanitized:
# criu (not built with ASan) dlopen()s it. It finds the daemon through LAZYPAGES_BIN, else
# $(BINDIR)/lazypages (compiled in), else PATH.
#
# make install puts it in $(CRIU_PLUGIN_DIR) (default $(LIBDIR)/criu). Debian's criu loads
# plugins from /usr/lib/criu/ unless given --libdir DIR (or CRIU_LIBS_DIR=DIR): install with
# PREFIX=/usr, or CRIU_PLUGIN_DIR=/usr/lib/criu, to have it loaded without either.

CRIU_PLUGIN := $(B)/criu-plugin/lazypages_plugin.so
CRIU_PLUGIN_DIR ?= $(LIBDIR)/criu
CRIU_PLUGIN_CFLAGS := -O2 -g -std=gnu11 -D_GNU_SOURCE -fPIC $(WARN) -MMD -MP \
	-DLP_BINDIR='"$(BINDIR)"'

# The compiled-in bindir: rebuilt when BINDIR changes (make install PREFIX=/usr after make).
CRIU_PLUGIN_BINDIR := $(B)/criu-plugin/bindir

$(CRIU_PLUGIN_BINDIR): criu-plugin-bindir-check
	@mkdir -p $(dir $@)
	@echo '$(BINDIR)' | cmp -s - $@ || echo '$(BINDIR)' >$@

.PHONY: criu-plugin-bindir-check
criu-plugin-bindir-check:

$(CRIU_PLUGIN): criu-plugin/lazypages_plugin.c $(CRIU_PLUGIN_BINDIR)
	@mkdir -p $(dir $@)
	$(CC) $(CRIU_PLUGIN_CFLAGS) -shared -o $@ $<

ALL += $(CRIU_PLUGIN)
INSTALL_EXTRA += install -D -m 0644 $(CRIU_PLUGIN) $(DESTDIR)$(CRIU_PLUGIN_DIR)/lazypages_plugin.so;

# criu-plugin/test/: the plugin's tests without CRIU (test/TESTS: criu-plugin). The harness
# exports what the plugin takes from the criu binary (-rdynamic) and dlopen()s the plugin.
CRIU_PLUGIN_HARNESS := $(B)/criu-plugin/harness

$(CRIU_PLUGIN_HARNESS): criu-plugin/test/harness.c
	@mkdir -p $(dir $@)
	$(CC) $(CRIU_PLUGIN_CFLAGS) -rdynamic -o $@ $< -ldl

ALL += $(CRIU_PLUGIN_HARNESS)
