#!/bin/sh
# Builds the Debian package of logferry-agent or logferry-aggregator from a binary cargo
# already built (nothing is compiled here), with dpkg-deb alone:
#
#   cargo build --release --locked --bins
#   packaging/deb/build.sh logferry-agent target/release/logferry-agent target/debian
#   packaging/deb/build.sh logferry-aggregator target/release/logferry-aggregator target/debian
#
# Further arguments go to `dpkg-deb --build` (CI passes `-Zgzip -z1`: a fast payload).
# Prints the path of the .deb. Needs dpkg-dev (dpkg-shlibdeps, dpkg-parsechangelog) and
# binutils (strip).
#
# The package: the stripped binary in /usr/bin, the unit in /usr/lib/systemd/system, the
# default config /etc/logferry/<agent|aggregator>.toml as a conffile, copyright, changelog,
# README and lintian overrides under /usr/share, and the maintainer scripts of
# packaging/deb/<agent|aggregator>/ (system user, data directory, systemd unit state).
set -eu

if [ $# -lt 3 ]; then
    echo "usage: $0 logferry-agent|logferry-aggregator BINARY OUTDIR [dpkg-deb options]" >&2
    exit 2
fi
bin=$1
binary=$2
out=$3
shift 3

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
case $bin in
logferry-agent)
    summary="Logferry agent: tails log files and ships them to the aggregator"
    extended="logferry-agent tails log files, keeps its place and every unacknowledged
batch in a durable on-disk spool, and ships compressed batches over TLS to
logferry-aggregator."
    ;;
logferry-aggregator)
    summary="Logferry aggregator: receives log batches and writes them to sinks"
    extended="logferry-aggregator receives batches from Logferry agents over TLS,
acknowledges them once they are durable in its inbox, drops retried batches,
parses the lines and writes events to its sinks."
    ;;
*)
    echo "$0: unknown binary $bin" >&2
    exit 2
    ;;
esac
short=${bin#logferry-}

# The changelog holds the package version (upstream version, Debian revision).
version=$(dpkg-parsechangelog -l "$here/changelog" -S Version)
# File times in the package: the changelog entry's, so a rebuild gives the same package.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$here/changelog" -S Timestamp)}
export SOURCE_DATE_EPOCH
arch=$(dpkg --print-architecture)

umask 022
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# dpkg-shlibdeps wants a source tree: debian/control, the package under debian/<package>/.
root=$stage/debian/$bin
mkdir -p "$root"
printf "Source: logferry\n\nPackage: %s\nArchitecture: any\n" "$bin" >"$stage/debian/control"

install -D -m 0755 "$binary" "$root/usr/bin/$bin"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/$bin"
install -D -m 0644 "$repo/systemd/$bin.service" "$root/usr/lib/systemd/system/$bin.service"
install -D -m 0644 "$repo/packaging/config/$short.toml" "$root/etc/logferry/$short.toml"
doc=$root/usr/share/doc/$bin
install -D -m 0644 "$repo/README.md" "$doc/README.md"
sed "s/@PACKAGE@/$bin/" "$here/copyright" >"$doc/copyright"
gzip -9n <"$here/changelog" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.Debian.gz"
install -D -m 0644 "$here/lintian/$bin" "$root/usr/share/lintian/overrides/$bin"

mkdir -m 0755 "$root/DEBIAN"
# Shared libraries the binary links, as package dependencies.
shlibs=$(cd "$stage" && dpkg-shlibdeps -O -e"$root/usr/bin/$bin" |
    sed -n 's/^shlibs:Depends=//p')
for script in postinst prerm postrm; do
    install -m 0755 "$here/$short/$script" "$root/DEBIAN/$script"
done
echo "/etc/logferry/$short.toml" >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
    xargs md5sum >DEBIAN/md5sums)
{
    echo "Package: $bin"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: Logferry maintainers <logferry@example.invalid>"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    # adduser: postinst and postrm; procps: ExecReload= runs /bin/kill.
    echo "Depends: $shlibs, adduser, procps"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Homepage: https://example.invalid/logferry"
    echo "Description: $summary"
    echo "$extended" | sed 's/^/ /'
} >"$root/DEBIAN/control"

mkdir -p "$out"
deb=$out/${bin}_${version}_${arch}.deb
dpkg-deb --root-owner-group "$@" --build "$root" "$deb" >/dev/null
echo "$deb"
