#!/bin/sh
# Build TEST DOUBLE Debian packages named like the Raspberry Pi repository's Hailo
# packages, and a flat apt repository of them (deb [trusted=yes] file:<dir> ./).
# The real repository (archive.raspberrypi.com) is unreachable from CI; these
# packages carry no software, only the names, versions, dependencies and conflicts
# the npu role must handle, plus the hailortcli test stand-in.
#
# usage: build-hailo-test-repo.sh <repo-dir> <hailortcli-standin>
set -eu
repo=$1
standin=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo"

# name version depends conflicts ships-hailortcli
build() {
    name=$1 version=$2 depends=$3 conflicts=$4 cli=$5
    dir=$work/$name-$version
    mkdir -p "$dir/DEBIAN" "$dir/usr/share/doc/$name"
    {
        echo "Package: $name"
        echo "Version: $version"
        echo "Architecture: all"
        echo "Maintainer: edgeslm tests <tests@example.invalid>"
        [ -n "$depends" ] && echo "Depends: $depends"
        [ -n "$conflicts" ] && echo "Conflicts: $conflicts"
        echo "Description: TEST DOUBLE of $name for edgeslm.pi5 Molecule scenarios"
        echo " Carries no Hailo software; built by molecule/resources/test-doubles."
    } > "$dir/DEBIAN/control"
    echo "TEST DOUBLE $name $version" > "$dir/usr/share/doc/$name/TEST-DOUBLE"
    if [ "$cli" = yes ]; then
        mkdir -p "$dir/usr/bin"
        cp "$standin" "$dir/usr/bin/hailortcli"
        chmod 0755 "$dir/usr/bin/hailortcli"
    fi
    dpkg-deb --root-owner-group -Zgzip --build "$dir" "$repo/${name}_${version}_all.deb" >/dev/null
}

build hailort 4.19.0-1 "" "h10-hailort" yes
build hailort 4.20.0-1 "" "h10-hailort" yes
build hailo-dkms 4.19.0-1 "" "" no
build hailo-dkms 4.20.0-1 "" "" no
build hailofw 4.20.0-1 "" "" no
build python3-hailort 4.20.0-1 "hailort" "" no
build hailo-all 4.20.0 "hailort, hailo-dkms, hailofw, python3-hailort" "hailo-h10-all" no
build h10-hailort 5.1.1-1 "" "hailort" yes
build h10-hailort-pcie-driver 5.1.1-1 "" "hailo-dkms" no
build hailo-h10-all 5.1.1 "h10-hailort, h10-hailort-pcie-driver" "hailo-all" no

index=$repo/Packages.tmp
: > "$index"
for deb in "$repo"/*.deb; do
    dpkg-deb -f "$deb" >> "$index"
    {
        echo "Filename: ./$(basename "$deb")"
        echo "Size: $(stat -c %s "$deb")"
        echo "MD5sum: $(md5sum "$deb" | cut -d' ' -f1)"
        echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
        echo
    } >> "$index"
done
mv "$index" "$repo/Packages"
