# kernel/: what lazypages assumes about userfaultfd, checked two ways.
#   kernel/models/*.pml   Promela models of the kernel's wakeup races and the daemon's
#                         obligations; `make models` (or the `models` test) runs them with spin
#   lazypages check       probes the running kernel; it reads capabilities through libcap

LP_LDLIBS += -lcap

.PHONY: models
models:
	kernel/run-models.sh

# kernel/stress/: lp-stress drives the real daemon on the real kernel (docs/kernel.md,
# "Stress test"); kernel/stress/run.sh is the suite's short run plus the self-test.
LP_STRESS := $(B)/lp-stress

$(LP_STRESS): $(B)/kernel/stress/lp-stress.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(LP_STRESS)

$(B)/kernel/stress/%.o: CPPFLAGS += -Itest
