# Unit tests of daemon internals, linked against the daemon's own objects.
UNIT_TESTS := $(B)/test/unit/test_ranges

$(B)/test/unit/test_ranges: $(B)/test/unit/test_ranges.o $(B)/lazy-pages/ranges.o $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/test/unit/%.o: CPPFLAGS += -Itest

ALL += $(UNIT_TESTS)
