# make bench: lazypages measured side by side with the kernel's demand paging and an eager copy.
BENCH := $(B)/lp-bench
BENCH_SIZES ?= 64M,256M,1G,2G

$(BENCH): $(B)/bench/lp-bench.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(BENCH)

.PHONY: bench
bench: all
	bench/run.sh $(B) $(BENCH_SIZES)

$(B)/bench/%.o: CPPFLAGS += -Itest
