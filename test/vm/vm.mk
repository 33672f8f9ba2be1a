# VM tier (test/vm): real CRIU in a QEMU TCG guest restoring lazily through our daemon.
#   make demo        boot the VM, checkpoint a workload with CRIU, restore it lazily through
#                    lazypages daemon, show progress, the summary and a verdict
#   make vm-test     every VM scenario with lazypages daemon
#   make vm-control  the same with CRIU's own criu lazy-pages (proves the harness)
# Host packages: test/vm/packages.txt. Kernel cache: $LP_VM_CACHE (outside the repository).

# Static guest programs: no sanitizer flags (ASan cannot link statically).
VM_CFLAGS := -O2 -g -std=gnu11 -D_GNU_SOURCE -pthread $(WARN)
VM_BINS := $(B)/vm/workload $(B)/vm/broken-daemon

$(B)/vm/%: test/vm/%.c
	@mkdir -p $(dir $@)
	$(CC) $(VM_CFLAGS) -static -o $@ $<

ALL += $(VM_BINS)

.PHONY: demo vm-test vm-control
demo: all
	B=$(B) test/vm/demo.sh

vm-test: all
	B=$(B) test/vm/run.sh --daemon=lazypages

vm-control: $(VM_BINS)
	B=$(B) test/vm/run.sh --daemon=criu
