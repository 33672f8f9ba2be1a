# make bench: lazypages measured side by side with the kernel's demand paging and an eager copy,
# then (when the VM tier's prerequisites are there) make bench-vm.
# make bench-vm: real CRIU in the VM tier's QEMU guest restores the same checkpoint lazily with
# criu lazy-pages and with lazypages daemon in turn, one boot (test/vm/bench.sh).
BENCH := $(B)/lp-bench
BENCH_SIZES ?= 64M,256M,1G,2G
BENCH_VM_SIZES ?= 64,256,1024
BENCH_VM_REPS ?= 4

$(BENCH): $(B)/bench/lp-bench.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(BENCH)

.PHONY: bench bench-vm
bench: all
	bench/run.sh $(B) $(BENCH_SIZES)
	B=$(B) test/vm/bench.sh --if-available --sizes=$(BENCH_VM_SIZES) --reps=$(BENCH_VM_REPS)

bench-vm: all
	B=$(B) test/vm/bench.sh --sizes=$(BENCH_VM_SIZES) --reps=$(BENCH_VM_REPS)

$(B)/bench/%.o: CPPFLAGS += -Itest
