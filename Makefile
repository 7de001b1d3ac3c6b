# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# kgate build.  Everything generated goes to $(OUTPUT) (build/ by default;
# SAN=1 builds an AddressSanitizer + UBSan variant in build-san/).
#
#   make            kgate, BPF objects, skeletons
#   make test       unit + host integration tests (sanitizer build)
#   make vmtest     the VM suite (BPF LSM under QEMU)
#   make check      test + vmtest
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
LDLIBS += -lbpf -lelf -lz -ljansson -lseccomp -lcrypto
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# clang's own system include dirs, so BPF code sees <asm/...> the same way
CLANG_BPF_SYS_INCLUDES ?= $(shell $(CLANG) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-I$(OUTPUT) -Ibpf $(CLANG_BPF_SYS_INCLUDES)

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))

USER_SRCS := $(wildcard userspace/*.c)
USER_OBJS := $(patsubst userspace/%.c,$(OUTPUT)/userspace/%.o,$(USER_SRCS))
LIB_OBJS := $(filter-out $(OUTPUT)/userspace/main.o,$(USER_OBJS))
LIBKGATE := $(OUTPUT)/libkgate.a

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(OUTPUT)/tests/%,$(TEST_SRCS))
TEST_HELPERS_SRCS := $(wildcard tests/helpers/*.c)
TEST_HELPERS := $(patsubst tests/helpers/%.c,$(OUTPUT)/tests/helpers/%,$(TEST_HELPERS_SRCS))
VMTEST_SRCS := $(wildcard vmtests/vt_*.c)
VMTEST_BINS := $(patsubst vmtests/%.c,$(OUTPUT)/vmtests/%,$(VMTEST_SRCS))
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(OUTPUT)/bench/%,$(BENCH_SRCS))

.PHONY: all test vmtest check bench clean vmlinux tests-build vmtests-build bench-build
all: $(OUTPUT)/kgate

$(OUTPUT) $(OUTPUT)/bpf $(OUTPUT)/userspace $(OUTPUT)/tests $(OUTPUT)/tests/helpers $(OUTPUT)/vmtests $(OUTPUT)/bench:
	$(Q)mkdir -p $@

$(VMLINUX_H): | $(OUTPUT)
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

# userspace: every object waits for every skeleton (cheap; skeletons change
# only with BPF code), then real header dependencies come from -MMD -MP.
$(OUTPUT)/userspace/%.o: userspace/%.c $(SKELS) | $(OUTPUT)/userspace
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBKGATE): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUTPUT)/kgate: $(OUTPUT)/userspace/main.o $(LIBKGATE)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/tests/%: tests/%.c $(LIBKGATE) tests/testlib.h | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests -MMD -MP $< $(LIBKGATE) $(LDFLAGS) $(LDLIBS) -o $@

$(OUTPUT)/tests/helpers/%: tests/helpers/%.c | $(OUTPUT)/tests/helpers
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -MMD -MP $< $(LDFLAGS) -o $@

$(OUTPUT)/vmtests/%: vmtests/%.c $(LIBKGATE) tests/testlib.h | $(OUTPUT)/vmtests
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

check:
	$(Q)$(MAKE) --no-print-directory test
	$(Q)$(MAKE) --no-print-directory vmtest

bench:
	$(Q)$(MAKE) --no-print-directory bench-build
	$(Q)bench/run.sh build

clean:
	$(call msg,CLEAN,build build-san)
	$(Q)rm -rf build build-san

-include $(wildcard $(OUTPUT)/bpf/*.d $(OUTPUT)/userspace/*.d $(OUTPUT)/tests/*.d $(OUTPUT)/tests/helpers/*.d $(OUTPUT)/vmtests/*.d $(OUTPUT)/bench/*.d)

.DELETE_ON_ERROR:
.SECONDARY:
