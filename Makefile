# Set-up and entry points. Everything the project needs is installed here,
# so a fresh machine (as root) needs only `make run` or `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTEST_ARGS ?=
# libseccomp-dev's header (installed below): the shim is built against it
SECCOMP_H := /usr/include/seccomp.h

.PHONY: setup run test lint bench bench-quick clean

setup: $(VENV)/.installed

# pip's lxcflow wrapper runs Python with site and imports re; the launcher
# replacing it does neither (see lxcflow/launcher.py).
$(VENV)/.installed: pyproject.toml $(wildcard lxcflow/runtime/shim/*.[ch]) lxcflow/launcher.py \
		$(SECCOMP_H)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		--config-settings editable_mode=compat -e '.[test]'
	$(PY) -m lxcflow.launcher $(VENV)/bin/lxcflow
	$(PY) -m lxcflow.runtime.shim
	touch $@

# The supervisor in the foreground on the embedded defaults
# (/var/lib/lxcflow, /run/lxcflow/lxcflow.sock), with the example rules and
# hooks, and Prometheus metrics on http://127.0.0.1:9464/metrics; ^C stops
# it, containers live on.
run: setup
	$(VENV)/bin/lxcflow daemon --rules rules --hooks hooks --metrics 127.0.0.1:9464

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy lxcflow tests bench

# Distribution packages the tests and benchmarks need. Installing one must
# not start a host service (sshd, lxc-net's bridge, lxcfs): policy-rc.d
# (Debian's switch for that) says no for the length of the install, unless
# one is already in place.
define apt_install
	@if [ -e /usr/sbin/policy-rc.d ]; then own=0; else own=1; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(1) >/dev/null; rc=$$?; \
	if [ $$own = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc
endef

# The keeper compiles seccomp profiles with libseccomp (its static library
# is linked in, so no container depends on the host's copy at run time).
$(SECCOMP_H):
	$(call apt_install,libseccomp-dev)

# The ssh container test runs the distribution's own sshd.
SSHD := /usr/sbin/sshd
$(SSHD):
	$(call apt_install,openssh-server openssh-client)

# LXC: the benchmarks compare against it, tests run its containers.
LXC_START := /usr/bin/lxc-start
$(LXC_START):
	$(call apt_install,lxc)

# LXC's own templates: a container made by lxc-create -t debian must run
# under lxcflow unchanged (the template copies its cache with rsync).
LXC_DEBIAN := /usr/share/lxc/templates/lxc-debian
$(LXC_DEBIAN): $(LXC_START)
	$(call apt_install,lxc-templates rsync)

# The system container tests boot a Debian root file system: debootstrap
# builds it once from Debian's packages, cached in /var/cache/lxcflow-tests.
DEBOOTSTRAP := /usr/sbin/debootstrap
$(DEBOOTSTRAP):
	$(call apt_install,debootstrap)

# The metrics test has Debian's Prometheus scrape the daemon (started by the
# test on loopback; the package's own service is never started, and its
# recommended node exporter is not installed).
PROMETHEUS := /usr/bin/prometheus
$(PROMETHEUS):
	$(call apt_install,prometheus)

# The fleet tests and benchmarks run Debian's NATS server with JetStream,
# each on its own loopback ports and store (the package's service is never
# started).
NATS_SERVER := /usr/sbin/nats-server
$(NATS_SERVER):
	$(call apt_install,nats-server)

# The busybox template copies Debian's static busybox.
BUSYBOX := /bin/busybox
$(BUSYBOX):
	$(call apt_install,busybox-static)

test: setup lint $(SSHD) $(DEBOOTSTRAP) $(BUSYBOX) $(LXC_START) $(LXC_DEBIAN) $(PROMETHEUS) \
		$(NATS_SERVER)
	$(PY) tests/debian_rootfs.py >/dev/null
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The benchmark suite, lxcflow beside LXC: figures in bench/results/
# (JSON, Markdown, PNG). bench-quick is its small-n mode, run by CI.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'matplotlib>=3.8'
	touch $@

bench: setup $(VENV)/.bench-installed $(LXC_START) $(NATS_SERVER)
	$(PY) bench/suite.py --out bench/results

bench-quick: setup $(VENV)/.bench-installed $(LXC_START) $(NATS_SERVER)
	$(PY) bench/suite.py --quick --out bench/results/quick

clean:
	rm -rf $(VENV) lxcflow/runtime/bin build *.egg-info
