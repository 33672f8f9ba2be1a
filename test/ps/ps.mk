# test/ps/ps.mk: the page server (lazypages page-server) and its client library
# (lazy-pages/{ps-proto,ps-store,conn,tls,remote,page-server}.c), included by the top
# Makefile: GnuTLS flags for the lazypages binary, the test program and two fuzz targets.

# ---- GnuTLS -------------------------------------------------------------------------------
GNUTLS_CFLAGS := $(shell pkg-config --cflags gnutls 2>/dev/null)
GNUTLS_LIBS := $(shell pkg-config --libs gnutls 2>/dev/null || echo -lgnutls)
CPPFLAGS += $(GNUTLS_CFLAGS)
LP_LDLIBS += $(GNUTLS_LIBS)

# ---- test program: protocol, client library, server conformance, TLS, hostile peers -------
# It starts $(B)/lazypages page-server per case; registered in test/TESTS.
PS_LIB_OBJS := $(addprefix $(B)/lazy-pages/,ps-proto.o ps-store.o conn.o tls.o remote.o)
TEST_PS := $(B)/test/ps/ps-test

$(TEST_PS): $(B)/test/ps/ps-test.o $(PS_LIB_OBJS) $(LIBLP)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LP_LDLIBS)

ALL += $(TEST_PS)

# ---- fuzz: libFuzzer targets, built by `make fuzz` with test/test.mk's clang flags -------
# fuzz_ps_server: request headers in both layouts against a small in-memory store.
# fuzz_ps_client: arbitrary server bytes fed to the client library through a socketpair.
FUZZ_PS_SERVER := $(FUZZ_B)/fuzz_ps_server
FUZZ_PS_CLIENT := $(FUZZ_B)/fuzz_ps_client
FUZZ_TARGETS += $(FUZZ_PS_SERVER) $(FUZZ_PS_CLIENT)

$(FUZZ_PS_SERVER): $(FUZZ_B)/test/ps/fuzz_ps_server.o \
		$(addprefix $(FUZZ_B)/lazy-pages/,ps-proto.o ps-store.o) $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PB_LIBS)

$(FUZZ_PS_CLIENT): $(FUZZ_B)/test/ps/fuzz_ps_client.o \
		$(addprefix $(FUZZ_B)/lazy-pages/,ps-proto.o conn.o tls.o remote.o) $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PB_LIBS) $(GNUTLS_LIBS)

.PHONY: fuzz-ps
fuzz-ps: $(FUZZ_PS_SERVER) $(FUZZ_PS_CLIENT)
fuzz: fuzz-ps
