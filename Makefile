# The two set-up commands the README names:
#   make run   - a fresh machine to the standalone stack (collector + server + dashboard, SQLite)
#   make test  - a fresh machine to the whole test suite passing
# Both create their own virtualenv. Run as root, `make test` also installs the Debian
# packages the real-component tests need; as another user it names what is missing.

PYTHON ?= python3
VENV ?= .venv
SYSTEM_PACKAGES := docker.io busybox-static mariadb-server chromium prometheus prometheus-alertmanager debootstrap iptables nftables openssl
SYSTEM_COMMANDS := dockerd busybox mariadbd chromium prometheus promtool prometheus-alertmanager amtool debootstrap iptables nft openssl

.PHONY: run test system-deps venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[all]'
	touch $@

run: venv
	$(VENV)/bin/srvmon standalone

system-deps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else \
	  echo "missing:$$missing - install the Debian packages '$(SYSTEM_PACKAGES)' (tests needing them will be skipped)"; \
	fi

test: system-deps venv
	$(VENV)/bin/pip install -q tox
	$(VENV)/bin/tox
