# Crash survival test program.
$(B)/lp-crashtest: $(B)/test/crash/lp-crashtest.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL += $(B)/lp-crashtest
