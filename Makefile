# edgeslm.pi5 — set-up, lab and checks on a Debian 12 machine (run as root).
#
#   make lab        build the virtual Pi 5 lab and run playbooks/site.yml on it
#   make lab-down   remove the lab
#   make serve      the lab site's SLM on this machine (make serve-down stops it)
#   make test       everything CI checks (scripts/run-checks), pytest-style summary at the end
#
# Every target installs what it needs first (apt packages, .venv, node images);
# a second run finds everything in place and goes straight to work.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO := $(CURDIR)
VENV := $(REPO)/.venv
VENV_CHECKOV := $(REPO)/.venv-checkov
BUILD := $(REPO)/.build
PYTHON ?= python3

export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(REPO)/collections
export CONTAINERS_CONF := $(REPO)/molecule/resources/containers.conf
export ANSIBLE_CONFIG := $(REPO)/ansible.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Debian packages: podman + runc (crun refuses this machine's hybrid cgroups),
# debootstrap for the node images, qemu-user-static for arm64 nodes. Bookworm's podman uses
# the CNI backend, where container names resolve on a podman network only through the
# dnsname plugin: without it a k3s agent cannot reach its server by name.
# docker-registry (the CNCF Distribution registry) and apache2-utils (htpasswd, bcrypt) are the OCI
# tests' real registry: the tests run the binary themselves on loopback; its systemd unit never runs.
# prometheus (with promtool), prometheus-node-exporter and age serve `make serve`/`serve-test`: the
# binaries run with the serve state's own config on loopback (their units never start here).
APT_PACKAGES := podman runc golang-github-containernetworking-plugin-dnsname debootstrap \
	qemu-user-static binfmt-support dpkg-dev git make docker-registry apache2-utils \
	prometheus prometheus-node-exporter age
APT_STAMP := $(BUILD)/apt.stamp
VENV_STAMP := $(VENV)/.installed
VENV_RELEASE := $(REPO)/.venv-release
RELEASE_STAMP := $(VENV_RELEASE)/.installed
CHECKOV_STAMP := $(VENV_CHECKOV)/.installed
GETPIP := $(HOME)/.ansible/test/cache/get_pip_24_2.py

.PHONY: help setup apt venv images test-images image-llama-server serve serve-down serve-test lab lab-down test test-static molecule validate-gitops sanity clean oci-tools

help:
	@sed -n '2,9p' Makefile | sed 's/^# \{0,1\}//'

# Tools every check needs (apt packages, venvs, ansible-test's get-pip stand-in, oras).
TOOLS := $(APT_STAMP) $(VENV_STAMP) $(CHECKOV_STAMP) $(GETPIP) oci-tools

setup: $(TOOLS) images

$(APT_STAMP): Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(VENV_STAMP): requirements/test.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/test.txt
	@touch $@

# checkov pins packaging<24 while pytest needs >=24: it gets a venv of its own.
$(CHECKOV_STAMP): requirements/checkov.txt
	@test -x $(VENV_CHECKOV)/bin/python || $(PYTHON) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/pip install -q -r requirements/checkov.txt
	@touch $@

# The release side (model signing): model-signing pinned with its dependencies, apart from .venv.
$(RELEASE_STAMP): requirements/release.txt
	@test -x $(VENV_RELEASE)/bin/python || $(PYTHON) -m venv $(VENV_RELEASE)
	$(VENV_RELEASE)/bin/pip install -q -r requirements/release.txt
	@touch $@

# The oras client from Debian trixie's package (a Go binary), pinned by the .deb's sha256 and
# unpacked into .build/tools; nothing from trixie is installed system-wide. apt-get downloads it
# through a private apt state that lists trixie on the machine's own Debian mirror.
ORAS := $(BUILD)/tools/oras
ORAS_DEB := oras_1.2.0-1+b9_amd64.deb
ORAS_DEB_SHA256 := 5f138419f0e4bc128ee4717b06190dc5770cf120ab7e3a991e5b3e9158f3189e
ORAS_APT := $(BUILD)/apt-trixie
ORAS_STAMP := $(BUILD)/tools/.oras-$(ORAS_DEB_SHA256).stamp

# Keyed by the pin: a change elsewhere in this Makefile downloads nothing again.
$(ORAS_STAMP): | $(APT_STAMP)
	@mkdir -p $(ORAS_APT)/lists/partial $(ORAS_APT)/cache/archives/partial $(ORAS_APT)/parts $(dir $(ORAS))
	@mirror=$$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1); \
	test -n "$$mirror" || mirror=$$(awk '$$1 == "deb" && $$3 ~ /^bookworm$$/ {print $$2; exit}' /etc/apt/sources.list); \
	test -n "$$mirror" || { echo "oras: no Debian mirror found in the apt sources" >&2; exit 1; }; \
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$$mirror" > $(ORAS_APT)/sources.list
	@apt_opts="-o Dir::State::Lists=$(ORAS_APT)/lists -o Dir::Cache=$(ORAS_APT)/cache \
	  -o Dir::Etc::SourceList=$(ORAS_APT)/sources.list -o Dir::Etc::SourceParts=$(ORAS_APT)/parts \
	  -o APT::Architecture=amd64 -o Acquire::Languages=none -qq"; \
	apt-get $$apt_opts update && cd $(ORAS_APT) && apt-get $$apt_opts download oras=1.2.0-1+b9
	@echo "$(ORAS_DEB_SHA256)  $(ORAS_APT)/$(ORAS_DEB)" | sha256sum -c --quiet
	@rm -rf $(ORAS_APT)/root && dpkg-deb -x $(ORAS_APT)/$(ORAS_DEB) $(ORAS_APT)/root
	@install -m 0755 $(ORAS_APT)/root/usr/bin/oras $(ORAS)
	@$(ORAS) version | sed -n 1p
	@touch $@

oci-tools: $(APT_STAMP) $(ORAS_STAMP) $(RELEASE_STAMP)

# ansible-test --venv downloads get-pip from a host this network cannot reach;
# the stand-in runs pip from the pip wheel on PyPI instead.
$(GETPIP): scripts/ansible-test-get-pip.py $(VENV_STAMP)
	@mkdir -p $(dir $@)
	$(VENV)/bin/pip download -q --no-deps pip==24.2 -d $(dir $@)
	@cp scripts/ansible-test-get-pip.py $@

# Every node image Molecule and the lab use (scripts/node-image; cached by recipe hash).
NODE_IMAGES := --release bookworm --release trixie --arch amd64 --arch arm64

images: $(APT_STAMP)
	$(PYTHON) scripts/node-image $(NODE_IMAGES)

# What `make test` needs: the node images and the llama.cpp server image (serve-test). On a fresh
# machine the server's compile keeps both cores busy (5 minutes alone, 7 beside debootstrap), while
# debootstrap mostly waits on the mirror and qemu keeps one core busy, so the two are built side by
# side once the server's builder (the node image its recipe names) exists. Both are cached by recipe
# hash: a second run builds nothing.
test-images: $(APT_STAMP)
	$(PYTHON) scripts/llama-server-image --arch amd64 --builder-only
	@$(PYTHON) scripts/llama-server-image --arch amd64 & server=$$!; \
	nodes=0; $(PYTHON) scripts/node-image $(NODE_IMAGES) || nodes=$$?; \
	built=0; wait $$server || built=$$?; \
	if [ $$built -ne 0 ]; then echo "test-images: the llama.cpp server image failed (.build/logs/image-llama-server-amd64.log)"; fi; \
	[ $$nodes -eq 0 ] && [ $$built -eq 0 ]

# The llama.cpp server image (images/llama-server), tagged by the recipe's hash: a second run
# with an unchanged recipe builds nothing. `make image-llama-server ARCH=arm64` builds it
# under qemu (slow). Build output: .build/logs/image-llama-server-<arch>.log.
image-llama-server: ARCH ?= amd64
image-llama-server: $(APT_STAMP)
	$(PYTHON) scripts/llama-server-image --arch $(ARCH)

# The lab site's SLM on this machine (tests/serve/serve.py): the project-built server image through a
# loopback registry, the model staged by model_cache, the pod run by the kubelet TEST STAND-IN,
# Traefik and Prometheus. Prints the OpenAI URL, this run's API key and Prometheus's URL, and leaves
# them running; `make serve-down` stops them (by PID) and removes .build/serve.
serve: $(APT_STAMP) $(VENV_STAMP)
	@$(VENV)/bin/python tests/serve/serve.py up

serve-down: $(VENV_STAMP)
	@$(VENV)/bin/python tests/serve/serve.py down

# What `make test` runs as its serve-test stage: tests/serve against its own serve run.
serve-test: $(APT_STAMP) $(VENV_STAMP)
	$(VENV)/bin/python scripts/run-checks --only serve-test

lab: setup
	$(VENV)/bin/python scripts/lab up

lab-down: $(VENV_STAMP)
	$(VENV)/bin/python scripts/lab down

test: $(TOOLS) test-images
	$(VENV)/bin/python scripts/run-checks

test-static: $(TOOLS)
	$(VENV)/bin/python scripts/run-checks --static

molecule: setup
	$(VENV)/bin/python scripts/run-checks --only molecule:$(S)

validate-gitops: $(VENV_STAMP) $(CHECKOV_STAMP)
	$(VENV)/bin/python scripts/validate-gitops

sanity: $(VENV_STAMP) $(GETPIP)
	$(VENV)/bin/python scripts/run-checks --only ansible-test-sanity

clean: lab-down
	rm -rf $(BUILD) dist tests/output
