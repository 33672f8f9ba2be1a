# test/test.mk: test programs, included by the top Makefile.
#
# Each section builds its programs into $(B)/test/<dir>/ from the Makefile's $(CC),
# $(CPPFLAGS), $(CFLAGS), $(LDFLAGS), $(LIBLP) and $(LDLIBS) (so `make SAN=1` gives
# sanitized tests in build-san/), and appends them to ALL. Test steps themselves are
# listed in test/TESTS. Add a new section per test directory.

# ---- shared -------------------------------------------------------------------------------
# Every test object may include test/helpers.h.
$(B)/test/%.o: CPPFLAGS += -Itest

# ---- images: the image library (test/images/) ---------------------------------------------
TEST_IMAGES := $(B)/test/images/test_images

$(TEST_IMAGES): $(B)/test/images/test_images.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(TEST_IMAGES)

# ---- fuzz: libFuzzer targets (test/fuzz/) -------------------------------------------------
# `make fuzz` builds them with clang into build-fuzz/, independent of $(B) and SAN=1;
# nothing else depends on it, so plain `make` works without clang.
FUZZ_B := build-fuzz
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -g -O1 -fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE -pthread -MMD -MP \
	$(WARN) $(FUZZ_SAN)
FUZZ_CPPFLAGS := -Iimages -Ilazy-pages -Itest -I$(FUZZ_B)/proto $(PB_CFLAGS)
FUZZ_PB_C := $(patsubst images/proto/%.proto,$(FUZZ_B)/proto/%.pb-c.c,$(PROTOS))
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_B)/%.o,$(LIB_SRCS)) $(FUZZ_PB_C:.c=.o)
FUZZ_TARGETS := $(FUZZ_B)/fuzz_images

$(FUZZ_B)/proto/%.pb-c.c $(FUZZ_B)/proto/%.pb-c.h: images/proto/%.proto
	@mkdir -p $(FUZZ_B)/proto
	$(PROTOC_C) --c_out=$(FUZZ_B)/proto -Iimages/proto $<

$(FUZZ_B)/proto/%.pb-c.o: $(FUZZ_B)/proto/%.pb-c.c
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(filter-out -Werror,$(FUZZ_CFLAGS)) -fsanitize=fuzzer-no-link \
		-c -o $@ $<

$(FUZZ_B)/%.o: %.c | $(FUZZ_PB_C:.c=.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/test/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PB_LIBS)

# fuzz_restore_sock drives the daemon's restore-socket parser (session.c) through a
# socketpair, so it links the daemon's own objects (all but main.c and the other commands;
# the harness has its own cli_verbosity for daemon.c).
FUZZ_LP_CLI := $(addprefix lazy-pages/,main.c show.c check.c)
FUZZ_LP_OBJS := $(patsubst %.c,$(FUZZ_B)/%.o,$(filter-out $(FUZZ_LP_CLI),$(LP_SRCS)))
FUZZ_TARGETS += $(FUZZ_B)/fuzz_restore_sock

$(FUZZ_B)/fuzz_restore_sock: $(FUZZ_B)/test/fuzz/fuzz_restore_sock.o $(FUZZ_LP_OBJS) \
		$(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PB_LIBS) $(LP_LDLIBS)

.PHONY: fuzz
fuzz: $(FUZZ_TARGETS)

-include $(shell find $(FUZZ_B) -name '*.d' 2>/dev/null)

# ---- hostile: a misbehaving criu restore on the restore socket (test/hostile/) ------------
# Starts the real daemon ($(B)/lazypages) per case; registered in test/TESTS.
TEST_HOSTILE := $(B)/test/hostile/hostile

$(TEST_HOSTILE): $(B)/test/hostile/hostile.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(TEST_HOSTILE)
