#!/bin/sh
# Install Aegis from a release (POSIX sh; needs curl or wget, sha256sum or
# shasum, tar). It reads SHA256SUMS from the release, picks the tarball for
# this OS and CPU, verifies it, and installs `aegis` plus its role links into
# AEGIS_INSTALL_DIR (default /usr/local/bin as root, else ~/.local/bin) and
# Debian's archive keyring into ../share/aegis beside it.
#
#   curl -fsSL <release>/install.sh | sh
#   AEGIS_RELEASE_URL=https://host/path sh install.sh    # another release location
#   sh install.sh --print-install-dir                    # where it would install, then exit
set -eu

RELEASE_URL=${AEGIS_RELEASE_URL:-https://github.com/aegisvm/aegis/releases/latest/download}
ROLE_LINKS="aegisd aegis-gateway aegis-harness aegis-agent aegis-vmm-worker aegis-mcp-guest"

say() { printf '%s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

install_dir() {
  if [ -n "${AEGIS_INSTALL_DIR:-}" ]; then printf '%s\n' "$AEGIS_INSTALL_DIR"
  elif [ "$(id -u)" = 0 ]; then printf '%s\n' /usr/local/bin
  else
    [ -n "${HOME:-}" ] || die "HOME is not set; set AEGIS_INSTALL_DIR"
    printf '%s\n' "$HOME/.local/bin"
  fi
}

platform() {
  case $(uname -s) in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "unsupported OS $(uname -s) (releases exist for Linux and macOS)" ;;
  esac
  case $(uname -m) in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unsupported CPU $(uname -m) (releases exist for x86_64 and arm64)" ;;
  esac
  printf '%s-%s\n' "$os" "$arch"
}

fetch() { # URL DEST
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 2 -o "$2" "$1" || die "download of $1 failed"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1" || die "download of $1 failed"
  else die "neither curl nor wget found; install one of them"; fi
}

sha256() { # FILE -> hex
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  else die "neither sha256sum nor shasum found; cannot verify the download"; fi
}

case "${1:-}" in
  "") ;;
  --print-install-dir) install_dir; exit 0 ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (known: --print-install-dir, --help)" ;;
esac

target=$(platform)
dest=$(install_dir)
tmp=$(mktemp -d 2>/dev/null || mktemp -d -t aegis)
trap 'rm -rf "$tmp"' EXIT INT TERM

say "Fetching $RELEASE_URL/SHA256SUMS"
fetch "$RELEASE_URL/SHA256SUMS" "$tmp/SHA256SUMS"
line=$(grep -E "^[0-9a-f]{64}  aegis-[^ ]+-$target\.tar\.gz\$" "$tmp/SHA256SUMS" | head -n 1) || true
[ -n "$line" ] || die "SHA256SUMS at $RELEASE_URL lists no aegis tarball for $target"
want=${line%% *}
file=${line#*  }

say "Downloading $file"
fetch "$RELEASE_URL/$file" "$tmp/$file"
got=$(sha256 "$tmp/$file")
[ "$got" = "$want" ] || die "checksum mismatch for $file: expected $want, got $got (nothing was installed)"
say "Verified sha256 $got"

tar -xzf "$tmp/$file" -C "$tmp"
src="$tmp/${file%.tar.gz}"
[ -x "$src/aegis" ] || die "$file has no aegis binary"

mkdir -p "$dest" || die "cannot create $dest (set AEGIS_INSTALL_DIR to a writable directory)"
# Copy under a temporary name, then rename: a running aegis is never half-overwritten.
cp "$src/aegis" "$dest/.aegis.new.$$" && chmod 0755 "$dest/.aegis.new.$$" && mv -f "$dest/.aegis.new.$$" "$dest/aegis" || die "cannot write $dest/aegis"
for link in $ROLE_LINKS; do ln -sf aegis "$dest/$link"; done
if [ -f "$src/debian-archive-keyring.gpg" ]; then
  share="$dest/../share/aegis"
  mkdir -p "$share" && cp "$src/debian-archive-keyring.gpg" "$share/debian-archive-keyring.gpg"
fi

version=$("$dest/aegis" --version) || die "the installed $dest/aegis does not run on this machine"
say "Installed $version to $dest (links: $ROLE_LINKS)"
case ":${PATH:-}:" in
  *":$dest:"*) ;;
  *) say "Note: $dest is not on your PATH; add it, e.g.: export PATH=\"$dest:\$PATH\"" ;;
esac
say ""
say "Next steps:"
say "  aegis doctor                       # check QEMU, e2fsprogs, xz and gpgv"
say "  aegis setup                        # fetch the guest kernel, build the guest assets"
say "  aegis up && aegis run -- echo hello"
