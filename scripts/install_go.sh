#!/usr/bin/env bash
# install_go.sh: the Dockerfile's first step. Installs, as root on Debian or
# Ubuntu, the packages the build needs (a C/C++ toolchain, curl, git, unzip)
# and Go from go.dev into /usr/local/go.
#
#   scripts/install_go.sh [--version=1.24.6] [--dry-run]
#
# --dry-run prints the packages and the URL and changes nothing (the tests
# run it that way: scripts/scripts_test.go). A Go of that version already in
# /usr/local/go is kept.
set -euo pipefail

version=1.24.6
dry=0
for a in "$@"; do
	case "$a" in
	--version=*) version=${a#--version=} ;;
	--dry-run) dry=1 ;;
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install_go: unknown option $a (see --help)" >&2
		exit 2
		;;
	esac
done
[[ "$version" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || {
	echo "install_go: --version=$version is not a Go version like 1.24.6" >&2
	exit 2
}
case "$(uname -m)" in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*)
	echo "install_go: unsupported machine $(uname -m)" >&2
	exit 2
	;;
esac
pkgs=(build-essential binutils ca-certificates curl git unzip make)
url="https://go.dev/dl/go${version}.linux-${arch}.tar.gz"

if ((dry)); then
	echo "install_go: would apt-get install ${pkgs[*]}"
	echo "install_go: would download $url into /usr/local/go"
	exit 0
fi
if [[ $(id -u) != 0 ]]; then
	echo "install_go: run as root (it installs apt packages and /usr/local/go)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"
rm -rf /var/lib/apt/lists/*
if [[ -x /usr/local/go/bin/go ]] && [[ "$(/usr/local/go/bin/go env GOVERSION)" == "go$version" ]]; then
	echo "install_go: go$version already in /usr/local/go"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL "$url" -o "$tmp/go.tgz"
rm -rf /usr/local/go
tar -C /usr/local -xzf "$tmp/go.tgz"
echo "install_go: installed $(/usr/local/go/bin/go version)"
