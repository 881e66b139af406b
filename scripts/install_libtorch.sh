#!/usr/bin/env bash
# scripts/install_libtorch.sh: find (or fetch) libtorch, build
# cgotorch/build/libcgotorch.so against it and install the library where the
# Go toolchain and the dynamic loader find it with no environment variables.
# Run with --help for the options. Safe to run again: it rebuilds only when
# the chosen libtorch changed (or with --force) and reinstalls only when the
# library changed.
set -euo pipefail

readonly DEFAULT_VERSION=2.8.0   # official zip used when nothing else is found
readonly DEFAULT_VARIANT=cpu
readonly CONF_FILE=/etc/ld.so.conf.d/golora-libtorch.conf

usage() {
	cat <<'EOF'
Usage: scripts/install_libtorch.sh [options]

Finds libtorch, builds cgotorch/build/libcgotorch.so against it and installs
the library so that `go build`/`go test` of github.com/golora/golora work with
nothing exported.

Where libtorch comes from, first match wins:
  1. $LIBTORCH, an unpacked official libtorch zip ($LIBTORCH/include, /lib).
  2. The PyTorch of `python3` on PATH (or of $PYTHON when set).
  3. Debian/Ubuntu: apt packages libtorch-dev + libopenblas0-pthread
     (installed when missing and running as root).
  4. The official zip from download.pytorch.org, unpacked into
     /opt/libtorch-<version>-<variant> (root) or
     ~/.cache/golora/libtorch-<version>-<variant>.
  --cuda or --version skip 2 and 3 and go straight to the official zip.

Options:
  --prefix=DIR       install libcgotorch.so into DIR/lib
                     (default /usr/local as root, $HOME/.local otherwise)
  --cuda=VARIANT     official zip variant: cpu, cu118, cu126, cu128, ...
                     (default cpu)
  --version=VER      official zip version (default 2.8.0)
  --cxx11-abi=0|1    override the detected _GLIBCXX_USE_CXX11_ABI
  --no-python-refs   do not install python3-torch (needed only by `make refs`
                     to regenerate the PyTorch reference test files)
  --force            rebuild libcgotorch.so from scratch
  --dry-run          report what would be used and done; change nothing
  -h, --help         show this help

Environment:
  LIBTORCH           unpacked libtorch to use (see 1.)
  PYTHON             Python interpreter to ask for its PyTorch (see 2.)
  LIBTORCH_URL_BASE  mirror of https://download.pytorch.org/libtorch
  CXX, CC            compilers (default g++, cc)
EOF
}

log() { printf 'install_libtorch: %s\n' "$*"; }
warn() { printf 'install_libtorch: warning: %s\n' "$*" >&2; }
die() {
	printf 'install_libtorch: error: %s\n' "$*" >&2
	exit 1
}

# ---- options ---------------------------------------------------------------

prefix=""
variant=""
version=""
abi_override=""
python_refs=1
force=0
dry_run=0

while (($#)); do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--prefix=*) prefix=${1#*=} ;;
	--cuda=*) variant=${1#*=} ;;
	--version=*) version=${1#*=} ;;
	--prefix | --cuda | --version)
		(($# >= 2)) || die "$1 needs a value"
		case "$1" in
		--prefix) prefix=$2 ;;
		--cuda) variant=$2 ;;
		--version) version=$2 ;;
		esac
		shift
		;;
	--cxx11-abi=*) abi_override=${1#*=} ;;
	--no-python-refs) python_refs=0 ;;
	--force) force=1 ;;
	--dry-run) dry_run=1 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

case "$abi_override" in "" | 0 | 1) ;; *) die "--cxx11-abi must be 0 or 1" ;; esac
if [[ -n "$variant" && ! "$variant" =~ ^(cpu|cu[0-9]+|rocm[0-9.]+)$ ]]; then
	die "--cuda=$variant: expected cpu, cuNNN (e.g. cu126) or rocmX.Y"
fi
if [[ -n "$version" && ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	die "--version=$version: expected X.Y.Z (e.g. $DEFAULT_VERSION)"
fi
want_zip=0
[[ -n "$variant$version" ]] && want_zip=1
variant=${variant:-$DEFAULT_VARIANT}
version=${version:-$DEFAULT_VERSION}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

# ---- helpers ---------------------------------------------------------------

is_debian_like() {
	[[ -f /etc/debian_version ]] && return 0
	[[ -r /etc/os-release ]] && grep -Eq '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

multiarch() {
	dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
		gcc -print-multiarch 2>/dev/null ||
		echo "$(uname -m)-linux-gnu"
}

pkg_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing_pkgs() { # prints the packages among "$@" that are not installed
	local p
	for p in "$@"; do pkg_installed "$p" || printf '%s\n' "$p"; done
}

# apt_install PKG...: installs the missing ones as root. Returns 2 when some
# are missing and we are not root (the caller words the advice).
apt_install() {
	local missing p
	mapfile -t missing < <(missing_pkgs "$@")
	((${#missing[@]})) || return 0
	if ((dry_run)); then
		log "would run: apt-get install -y ${missing[*]}"
		return 0
	fi
	((is_root)) || return 2
	for p in "${missing[@]}"; do
		if ! apt-cache show "$p" >/dev/null 2>&1; then
			log "apt does not know $p yet; running apt-get update"
			DEBIAN_FRONTEND=noninteractive apt-get update -q
			break
		fi
	done
	log "installing with apt: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; then
		log "apt-get install failed; retrying after apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
}

# torch_probe PYTHON: asks PYTHON for its torch, sets P_VERSION, P_DIR (the
# torch package folder), P_ABI (torch._C._GLIBCXX_USE_CXX11_ABI) and, when
# it has no usable torch, P_WHY instead. It needs only torch itself: not
# torch.utils.cpp_extension, which imports setuptools (absent on a fresh
# Debian). The current directory is taken off sys.path, or the Go package
# folder torch/ of this repository would import as an empty namespace
# package. Answers are cached per interpreter.
declare -A probe_cache=()
torch_probe() {
	local py=$1 out line
	P_VERSION="" P_DIR="" P_ABI="" P_WHY=""
	if [[ -z "${probe_cache[$py]+set}" ]]; then
		# shellcheck disable=SC2016
		out=$("$py" -c '
import os, sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
try:
    import torch
except BaseException as e:
    msg = (str(e).strip().splitlines() or [""])[-1]
    print("WHY=cannot import torch (%s: %s)" % (type(e).__name__, msg))
    sys.exit(0)
f = getattr(torch, "__file__", None)
if not f or not hasattr(torch, "__version__"):
    print("WHY=its torch (%s) is not PyTorch" % (f or " ".join(getattr(torch, "__path__", []))))
    sys.exit(0)
print("VERSION=" + torch.__version__)
print("DIR=" + os.path.dirname(os.path.abspath(f)))
abi = getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", None)
print("ABI=" + ("" if abi is None else str(int(abi))))
' 2>&1) || out+=$'\n'"WHY=it failed to run: $(tail -n1 <<<"$out")"
		probe_cache[$py]=$out
	fi
	while IFS= read -r line; do
		case "$line" in
		VERSION=*) P_VERSION=${line#VERSION=} ;;
		DIR=*) P_DIR=${line#DIR=} ;;
		ABI=*) P_ABI=${line#ABI=} ;;
		WHY=*) P_WHY=${line#WHY=} ;;
		esac
	done <<<"${probe_cache[$py]}"
	[[ -n "$P_VERSION" && -z "$P_WHY" ]] || P_WHY=${P_WHY:-it printed no torch version}
	[[ -z "$P_WHY" ]]
}

# sys_py_has_torch: /usr/bin/python3, which runs the reference generators
# (make refs), has torch. Sets P_* like torch_probe.
sys_py_has_torch() {
	[[ -x /usr/bin/python3 ]] || {
		P_WHY="there is no /usr/bin/python3"
		return 1
	}
	torch_probe /usr/bin/python3
}

# has_libs DIR: DIR holds the three libraries libcgotorch links.
has_libs() {
	[[ -e "$1/libtorch.so" && -e "$1/libtorch_cpu.so" && -e "$1/libc10.so" ]]
}

# detect_abi LIBDIR: 1 when libc10 exports std::__cxx11 symbols.
detect_abi() {
	command -v nm >/dev/null || die "nm not found (install binutils) or pass --cxx11-abi=0|1"
	local n
	n=$(nm -DC "$1/libc10.so" 2>/dev/null | grep -c 'std::__cxx11' || true)
	if ((n > 0)); then echo 1; else echo 0; fi
}

# Results of discovery.
T_SOURCE="" T_VERSION="" T_INCLUDES="" T_LIBDIR="" T_ABI="" T_DEBIAN=0

use_libtorch_dir() { # DIR LABEL
	local dir=$1 label=$2 v=""
	[[ -d "$dir/include" && -d "$dir/lib" ]] ||
		die "$label: $dir does not look like libtorch (no include/ and lib/)"
	has_libs "$dir/lib" ||
		die "$label: $dir/lib lacks libtorch.so, libtorch_cpu.so or libc10.so"
	[[ -f "$dir/include/torch/csrc/api/include/torch/torch.h" ]] ||
		die "$label: $dir/include/torch/csrc/api/include/torch/torch.h missing"
	if [[ -f "$dir/build-version" ]]; then
		v=$(head -n1 "$dir/build-version")
	elif [[ -f "$dir/include/torch/version.h" ]]; then
		v=$(sed -n 's/^#define TORCH_VERSION "\(.*\)"$/\1/p' "$dir/include/torch/version.h" | head -n1)
	fi
	T_SOURCE=$label
	T_VERSION=${v:-unknown}
	T_INCLUDES="$dir/include $dir/include/torch/csrc/api/include"
	T_LIBDIR="$dir/lib"
	T_ABI=$(detect_abi "$T_LIBDIR")
	log "found libtorch $T_VERSION in $dir ($label); CXX11 ABI $T_ABI (from libc10.so)"
}

use_debian() { # LABEL
	local ma
	ma=$(multiarch)
	T_SOURCE=$1
	T_VERSION=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo unknown)
	T_INCLUDES="/usr/include/torch/csrc/api/include /usr/include"
	T_LIBDIR="/usr/lib/$ma"
	T_ABI=1
	T_DEBIAN=1
}

try_python() {
	local py=${PYTHON:-python3} path real
	if ! path=$(command -v "$py" 2>/dev/null); then
		log "PyTorch lookup: no $py on PATH; skipping it"
		return 1
	fi
	if ! torch_probe "$path"; then
		log "PyTorch lookup: $py ($path): $P_WHY; skipping it"
		return 1
	fi
	local incs="$P_DIR/include $P_DIR/include/torch/csrc/api/include" libdir=$P_DIR/lib
	# Debian's python3-torch links torch/lib and torch/include to the system
	# directories; describe it as the Debian package so that every route to
	# the same libtorch records the same settings (and so does not rebuild).
	if has_libs "$libdir" && is_debian_like && pkg_installed libtorch-dev; then
		real=$(dirname "$(readlink -f "$libdir/libtorch.so")")
		if [[ "$real" == "/usr/lib/$(multiarch)" ]]; then
			use_debian "Debian libtorch-dev, the torch of $py"
			log "PyTorch lookup: $py ($path) has torch $P_VERSION, which is Debian's libtorch-dev $T_VERSION; using it"
			return 0
		fi
	fi
	local missing=""
	has_libs "$libdir" || missing="libtorch.so, libtorch_cpu.so or libc10.so in $libdir"
	[[ -f "$P_DIR/include/torch/csrc/api/include/torch/torch.h" ]] ||
		missing+="${missing:+, and }the C++ headers ($P_DIR/include/torch/csrc/api/include/torch/torch.h)"
	if [[ -n "$missing" ]]; then
		[[ "$P_DIR" == /usr/lib/python3/* ]] && missing+=" (Debian's libtorch-dev has them)"
		log "PyTorch lookup: $py ($path) has torch $P_VERSION in $P_DIR but lacks $missing; skipping it"
		return 1
	fi
	T_SOURCE="PyTorch of $py"
	T_VERSION=$P_VERSION
	T_INCLUDES=$incs
	T_LIBDIR=$libdir
	if [[ -n "$P_ABI" ]]; then
		T_ABI=$P_ABI
	else
		T_ABI=$(detect_abi "$libdir")
	fi
	log "PyTorch lookup: $py ($path) has torch $P_VERSION in $P_DIR; using it (CXX11 ABI $T_ABI)"
	return 0
}

try_debian() {
	is_debian_like && command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || return 1
	local rc=0 need=(libtorch-dev libopenblas0-pthread)
	((python_refs)) && ! sys_py_has_torch && need+=(python3-torch)
	if pkg_installed libtorch-dev; then
		log "Debian package libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev) is installed"
	else
		log "libtorch-dev is not installed"
		apt_install "${need[@]}" || rc=$?
		unset 'probe_cache[/usr/bin/python3]' # ask again later: apt may have installed python3-torch
		if ((rc == 2)); then
			die "not root; install the packages with:
    sudo apt-get install -y $(missing_pkgs "${need[@]}" | tr '\n' ' ')
then run this script again"
		fi
		((dry_run)) || pkg_installed libtorch-dev || die "libtorch-dev did not install"
	fi
	use_debian "Debian libtorch-dev"
	return 0
}

zip_url_names() { # VERSION VARIANT: candidate file names, preferred first
	local ver=$1 var=$2 major minor
	major=${ver%%.*}
	minor=${ver#*.}
	minor=${minor%%.*}
	local newname="libtorch-shared-with-deps-${ver}%2B${var}.zip"
	local oldname="libtorch-cxx11-abi-shared-with-deps-${ver}%2B${var}.zip"
	# From 2.7 on, Linux libtorch is built with the CXX11 ABI only and the
	# plain name is that build; before, the plain name was the pre-CXX11 ABI
	# build and the CXX11 ABI build had "cxx11-abi" in its name.
	if ((major > 2 || (major == 2 && minor >= 7))); then
		printf '%s\n' "$newname" "$oldname"
	else
		printf '%s\n' "$oldname" "$newname"
	fi
}

download() { # URL FILE
	if command -v curl >/dev/null; then
		curl -fL --retry 3 --progress-bar -o "$2" "$1"
	else
		wget -q --show-progress -O "$2" "$1"
	fi
}

use_zip() {
	local dest
	if ((is_root)); then
		dest=/opt/libtorch-$version-$variant
	else
		dest=${XDG_CACHE_HOME:-$HOME/.cache}/golora/libtorch-$version-$variant
	fi
	if [[ -f "$dest/lib/libtorch.so" ]]; then
		log "using the official libtorch $version+$variant already unpacked in $dest"
		use_libtorch_dir "$dest" "official zip $version+$variant"
		return 0
	fi
	local base=${LIBTORCH_URL_BASE:-https://download.pytorch.org/libtorch}
	local names
	mapfile -t names < <(zip_url_names "$version" "$variant")
	if ((dry_run)); then
		log "would download $base/$variant/${names[0]} and unpack it into $dest"
		T_SOURCE="official zip $version+$variant" T_VERSION="$version+$variant"
		T_INCLUDES="$dest/include $dest/include/torch/csrc/api/include" T_LIBDIR="$dest/lib"
		T_ABI=${abi_override:-?}
		return 0
	fi
	local tools=()
	command -v unzip >/dev/null || tools+=(unzip)
	command -v curl >/dev/null || command -v wget >/dev/null || tools+=(curl ca-certificates)
	if ((${#tools[@]})); then
		if is_debian_like && ((is_root)); then
			apt_install "${tools[@]}"
		else
			die "need ${tools[*]} to fetch libtorch; install them and run again"
		fi
	fi
	mkdir -p "$(dirname "$dest")"
	tmp=$(mktemp -d "$(dirname "$dest")/.libtorch-download.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	local name ok=0
	for name in "${names[@]}"; do
		log "downloading $base/$variant/$name"
		if download "$base/$variant/$name" "$tmp/libtorch.zip"; then
			ok=1
			break
		fi
		log "not available: $base/$variant/$name"
	done
	((ok)) || die "could not download libtorch $version for $variant; check --version/--cuda against https://pytorch.org/get-started/locally/"
	log "unpacking into $dest"
	unzip -q "$tmp/libtorch.zip" -d "$tmp"
	[[ -d "$tmp/libtorch" ]] || die "the zip has no libtorch/ directory"
	rm -rf "$dest"
	mv "$tmp/libtorch" "$dest"
	rm -rf "$tmp"
	trap - EXIT
	use_libtorch_dir "$dest" "official zip $version+$variant"
}

# ---- 0. compilers --------------------------------------------------------------

# g++ builds libcgotorch.so, cc links the check program (and cgo needs it),
# nm reads the ABI of a libtorch zip.
if ! command -v "${CXX:-g++}" >/dev/null || ! command -v "${CC:-cc}" >/dev/null ||
	! command -v nm >/dev/null || ! command -v make >/dev/null; then
	if is_debian_like && command -v apt-get >/dev/null; then
		rc=0
		apt_install build-essential || rc=$?
		((rc == 2)) && die "no C/C++ toolchain; install it with:
    sudo apt-get install -y build-essential"
		((dry_run)) || command -v "${CXX:-g++}" >/dev/null || die "C++ compiler ${CXX:-g++} not found"
		((dry_run)) || command -v "${CC:-cc}" >/dev/null || die "C compiler ${CC:-cc} not found"
	else
		die "need ${CXX:-g++}, ${CC:-cc}, nm and make; install a C/C++ toolchain first"
	fi
fi

# ---- 1. find libtorch --------------------------------------------------------

if [[ -n "${LIBTORCH:-}" ]]; then
	((want_zip)) && warn "LIBTORCH is set; ignoring --cuda/--version"
	[[ -d "$LIBTORCH" ]] || die "LIBTORCH=$LIBTORCH is not a directory"
	use_libtorch_dir "$(cd "$LIBTORCH" && pwd -P)" "\$LIBTORCH"
elif ((!want_zip)) && try_python; then
	:
elif ((!want_zip)) && try_debian; then
	:
else
	((want_zip)) || log "no libtorch found on this system; falling back to the official zip"
	use_zip
fi
if [[ -n "$abi_override" && "$abi_override" != "$T_ABI" ]]; then
	log "CXX11 ABI: using $abi_override from --cxx11-abi (detected $T_ABI)"
	T_ABI=$abi_override
fi

# Debian's libtorch uses whatever libblas.so.3 is selected; without OpenBLAS
# that is the reference BLAS, about 25 times slower for matrix products.
if ((T_DEBIAN)); then
	if pkg_installed libopenblas0-pthread; then
		log "libopenblas0-pthread is installed"
	else
		rc=0
		apt_install libopenblas0-pthread || rc=$?
		((rc == 2)) && warn "libopenblas0-pthread is missing, so libtorch uses the slow reference BLAS; install it with:
    sudo apt-get install -y libopenblas0-pthread"
	fi
	blas=$(readlink -f "/usr/lib/$(multiarch)/libblas.so.3" 2>/dev/null || true)
	[[ -n "$blas" ]] && log "BLAS in use: $blas"
	if [[ -n "$blas" && "$blas" != *openblas* ]] && ! ((dry_run)); then
		warn "libblas.so.3 is not OpenBLAS; select it with: update-alternatives --config libblas.so.3-$(multiarch)"
	fi
fi

# c10d's Gloo backend (the dist package) needs Gloo's headers when
# libcgotorch.so is built, with either libtorch line (PyPI's wheels ship
# c10d's headers but not Gloo's): Debian's libgloo-dev. Without them the
# build still succeeds and dist reports that it is unavailable.
if is_debian_like && command -v apt-get >/dev/null; then
	if pkg_installed libgloo-dev; then
		log "libgloo-dev is installed: distributed training (Gloo) is built"
	else
		rc=0
		apt_install libgloo-dev || rc=$?
		((rc == 2)) && warn "libgloo-dev is missing, so libcgotorch.so is built without distributed training; install it with:
    sudo apt-get install -y libgloo-dev"
	fi
fi

# The PyTorch reference files (make refs) are generated with /usr/bin/python3.
if ((python_refs)) && is_debian_like && command -v apt-get >/dev/null; then
	if sys_py_has_torch; then
		log "reference generators (make refs): /usr/bin/python3 has torch $P_VERSION"
	else
		log "reference generators (make refs): /usr/bin/python3: $P_WHY; they need python3-torch"
		rc=0
		apt_install python3-torch || rc=$?
		unset 'probe_cache[/usr/bin/python3]'
		if ((rc == 2)); then
			warn "not root, so make refs cannot run; install python3-torch with:
    sudo apt-get install -y python3-torch"
		elif ! ((dry_run)); then
			if sys_py_has_torch; then
				log "reference generators (make refs): /usr/bin/python3 has torch $P_VERSION now"
			else
				warn "python3-torch is installed but /usr/bin/python3 still $P_WHY, so make refs cannot run"
			fi
		fi
	fi
fi

log "libtorch: $T_SOURCE, version $T_VERSION"
log "  TORCH_INCLUDES=$T_INCLUDES"
log "  TORCH_LIBDIR=$T_LIBDIR"
log "  TORCH_CXX11_ABI=$T_ABI"

# ---- 2. build ----------------------------------------------------------------

if [[ -z "$prefix" ]]; then
	if ((is_root)); then prefix=/usr/local; else prefix=${HOME:?HOME is not set}/.local; fi
fi
[[ "$prefix" == /* ]] || prefix=$(pwd)/$prefix
libdir=${prefix%/}/lib

if ((dry_run)); then
	log "would build cgotorch/build/libcgotorch.so and install it into $libdir"
	exit 0
fi

build=$repo/cgotorch/build
env_file=$build/torch.env
settings=$(
	printf "TORCH_VERSION='%s'\n" "$T_VERSION"
	printf "TORCH_INCLUDES='%s'\n" "$T_INCLUDES"
	printf "TORCH_LIBDIR='%s'\n" "$T_LIBDIR"
	printf "TORCH_CXX11_ABI='%s'\n" "$T_ABI"
)
make_args=(BUILD=build "TORCH_INCLUDES=$T_INCLUDES" "TORCH_LIBDIR=$T_LIBDIR" "TORCH_CXX11_ABI=$T_ABI")
# Keep an outer make (make install) from steering this one.
submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$repo/cgotorch" "$@"; }

reason=""
if ((force)); then
	reason="--force"
elif [[ -f "$env_file" ]]; then
	old=$(grep '^TORCH_' "$env_file" | grep -v '^TORCH_SOURCE=' || true)
	if [[ "$old" != "$settings" ]]; then
		reason="libtorch changed since the last build (was: $(echo "$old" | tr '\n' ' '))"
	fi
elif compgen -G "$build/*.o" >/dev/null || [[ -e "$build/libcgotorch.so" ]]; then
	reason="no record of which libtorch the existing build used"
fi
if [[ -n "$reason" ]]; then
	log "cleaning cgotorch/build: $reason"
	submake clean >/dev/null
fi
mkdir -p "$build"
{
	echo "# Written by scripts/install_libtorch.sh: the libtorch libcgotorch.so was built with."
	printf "TORCH_SOURCE='%s'\n" "$T_SOURCE"
	echo "$settings"
} >"$env_file"

jobs=$(nproc 2>/dev/null || echo 2)
if submake -q "${make_args[@]}" all >/dev/null 2>&1; then
	log "cgotorch/build/libcgotorch.so is up to date"
else
	log "building cgotorch/build/libcgotorch.so with $jobs jobs (a few minutes from scratch)"
	submake -j"$jobs" "${make_args[@]}" all
fi
so=$build/libcgotorch.so
[[ -f "$so" ]] || die "build did not produce $so"

# ---- 3. install --------------------------------------------------------------

if ! mkdir -p "$libdir" 2>/dev/null || [[ ! -w "$libdir" ]]; then
	die "cannot write to $libdir; run as root (sudo) or pass --prefix=DIR"
fi
dest=$libdir/libcgotorch.so
if cmp -s "$so" "$dest"; then
	log "$dest is already up to date"
else
	install -m 0755 "$so" "$dest" # replaces the file, never rewrites it in place
	log "installed $dest"
fi

# in_loader_path DIR: ld.so searches DIR without our config file.
in_loader_path() {
	local d conf line
	d=$(readlink -f "$1")
	case "$d" in
	/lib | /usr/lib | /lib64 | /usr/lib64 | /usr/local/lib | "/lib/$(multiarch)" | "/usr/lib/$(multiarch)") return 0 ;;
	esac
	for conf in /etc/ld.so.conf /etc/ld.so.conf.d/*.conf; do
		[[ -f "$conf" && "$conf" != "$CONF_FILE" ]] || continue
		while IFS= read -r line; do
			line=${line%%#*}
			line=${line//[[:space:]]/}
			[[ -n "$line" && "$line" != include* && -d "$line" ]] || continue
			[[ "$(readlink -f "$line")" == "$d" ]] && return 0
		done <"$conf"
	done
	return 1
}

if ((is_root)); then
	extra=()
	in_loader_path "$libdir" || extra+=("$libdir")
	in_loader_path "$T_LIBDIR" || extra+=("$T_LIBDIR")
	if ((${#extra[@]})); then
		want=$(printf '# Written by golora scripts/install_libtorch.sh.\n'; printf '%s\n' "${extra[@]}")
		if [[ "$(cat "$CONF_FILE" 2>/dev/null)" != "$want" ]]; then
			echo "$want" >"$CONF_FILE"
			log "wrote $CONF_FILE: ${extra[*]}"
		else
			log "$CONF_FILE is up to date"
		fi
	elif [[ -e "$CONF_FILE" ]]; then
		rm -f "$CONF_FILE"
		log "removed $CONF_FILE (no longer needed)"
	fi
	ldconfig_bin=$(command -v ldconfig || echo /sbin/ldconfig)
	"$ldconfig_bin"
	log "ran ldconfig"
	export_lines=()
else
	ldp=$libdir
	in_loader_path "$T_LIBDIR" || ldp+=":$T_LIBDIR"
	export_lines=(
		"export CGO_LDFLAGS=\"-L$libdir -Wl,-rpath,$libdir\""
		"export LD_LIBRARY_PATH=\"$ldp\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
	)
fi

# ---- 4. verify ---------------------------------------------------------------

unresolved=$(ldd "$dest" | grep 'not found' || true)
if grep -q 'libcuda\.so' <<<"$unresolved"; then
	warn "libcuda.so.1 not found: it comes with the NVIDIA driver (absent in a build container is fine)"
	unresolved=$(grep -v 'libcuda\.so' <<<"$unresolved" || true)
fi
[[ -z "$unresolved" ]] || die "unresolved libraries of $dest:
$unresolved"
log "ldd $dest: all libraries resolved"

# Link and run a small C program the way cgo links: -lcgotorch and, for a
# system install, nothing else (no rpath, no LD_LIBRARY_PATH).
cc=${CC:-cc}
command -v "$cc" >/dev/null || cc=gcc
if command -v "$cc" >/dev/null; then
	chk=$(mktemp -d)
	trap 'rm -rf "$chk"' EXIT
	cat >"$chk/check.c" <<'EOF'
#include <stdio.h>
#include "cgotorch.h"
int main(void) {
  const char *v = NULL;
  int cuda = 0;
  cg_err e;
  if (cg_abi_version() != CG_ABI_VERSION) {
    fprintf(stderr, "ABI version %d, header says %d\n", cg_abi_version(), CG_ABI_VERSION);
    return 1;
  }
  if ((e = cg_torch_version(&v)) != NULL) { fprintf(stderr, "%s\n", e); return 1; }
  if ((e = cg_cuda_is_available(&cuda)) != NULL) { fprintf(stderr, "%s\n", e); return 1; }
  printf("torch %s, CUDA available: %s\n", v, cuda ? "yes" : "no");
  cg_free_error(v);
  return 0;
}
EOF
	link=(-L"$libdir")
	((is_root)) || link+=("-Wl,-rpath,$libdir")
	if ! "$cc" -o "$chk/check" "$chk/check.c" -I"$repo/cgotorch" "${link[@]}" -lcgotorch; then
		die "could not link a program against $dest"
	fi
	if ! result=$(env -u LD_LIBRARY_PATH "$chk/check"); then
		die "a program linked against $dest failed to run"
	fi
	log "test program: $result"
	rm -rf "$chk"
	trap - EXIT
else
	warn "no C compiler to link a test program; skipped"
fi

if ((${#export_lines[@]})); then
	log "not root: add these lines to your shell profile (e.g. ~/.profile) before go build/test:"
	printf '%s\n' "${export_lines[@]}"
fi
short=${T_VERSION%%+dfsg*}
short=${short%%-*}
log "libcgotorch.so built against libtorch $short ($T_SOURCE) installed in $libdir"
