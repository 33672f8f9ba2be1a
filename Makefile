# lazypages: post-copy restore of CRIU checkpoints on userfaultfd.
#
#   make            build everything into build/
#   make test       run the test suite (native tests, models, VM tier when present)
#   make SAN=1 ...  the same with AddressSanitizer + UBSan, into build-san/
#   make install    PREFIX=/usr/local DESTDIR=

.DEFAULT_GOAL := all

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
DESTDIR ?=

CC ?= gcc
ifeq ($(SAN),1)
B ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B ?= build
SANFLAGS :=
endif

PROTOC_C ?= protoc-c
PB_CFLAGS := $(shell pkg-config --cflags libprotobuf-c 2>/dev/null)
PB_LIBS := $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)

WARN := -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE -pthread -MMD -MP
CPPFLAGS += -Iimages -Ilazy-pages -I$(B)/proto $(PB_CFLAGS)
LDFLAGS += $(SANFLAGS) -pthread
LDLIBS += $(PB_LIBS)

# --- images: protobuf code and the image library --------------------------------------
PROTOS := $(wildcard images/proto/*.proto)
PB_C := $(patsubst images/proto/%.proto,$(B)/proto/%.pb-c.c,$(PROTOS))
PB_H := $(PB_C:.c=.h)
PB_O := $(PB_C:.c=.o)

$(B)/proto/%.pb-c.c $(B)/proto/%.pb-c.h: images/proto/%.proto
	@mkdir -p $(B)/proto
	$(PROTOC_C) --c_out=$(B)/proto -Iimages/proto $<

# Generated files are kept, not deleted as intermediates.
.SECONDARY: $(PB_C) $(PB_H)

# Generated protobuf-c code is not ours to warn about.
$(B)/proto/%.pb-c.o: $(B)/proto/%.pb-c.c
	$(CC) $(CPPFLAGS) $(filter-out -Werror,$(CFLAGS)) -c -o $@ $<

LIB_SRCS := $(wildcard images/*.c) lazy-pages/log.c
LIB_OBJS := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS)) $(PB_O)
LIBLP := $(B)/liblp.a

$(LIBLP): $(LIB_OBJS)
	$(AR) rcs $@ $^

# --- lazy-pages: the daemon, page server and CLI ----------------------------------------
LP_SRCS := $(filter-out lazy-pages/log.c,$(wildcard lazy-pages/*.c))
LP_OBJS := $(patsubst %.c,$(B)/%.o,$(LP_SRCS))
LAZYPAGES := $(B)/lazypages

$(LAZYPAGES): $(LP_OBJS) $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LP_LDLIBS)

$(B)/%.o: %.c | $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

ALL := $(LAZYPAGES)
TESTS :=

# Per-directory fragments add programs to ALL and test steps to TESTS.
-include kernel/kernel.mk
-include test/test.mk
-include test/restore-double/double.mk
-include test/unit/unit.mk
-include test/crash/crash.mk
-include criu-plugin/plugin.mk
-include bench/bench.mk
-include test/vm/vm.mk
-include test/ps/ps.mk

.PHONY: all test check deps install clean indent
all: $(ALL)

# Install build and test dependencies (Debian bookworm, apt).
deps:
	.ci/install-deps

# The test suite, once, against the build in $(B).
test: all
	test/run.sh $(B)

# What CI runs: everything built twice, the suite run against the ASan+UBSan build
# (the VM tier and benchmarks use the plain build, $(PLAIN_B)).
check:
	$(MAKE) all
	$(MAKE) SAN=1 all
	PLAIN_B=build test/run.sh build-san

# lazy-pages/criu-wrapper.sh becomes $(LIBDIR)/lazypages/criu: criu with lazy-pages and
# page-server --lazy-pages served by lazypages (zdtm.py --criu-bin, PATH).
install: all
	install -D -m 0755 $(LAZYPAGES) $(DESTDIR)$(BINDIR)/lazypages
	install -d $(DESTDIR)$(LIBDIR)/lazypages
	sed 's|@LP_BINDIR@|$(BINDIR)|' lazy-pages/criu-wrapper.sh >$(DESTDIR)$(LIBDIR)/lazypages/criu
	chmod 0755 $(DESTDIR)$(LIBDIR)/lazypages/criu
	$(INSTALL_EXTRA)

clean:
	rm -rf build build-san build-fuzz

indent:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(shell find $(B) -name '*.d' 2>/dev/null)
