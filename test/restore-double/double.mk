# test/restore-double/double.mk: the checkpoint generator and the `criu restore --lazy-pages`
# test double, included by the top Makefile.
#
#   $(B)/mkckpt      writes synthetic checkpoints (test/mkckpt.c)
#   $(B)/lp-restore  plays restore's side of the lazy-pages protocol and verifies every page
#
# Tests: test/restore-double/selftest.sh (eager, no daemon) and test/lazy/*.sh (with the daemon).

MKCKPT := $(B)/mkckpt
LP_RESTORE := $(B)/lp-restore

$(B)/test/mkckpt.o $(B)/test/restore-double/lp-restore.o: CPPFLAGS += -Itest

$(MKCKPT): $(B)/test/mkckpt.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LP_RESTORE): $(B)/test/restore-double/lp-restore.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(MKCKPT) $(LP_RESTORE)
