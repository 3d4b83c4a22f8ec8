# blktap: top-level, non-recursive build.
#   make                 build everything into $(BUILD)
#   make check           the whole test suite (unit + system)
#   make check-asan      the suite again, built with ASan+UBSan
#   make check-host      the test host: suites in QEMU guests (ublk, Xen)
#   make install DESTDIR=... PREFIX=...
#   make bench           tapdisk vs qemu-nbd vs nbdkit, ratios in one run
#   make clean

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# where xl looks for hotplug scripts, whatever the PREFIX
XEN_SCRIPTDIR ?= /etc/xen/scripts
DESTDIR ?=

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
OPT ?= -O1
else
BUILD ?= build
SAN_FLAGS :=
OPT ?= -O2
endif

CC ?= gcc
PKGS := liburing json-c zlib libzstd fuse3 sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS)) -laio -lrt -pthread -lnettle

CFLAGS ?= $(OPT) -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -MMD -MP \
	$(SAN_FLAGS) $(PKG_CFLAGS)
CPPFLAGS += -Itapdisk -Iblktap/nbd -Iblktap/fuse -Iblktap/ublk -Iblktap/xen -Ivdisk -Itests/lib -Itapdisk/tools/lib -DTD_LIBEXECDIR='"$(LIBEXECDIR)"'
LDFLAGS += $(SAN_FLAGS)
LDLIBS += $(PKG_LIBS)

TD_SRCS := $(filter-out tapdisk/main.c,$(wildcard tapdisk/*.c tapdisk/drivers/*.c))
NBD_SRCS := $(wildcard blktap/nbd/*.c)
FUSE_SRCS := $(wildcard blktap/fuse/*.c)
UBLK_SRCS := $(wildcard blktap/ublk/*.c)
XEN_SRCS := $(wildcard blktap/xen/*.c)
# the Xen blkif backend: only tapdisk links these
XEN_LIBS := $(shell pkg-config --libs xenstore xengnttab xenevtchn)
TD_LIB := $(BUILD)/libtapdisk.a
NBD_LIB := $(BUILD)/libblktap-nbd.a
FUSE_LIB := $(BUILD)/libblktap-fuse.a
UBLK_LIB := $(BUILD)/libblktap-ublk.a
XEN_LIB := $(BUILD)/libblktap-xen.a

UNIT_SRCS := $(wildcard tapdisk/tests/test-*.c blktap/nbd/tests/test-*.c \
	blktap/fuse/tests/test-*.c)

UNIT_BINS := $(patsubst tapdisk/tests/%.c,$(BUILD)/tests/tapdisk/%,$(filter tapdisk/%,$(UNIT_SRCS))) \
	$(patsubst blktap/nbd/tests/%.c,$(BUILD)/tests/nbd/%,$(filter blktap/nbd/%,$(UNIT_SRCS))) \
	$(patsubst blktap/fuse/tests/%.c,$(BUILD)/tests/fuse/%,$(filter blktap/fuse/%,$(UNIT_SRCS)))

# tools: tap-img from tapdisk/tools/img/*.c; each classic tool from
# tapdisk/tools/NAME.c; both over the shared tapdisk/tools/lib/*.c
TOOLLIB_SRCS := $(wildcard tapdisk/tools/lib/*.c)
TOOL_LIB := $(BUILD)/libtdtools.a
IMG_SRCS := $(wildcard tapdisk/tools/img/*.c)
CLASSIC_SRCS := $(wildcard tapdisk/tools/*.c)
CLASSIC_PROGS := $(patsubst tapdisk/tools/%.c,$(BUILD)/%,$(CLASSIC_SRCS))
TOOL_PROGS := $(if $(IMG_SRCS),$(BUILD)/tap-img) $(CLASSIC_PROGS)

# the control plane: the blktapctrl daemon and its client tap-ctl
CTL_COMMON_SRCS := blktapctrl/client.c
CTLD_SRCS := blktapctrl/daemon.c blktapctrl/disks.c blktapctrl/spawn.c \
	blktapctrl/disklog.c blktapctrl/proto.c $(CTL_COMMON_SRCS)
# the xenstore watcher: only blktapctrl itself links libxenstore
CTLD_XS_SRCS := blktapctrl/xenstore.c
CTLD_XS_LIBS := $(shell pkg-config --libs xenstore)
CTL_PROGS := $(BUILD)/blktapctrl $(BUILD)/tap-ctl

PROGS := $(BUILD)/tapdisk $(TOOL_PROGS) $(CTL_PROGS)

# the virtual-disk pool: libvdisk (static for tapdisk's vd driver and the
# commands, shared for the Python module), the vd_* commands (one program,
# by name) and add_vbd_to_dom / remove_vbd_from_dom
VDISK_SRCS := $(wildcard vdisk/lib/*.c)
VDISK_LIB := $(BUILD)/libvdisk.a
VDISK_SO := $(BUILD)/libvdisk.so
VD_CMDS := vd_format vd_create vd_refresh vd_delete vd_undelete vd_list \
	vd_info vd_freespace vd_enlarge
VBD_CMDS := add_vbd_to_dom remove_vbd_from_dom
VDISK_PROGS := $(addprefix $(BUILD)/,$(VD_CMDS) $(VBD_CMDS))
VDISK_TESTS := $(patsubst vdisk/tests/%.c,$(BUILD)/tests/vdisk/%,$(wildcard vdisk/tests/test-*.c))
# libtapdisk holds the vd driver: whatever links it links libvdisk after it
LDLIBS := $(VDISK_LIB) $(LDLIBS)
PYTHON3 ?= /usr/bin/python3
PYTHON_SITEDIR ?= $(if $(wildcard /usr/lib/python3/dist-packages),/usr/lib/python3/dist-packages,$(shell $(PYTHON3) -c 'import sysconfig; print(sysconfig.get_path("purelib"))'))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

.PHONY: all check check-unit check-system check-asan check-host install clean format
.PHONY: bench bench-nbd bench-qcow2 bench-fuse bench-ctl
.PHONY: install-vdisk bench-vdisk

all: $(PROGS) $(UNIT_BINS)
all: $(VDISK_PROGS) $(VDISK_SO) $(VDISK_TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(TD_LIB): $(call obj,$(TD_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(NBD_LIB): $(call obj,$(NBD_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(FUSE_LIB): $(call obj,$(FUSE_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(UBLK_LIB): $(call obj,$(UBLK_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(XEN_LIB): $(call obj,$(XEN_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/tapdisk: $(call obj,tapdisk/main.c) $(NBD_LIB) $(FUSE_LIB) $(UBLK_LIB) $(XEN_LIB) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(XEN_LIBS)

$(TOOL_LIB): $(call obj,$(TOOLLIB_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/tap-img: $(call obj,$(IMG_SRCS)) $(TOOL_LIB) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CLASSIC_PROGS): $(BUILD)/%: $(BUILD)/obj/tapdisk/tools/%.o $(TOOL_LIB) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# (libblktap-ublk: to delete the ublk device of a tapdisk that is gone)
$(BUILD)/blktapctrl: $(call obj,$(CTLD_SRCS) $(CTLD_XS_SRCS)) $(UBLK_LIB) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CTLD_XS_LIBS)

$(BUILD)/tap-ctl: $(call obj,blktapctrl/tap-ctl.c $(CTL_COMMON_SRCS)) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(VDISK_LIB): $(call obj,$(VDISK_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
$(TD_LIB): | $(VDISK_LIB)
$(PROGS) $(UNIT_BINS): $(VDISK_LIB)

# position-independent and never sanitized: python3 loads it
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(filter-out $(SAN_FLAGS),$(CFLAGS)) -fPIC -c -o $@ $<
$(VDISK_SO): $(patsubst %.c,$(BUILD)/pic/%.o,$(VDISK_SRCS))
	$(CC) -shared -Wl,-soname,libvdisk.so -o $@ $^ $(shell pkg-config --libs sqlite3)

$(addprefix $(BUILD)/,$(VD_CMDS)): $(call obj,vdisk/tools/vd-cmds.c) $(VDISK_LIB) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
$(addprefix $(BUILD)/,$(VBD_CMDS)): $(call obj,vdisk/tools/vbd-cmds.c) $(VDISK_LIB) $(TD_LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)
$(BUILD)/tests/vdisk/test-%: $(BUILD)/obj/vdisk/tests/test-%.o $(VDISK_LIB) $(TD_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# blktapctrl's unit tests link the daemon's modules but its main()
CTL_UNIT_BINS := $(patsubst blktapctrl/tests/%.c,$(BUILD)/tests/blktapctrl/%,\
	$(wildcard blktapctrl/tests/test-*.c))
all: $(CTL_UNIT_BINS)
$(BUILD)/obj/blktapctrl/tests/%.o: CPPFLAGS += -Iblktapctrl
$(BUILD)/tests/blktapctrl/test-%: $(BUILD)/obj/blktapctrl/tests/test-%.o \
		$(call obj,$(filter-out blktapctrl/daemon.c,$(CTLD_SRCS))) $(UBLK_LIB) $(TD_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the qcow test encrypts with another AES implementation than the driver's
$(BUILD)/tests/tapdisk/test-qcow-crafted: LDLIBS += -lcrypto
$(BUILD)/tests/tapdisk/test-%: $(BUILD)/obj/tapdisk/tests/test-%.o $(TOOL_LIB) $(TD_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/nbd/test-%: $(BUILD)/obj/blktap/nbd/tests/test-%.o $(NBD_LIB) $(TD_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/fuse/test-%: $(BUILD)/obj/blktap/fuse/tests/test-%.o $(FUSE_LIB) $(TD_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

check: all
	BUILD=$(BUILD) tests/run

check-unit: all
	BUILD=$(BUILD) tests/run --unit

check-system: all
	BUILD=$(BUILD) tests/run --system

check-asan:
	$(MAKE) SANITIZE=1 check

# not part of check: it downloads a kernel and Xen and boots them in QEMU
check-host: all
	BUILD=$(BUILD) tests/testhost/run

# make bench: every part, one after the other; bench-PART for one
bench: bench-nbd bench-qcow2 bench-fuse bench-ctl
bench-nbd: all
	BUILD=$(BUILD) bench/run
bench-qcow2: all
	BUILD=$(BUILD) bench/qcow2.sh
bench-fuse: all
	BUILD=$(BUILD) bench/fuse.sh
bench-ctl: all
	BUILD=$(BUILD) bench/blktapctrl.sh

# not part of bench or check-host: it boots the test host's plain guest,
# which runs fio on a ublk device and on a loop device (ratios), then its
# Xen dom0, where PV guests time dd on tapdisk's blkif and on blkback
.PHONY: bench-host
bench-host: all
	BUILD=$(BUILD) tests/testhost/run bench

install: all
	install -d $(DESTDIR)$(LIBEXECDIR)/blktap $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/tapdisk $(DESTDIR)$(LIBEXECDIR)/blktap/tapdisk
	ln -sf $(LIBEXECDIR)/blktap/tapdisk $(DESTDIR)$(SBINDIR)/tapdisk
	$(foreach p,$(TOOL_PROGS) $(CTL_PROGS),install -m 0755 $(p) $(DESTDIR)$(SBINDIR)/;)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/sbin/|$(SBINDIR)/|g' systemd/blktapctrl.service \
		>$(DESTDIR)$(SYSTEMDUNITDIR)/blktapctrl.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/blktapctrl.service
	install -m 0644 $(wildcard docs/man/*.8) $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(XEN_SCRIPTDIR)
	install -m 0755 xend-hooks/block-tap $(DESTDIR)$(XEN_SCRIPTDIR)/block-tap
	ln -sf block-tap $(DESTDIR)$(XEN_SCRIPTDIR)/block-vd

# the pool at scale: 1,000,000 extents, 10,000 disks
bench: bench-vdisk
bench-vdisk: all
	BUILD=$(BUILD) bench/vdisk.sh

install: install-vdisk
install-vdisk: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(PYTHON_SITEDIR)/blktap
	$(foreach p,$(VDISK_PROGS),install -m 0755 $(p) $(DESTDIR)$(SBINDIR)/;)
	install -m 0644 vdisk/python/blktap/*.py $(DESTDIR)$(PYTHON_SITEDIR)/blktap/
	install -m 0644 $(VDISK_SO) $(DESTDIR)$(PYTHON_SITEDIR)/blktap/libvdisk.so

format:
	clang-format -i $(TD_SRCS) tapdisk/main.c $(NBD_SRCS) $(FUSE_SRCS) $(UBLK_SRCS) $(XEN_SRCS) $(UNIT_SRCS) \
		$(TOOLLIB_SRCS) $(IMG_SRCS) $(CLASSIC_SRCS) \
		$(wildcard blktapctrl/*.c blktapctrl/*.h blktapctrl/tests/*.c) \
		$(wildcard tapdisk/*.h tapdisk/drivers/*.h blktap/nbd/*.h blktap/fuse/*.h blktap/xen/*.h \
			tapdisk/tools/lib/*.h)

clean:
	rm -rf build build-asan tests/out bench/out

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
