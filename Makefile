# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# kgate build.  Everything generated goes to $(OUTPUT) (build/ by default;
# SAN=1 builds an AddressSanitizer + UBSan variant in build-san/).
#
#   make            kgate, BPF objects, skeletons
#   make demo       install dependencies, build, run the demo agent governed
#   make test       unit + host integration tests (sanitizer build)
#   make vmtest     the VM suite (BPF LSM under QEMU)
#   make check      install dependencies, then test + vmtest
#   make check-fresh  README's two commands on a fresh minimal Debian root (slow)
#   make deb        the Debian package (in $(OUTPUT)/deb/)
#   make check-deb  build it, install it into a fresh root, run it there (slow)
#   make deps       install build/test dependencies (Debian/Ubuntu, apt;
#                   DEPS=GROUP... picks groups of scripts/install-deps.sh)
#   ./kgate-dev T   the same targets on a machine without make (installs it)
#   make bench      benchmarks (report in $(OUTPUT)/bench/)
#   V=1             show full commands

SAN ?= 0
ifeq ($(SAN),1)
OUTPUT ?= build-san
else
OUTPUT ?= build
endif

CC ?= cc
CLANG ?= clang
BPFTOOL ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
LLVM_STRIP ?= llvm-strip
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

# vmlinux.h is generated from BTF and only replaced when it changes (cmp -s),
# so an unchanged kernel never triggers a BPF rebuild.  The BPF objects are
# CO-RE: generated from the build host's BTF, they relocate on 6.1..6.18.
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
VMLINUX_H := $(OUTPUT)/vmlinux.h

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARN := -Wall -Wextra -Werror
CFLAGS ?= -g -O2
CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -I$(OUTPUT) -Iuserspace -Ibpf
LDLIBS += -lbpf -lelf -lz -ljansson -lseccomp -lcrypto -lmicrohttpd -lldns -lidn2 -lcurl
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# clang's own system include dirs, so BPF code sees <asm/...> the same way
CLANG_BPF_SYS_INCLUDES ?= $(shell $(CLANG) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-I$(OUTPUT) -Ibpf $(CLANG_BPF_SYS_INCLUDES)

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))

# userspace/ and its module folders (userspace/api/http.c ->
# $(OUTPUT)/userspace/api/http.o; headers are included as "api/http.h")
USER_SRCS := $(wildcard userspace/*.c) $(wildcard userspace/*/*.c)
USER_OBJS := $(patsubst userspace/%.c,$(OUTPUT)/userspace/%.o,$(USER_SRCS))
LIB_OBJS := $(filter-out $(OUTPUT)/userspace/cli/main.o,$(USER_OBJS))
LIBKGATE := $(OUTPUT)/libkgate.a

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(OUTPUT)/tests/%,$(TEST_SRCS))
TEST_HELPERS_SRCS := $(wildcard tests/helpers/*.c)
TEST_HELPERS := $(patsubst tests/helpers/%.c,$(OUTPUT)/tests/helpers/%,$(TEST_HELPERS_SRCS))
VMTEST_SRCS := $(wildcard vmtests/vt_*.c)
VMTEST_BINS := $(patsubst vmtests/%.c,$(OUTPUT)/vmtests/%,$(VMTEST_SRCS))
# benchmarks that run in the VM (vmtests/run.sh --bench): sources in bench/,
# binaries beside the VM tests, which the guest image takes as a whole
VM_BENCH_SRCS := $(wildcard bench/vt_*.c)
VMTEST_BINS += $(patsubst bench/%.c,$(OUTPUT)/vmtests/%,$(VM_BENCH_SRCS))
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(OUTPUT)/bench/%,$(BENCH_SRCS))

.PHONY: all demo deps test vmtest check check-fresh deb check-deb bench clean vmlinux tests-build vmtests-build bench-build
all: $(OUTPUT)/kgate

$(OUTPUT) $(OUTPUT)/bpf $(OUTPUT)/userspace $(OUTPUT)/tests $(OUTPUT)/tests/helpers $(OUTPUT)/vmtests $(OUTPUT)/bench:
	$(Q)mkdir -p $@

$(VMLINUX_H): $(wildcard $(VMLINUX_BTF)) | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp
	$(Q)cmp -s $@.tmp $@ || mv $@.tmp $@
	$(Q)rm -f $@.tmp
vmlinux: $(VMLINUX_H)

# BPF objects: compiled with dependency tracking, then linked/sanitised by
# bpftool gen object (which also drops DWARF that the kernel does not need).
$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c $(VMLINUX_H) | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -MT $@ -MF $(@:.o=.d) -c $< -o $(@:.bpf.o=.tmp.bpf.o)
	$(Q)$(BPFTOOL) gen object $@ $(@:.bpf.o=.tmp.bpf.o)

$(OUTPUT)/%.skel.h: $(OUTPUT)/bpf/%.bpf.o | $(OUTPUT)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@.tmp && mv $@.tmp $@

# The controller's table of BPF objects: every bpf/*.bpf.c except the
# doctor's probe, generated so that adding a .bpf.c needs no code change.
KG_OBJ_EXCLUDE := probe
KG_OBJ_NAMES := $(filter-out $(KG_OBJ_EXCLUDE),$(patsubst bpf/%.bpf.c,%,$(BPF_SRCS)))
$(OUTPUT)/kg_objects.h: $(SKELS) Makefile | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)( echo '/* generated by the Makefile: the BPF objects kgate loads */'; \
	  for o in $(KG_OBJ_NAMES); do echo "#include \"$$o.skel.h\""; done; \
	  echo '#define KG_OBJECTS(X) \\'; \
	  for o in $(KG_OBJ_NAMES); do echo "	X($$o) \\"; done; \
	  echo '	/* end */'; \
	  printf '#define KG_OBJECTS_TAG "%s"\n' \
		"$$(cat $(patsubst %,$(OUTPUT)/bpf/%.bpf.o,$(KG_OBJ_NAMES)) | sha256sum | cut -c1-12)" ) \
		> $@.tmp && mv $@.tmp $@

# The ABI of the pinned maps: a build pins under <bpffs>/kgate/<abi id>, so
# a build whose map layout differs never trips over (or breaks) the pins
# of another that may still be enforcing running jobs.
$(OUTPUT)/kg_abi.h: bpf/kgate.h bpf/maps.bpf.h bpf/walk.bpf.h | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)printf '/* generated by the Makefile from bpf/kgate.h, maps.bpf.h and walk.bpf.h */\n#define KG_ABI_ID "%s"\n' \
		"$$(cat bpf/kgate.h bpf/maps.bpf.h bpf/walk.bpf.h | sha256sum | cut -c1-12)" > $@.tmp && mv $@.tmp $@

# userspace: every object waits for every skeleton (cheap; skeletons change
# only with BPF code), then real header dependencies come from -MMD -MP.
$(OUTPUT)/userspace/%.o: userspace/%.c $(SKELS) $(OUTPUT)/kg_objects.h $(OUTPUT)/kg_abi.h | $(OUTPUT)/userspace
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The approvals page is embedded in the binary (.incbin in api/web.c), which
# the compiler's dependency tracking does not see.
WEB_FILES := $(wildcard web/*.html web/*.css web/*.js web/*.svg)
$(OUTPUT)/userspace/api/web.o: $(WEB_FILES)

$(LIBKGATE): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUTPUT)/kgate: $(OUTPUT)/userspace/cli/main.o $(LIBKGATE)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/tests/%: tests/%.c $(LIBKGATE) tests/testlib.h | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -MMD -MP $< $(LIBKGATE) $(LDFLAGS) $(LDLIBS) -o $@

# the HTTP API's tests are HTTP clients (libcurl), the daemon is not
$(OUTPUT)/tests/test_api $(OUTPUT)/tests/test_web $(OUTPUT)/tests/test_dispatch: LDLIBS += -lcurl
# test_otlp is the collector (libmicrohttpd, threads)
$(OUTPUT)/tests/test_otlp: LDLIBS += -lpthread
# test_control serves from a thread of its own
$(OUTPUT)/tests/test_control: LDLIBS += -lpthread

# Helpers are the programs a test runs *inside* a governed job: built without
# sanitizers, whose runtimes (LeakSanitizer's ptrace-based stop-the-world)
# would trip over the job's own seccomp filter.
HELPER_CFLAGS := $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(CFLAGS))
$(OUTPUT)/tests/helpers/%: tests/helpers/%.c | $(OUTPUT)/tests/helpers
	$(call msg,CC,$@)
	$(Q)$(CC) $(HELPER_CFLAGS) -MMD -MP $< -o $@

$(OUTPUT)/vmtests/%: vmtests/%.c $(LIBKGATE) tests/testlib.h | $(OUTPUT)/vmtests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -MMD -MP $< $(LIBKGATE) $(LDFLAGS) $(LDLIBS) -o $@

$(OUTPUT)/vmtests/%: bench/%.c $(LIBKGATE) tests/testlib.h | $(OUTPUT)/vmtests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -MMD -MP $< $(LIBKGATE) $(LDFLAGS) $(LDLIBS) -o $@

$(OUTPUT)/bench/%: bench/%.c $(LIBKGATE) | $(OUTPUT)/bench
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -MMD -MP $< $(LIBKGATE) $(LDFLAGS) $(LDLIBS) -lpthread -o $@

tests-build: $(OUTPUT)/kgate $(TEST_BINS) $(TEST_HELPERS)
vmtests-build: $(OUTPUT)/kgate $(VMTEST_BINS) $(TEST_HELPERS)
bench-build: $(OUTPUT)/kgate $(BENCH_BINS) $(TEST_HELPERS)

# The tests run against the sanitizer build.
test:
	$(Q)$(MAKE) --no-print-directory SAN=1 tests-build
	$(Q)tests/run.sh build-san

vmtest:
	$(Q)$(MAKE) --no-print-directory vmtests-build
	$(Q)vmtests/run.sh build

# BPF, cgroups and the VM suite need root; say so instead of failing later
need_root = @if [ "$$(id -u)" != 0 ]; then \
	echo "kgate: 'make $@' needs root (BPF programs, cgroups): run 'sudo make $@'" >&2; exit 1; fi

# the dependency groups a target needs (target-specific: `make demo`
# installs the build group only, `make check` everything)
DEPS ?= all
deps:
	$(need_root)
	$(Q)scripts/install-deps.sh $(DEPS)

demo: DEPS = demo
demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)demo/run.sh $(OUTPUT)

# both suites run even when the first fails, so one run shows everything
check: deps
	$(Q)rc=0; $(MAKE) --no-print-directory test || rc=1; \
	$(MAKE) --no-print-directory vmtest || rc=1; exit $$rc

# README's two commands in a fresh debootstrap root (tests/fresh/run.sh):
# slow (a first run downloads a root and the build dependencies), so not
# part of `make check`
check-fresh: DEPS = fresh
check-fresh: deps
	$(Q)tests/fresh/run.sh

# The Debian package (debian/), built from a copy of the tree's files in
# $(OUTPUT)/deb/src so that dpkg-buildpackage writes the .deb to
# $(OUTPUT)/deb/ and not next to the checkout.  check-deb installs it into a
# fresh minimal root and runs it there (tests/deb/run.sh; slow, not part of
# `make check`).
deb: DEPS = package
deb: deps
	$(call msg,DEB,$(OUTPUT)/deb)
	$(Q)rm -rf $(OUTPUT)/deb && mkdir -p $(OUTPUT)/deb/src
	$(Q)git ls-files -z -co --exclude-standard | grep -zv '^debian/kgate/' | \
		tar -cf - --null -T - | tar -xf - -C $(OUTPUT)/deb/src
	$(Q)cd $(OUTPUT)/deb/src && dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
		{ tail -n 30 ../build.log; exit 1; }
	$(Q)ls $(OUTPUT)/deb/*.deb

check-deb: DEPS = package fresh
check-deb: deps
	$(Q)tests/deb/run.sh

bench:
	$(Q)$(MAKE) --no-print-directory bench-build
	$(Q)bench/run.sh build

clean:
	$(call msg,CLEAN,build build-san)
	$(Q)rm -rf build build-san

DEP_FILES := $(wildcard $(OUTPUT)/bpf/*.d $(OUTPUT)/userspace/*.d $(OUTPUT)/userspace/*/*.d $(OUTPUT)/tests/*.d $(OUTPUT)/tests/helpers/*.d $(OUTPUT)/vmtests/*.d $(OUTPUT)/bench/*.d)
# A .d file whose source is gone (moved: vmtests/vt_bench*.c went to bench/)
# would stop make with "No rule to make target" in an existing build dir; it
# is left out, and the next compile of its target writes it again.
DEP_FILES := $(foreach d,$(DEP_FILES),$(if $(wildcard $(word 2,$(file <$(d)))),$(d)))
-include $(DEP_FILES)

.DELETE_ON_ERROR:
.SECONDARY:
