# LLMSafeSpace — one non-recursive Makefile.
#
# Layout it discovers by itself (so adding a file needs no edit here):
#   common/**/*.c             -> build/lib/liblsscommon.a (linked into everything)
#   services/<svc>/*.c        -> build/bin/lss-<svc>   (main.c = entry point;
#                                the other files also go into build/lib/liblss<svc>.a
#                                so tests can link the plain logic files)
#   tools/lss/*.c             -> build/bin/lss (the files other than main.c also go into
#                                build/lib/liblsstool.a, which tests link)
#   tests/unit/test_*.c       -> build/test/test_*      (cmocka; one process per case file)
#   bench/bench_*.c           -> build/bench/bench_*
#
# make [all]        build every program into build/bin/
# make run          install packages, build, then run the whole system (lss up $(ARGS))
# make test         unit tests (ASan+UBSan build), valgrind pass, integration + e2e tests
# make bench        benchmarks, results into bench/results/ (BENCH="bench_x ...": only those)
# make lint         banned functions, clang-format check, cppcheck
# make clean        remove build outputs
# SANITIZE=address,undefined builds into build-san/ instead of build/.

SHELL := /bin/bash
.DEFAULT_GOAL := all
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD ?= build
SANFLAGS :=
else
BUILD ?= build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKGS := libczmq libzmq libsodium msgpack jansson libcurl libpq hiredis libwebsockets libseccomp yaml-0.1 openssl
DEPS_STAMP := $(BUILD)/.deps-ok

CC ?= cc
OPT ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Icommon -Icommon/proto $(addprefix -I,$(wildcard services/*)) -Itools/lss
CFLAGS += -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
          -Wstrict-prototypes -Wmissing-prototypes -fstack-protector-strong \
          -fPIE $(OPT) $(SANFLAGS) -MMD -MP
LDFLAGS += -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(SANFLAGS)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
# lss-agent starts in every sandbox, on the cold-start path: the libraries it uses are
# linked in from their archives (same -dev packages), so the dynamic loader maps 23
# objects instead of 31 and the agent is ready in about 3 ms instead of 4 here
# (docs/agent.md). What libzmq and libczmq need in turn (Kerberos for GSSAPI, PGM, NORM,
# systemd) stays shared: Debian has no usable archives for those. A service's binary
# links <name>_LINK_LIBS when set, else PKG_LIBS.
agent_LINK_LIBS = -Wl,-Bstatic -lczmq -lzmq -lsodium -lmsgpackc -ljansson -lbsd -lmd -luuid \
                  -Wl,-Bdynamic -lpgm -lnorm -lstdc++ -lgssapi_krb5 -lsystemd -lpthread

# ---------------------------------------------------------------- sources
COMMON_SRC := $(sort $(wildcard common/*.c common/proto/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
COMMON_LIB := $(BUILD)/lib/liblsscommon.a

# A service directory with any .c file gets a library; one with main.c also a binary.
SERVICES := $(sort $(patsubst services/%/,%,$(dir $(wildcard services/*/*.c))))
SVC_MAINS := $(sort $(patsubst services/%/main.c,%,$(wildcard services/*/main.c)))
SVC_LIBS := $(foreach s,$(SERVICES),$(BUILD)/lib/liblss$(s).a)
SVC_BINS := $(foreach s,$(SVC_MAINS),$(BUILD)/bin/lss-$(s))

TOOL_SRC := $(sort $(wildcard tools/lss/*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
# The tool's files other than main.c also go into a library, so tests can link them.
TOOL_LIB_OBJ := $(filter-out $(BUILD)/obj/tools/lss/main.o,$(TOOL_OBJ))
TOOL_LIB := $(BUILD)/lib/liblsstool.a

TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TEST_BINS := $(TEST_SRC:tests/unit/%.c=$(BUILD)/test/%)
TEST_HELPER_SRC := $(sort $(wildcard tests/unit/helpers/*.c))
TEST_HELPER_BINS := $(TEST_HELPER_SRC:tests/unit/helpers/%.c=$(BUILD)/test/helpers/%)

BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

BINS := $(SVC_BINS) $(if $(TOOL_SRC),$(BUILD)/bin/lss)
ALL_LIBS := $(SVC_LIBS) $(COMMON_LIB)
# Tests and benchmarks link the tool's library first (it uses the service libraries).
TEST_LIBS := $(TOOL_LIB) $(ALL_LIBS)

.PHONY: all deps test unit-test bench lint format clean docs run
all: $(BINS)

# Install missing Debian packages once per build dir (scripts/install-deps is idempotent).
$(DEPS_STAMP): scripts/install-deps
	$(Q)scripts/install-deps
	$(Q)mkdir -p $(@D) && touch $@
deps: $(DEPS_STAMP)

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

# One archive per service of its non-main objects, and one binary per service.
define SERVICE_RULES
$(1)_SRC := $$(filter-out services/$(1)/main.c,$$(sort $$(wildcard services/$(1)/*.c)))
$(1)_OBJ := $$($(1)_SRC:%.c=$(BUILD)/obj/%.o)
$(BUILD)/lib/liblss$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(@D)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
$(BUILD)/bin/lss-$(1): $(BUILD)/obj/services/$(1)/main.o $(BUILD)/lib/liblss$(1).a $(COMMON_LIB)
	@mkdir -p $$(@D)
	@$(if $(filter 1,$(V)),,echo "  LINK    $$@")
	$(Q)$(CC) $(LDFLAGS) -o $$@ $$^ $$(or $$($(1)_LINK_LIBS),$$(PKG_LIBS)) -lm
endef
$(foreach s,$(SERVICES),$(eval $(call SERVICE_RULES,$(s))))

$(TOOL_LIB): $(TOOL_LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/lss: $(BUILD)/obj/tools/lss/main.o $(TOOL_LIB) $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(BUILD)/obj/tools/lss/main.o $(TEST_LIBS) $(PKG_LIBS) -lm

$(BUILD)/test/%: $(BUILD)/obj/tests/unit/%.o $(TEST_LIBS)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TEST_LIBS) $(PKG_LIBS) $(CMOCKA_LIBS) -lm

$(BUILD)/test/helpers/%: $(BUILD)/obj/tests/unit/helpers/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(PKG_LIBS) -lm

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@$(if $(filter 1,$(V)),,echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(PKG_LIBS) -lm

tests-build: $(BINS) $(TEST_BINS) $(TEST_HELPER_BINS)
.PHONY: tests-build

# ---------------------------------------------------------------- tests
# `make test` is the one test command (README, .ci/run): every unit test under
# ASan+UBSan, the unit tests again under valgrind, then integration and e2e tests.
test: deps
	$(Q)scripts/run-tests all

unit-test: tests-build
	$(Q)scripts/run-tests unit $(BUILD)

# make bench [BENCH="bench_api bench_controlplane"]: all benchmarks, or only those.
BENCH ?=
bench: all $(BENCH_BINS)
	$(Q)scripts/run-bench $(BUILD) $(BENCH)
# keep the benchmark objects (they are intermediate files of the pattern rule)
.PRECIOUS: $(BUILD)/obj/bench/%.o

# `make run [ARGS="--listen 127.0.0.1:0 ..."]`: the whole system on this machine
# (README, docs/run.md). Packages first (idempotent), then the build, then lss up in
# the foreground; Ctrl-C stops it.
run:
	$(Q)scripts/install-deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)exec $(BUILD)/bin/lss up $(ARGS)

# Generated reference docs (tests fail when these are stale).
docs: $(BUILD)/bin/lss
	$(Q)$(BUILD)/bin/lss docs bus > docs/bus.md
	@echo "  GEN     docs/bus.md"

lint:
	$(Q)scripts/lint

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
