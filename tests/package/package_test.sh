#!/usr/bin/env bash
# The Debian package as a user gets it: `cpack -G DEB` in the build folder,
# its metadata and contents, then installed into a throwaway root (dpkg-deb
# -x) and run from there: --version, version, probe, and `serve` without
# --web-dir answering /healthz, the UI and an inpainting request.
# Maintainer scripts are checked for syntax only (running them needs a real
# root: see docs/operations.md for the install test on a Debian 12 chroot).
# usage: package_test.sh SOURCE_DIR BUILD_DIR VERSION
set -u
src=$1 build=$2 version=$3
PY=/usr/bin/python3
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

for tool in cpack dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# --- build the package
if ! (cd "$build" && cpack -G DEB -B "$work/dist") >"$work/cpack.log" 2>&1; then
    cat "$work/cpack.log"; echo "FAIL - cpack -G DEB"; exit 1
fi
deb=$work/dist/pixmend_${version}_amd64.deb
check "package named pixmend_${version}_amd64.deb" test -f "$deb"
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: pixmend" test "$(field Package)" = pixmend
check "Version: $version (from project(VERSION))" test "$(field Version)" = "$version"
check "Architecture: amd64" test "$(field Architecture)" = amd64
depends=$(field Depends)
echo "     Depends: $depends"
check "Depends has adduser (postinst)" grep -qw adduser <<<"$depends"
check "Depends from dpkg-shlibdeps (libc6, libdnnl2, libspng0)" \
    bash -c "grep -q 'libc6 (>=' <<<'$depends' && grep -q libdnnl2 <<<'$depends' && grep -q libspng0 <<<'$depends'"
check "Depends has no Python, compiler or -dev package" \
    bash -c "! grep -Eq 'python|gcc|clang|cmake|-dev' <<<'$depends'"
# Every library the package depends on is in the runtime set, which the
# container image installs: the two lists cannot drift apart.
runtime=$("$src/scripts/install-deps" --list runtime)
missing=""
for p in $(tr ',' '\n' <<<"$depends" | sed 's/(.*//; s/ //g'); do
    case "$p" in libc6|adduser) continue ;; esac
    grep -qx "$p" <<<"$runtime" || missing="$missing $p"
done
check "every Depends library is in the runtime set${missing:+ (missing:$missing)}" test -z "$missing"

# --- contents
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's,^\./,/,' >"$work/files"
prefix=$(sed -n 's,^\(.*\)/bin/pixmend$,\1,p' "$work/files")
check "installs under /usr (binary $prefix/bin/pixmend)" test "$prefix" = /usr
for f in "$prefix/share/pixmend/web/index.html" "$prefix/lib/systemd/system/pixmend.service" \
    /etc/logrotate.d/pixmend "$prefix/share/man/man1/pixmend.1.gz" "$prefix/share/man/man1/pixmend-inpaint.1.gz" \
    "$prefix/share/man/man1/pixmend-serve.1.gz" "$prefix/share/doc/pixmend/operations.md"; do
    check "contains $f" grep -qx "$f" "$work/files"
done
check "the unit is not enabled (no .wants link)" bash -c "! grep -q '\\.wants/' '$work/files'"
mkdir -p "$work/ctl"
dpkg-deb -e "$deb" "$work/ctl"
check "conffiles lists the logrotate file" grep -qx /etc/logrotate.d/pixmend "$work/ctl/conffiles"
for s in postinst prerm postrm; do
    check "$s is executable and parses" bash -c "test -x '$work/ctl/$s' && sh -n '$work/ctl/$s'"
done
check "postinst creates the pixmend system user" grep -q "adduser --system" "$work/ctl/postinst"
check "postinst creates /var/lib/pixmend" grep -q "/var/lib/pixmend" "$work/ctl/postinst"

# --- install into a throwaway root and run from it
root=$work/root
dpkg-deb -x "$deb" "$root"
bin=$root$prefix/bin/pixmend
unit=$root$prefix/lib/systemd/system/pixmend.service
check "the unit runs $prefix/bin/pixmend" grep -q "^ExecStart=$prefix/bin/pixmend serve" "$unit"
check "pixmend --version is $version" test "$("$bin" --version)" = "pixmend $version"
check "pixmend version agrees" test "$("$bin" version | head -1)" = "pixmend $version"
check "pixmend.1 names version $version" bash -c "zcat '$root$prefix/share/man/man1/pixmend.1.gz' | grep -q '^\\.TH PIXMEND 1 .*pixmend $version'"
check "pixmend-inpaint.1 documents --batch" bash -c "zcat '$root$prefix/share/man/man1/pixmend-inpaint.1.gz' | grep -q -- '--batch'"
missing=""
for c in $("$bin" --help | sed -n '/^commands:/,/^$/p' | awk 'NF > 1 {print $1}'); do
    [ -f "$root$prefix/share/man/man1/pixmend-$c.1.gz" ] || missing="$missing $c"
done
check "every sub-command of --help has its man page${missing:+ (missing:$missing)}" test -z "$missing"
"$bin" probe >"$work/probe" 2>&1
check "installed pixmend probe runs" grep -q "Cores:" "$work/probe"

# serve without --web-dir must find the installed UI (marked so that the
# source tree's web/ cannot stand in for it).
echo "<!-- installed-copy-marker -->" >>"$root$prefix/share/pixmend/web/index.html"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
server_pid=$!
{ $PY - "$port" "$work" <<'PYEND'
import io, sys, time, urllib.request, uuid
from PIL import Image
port, work = sys.argv[1], sys.argv[2]
base = "http://127.0.0.1:%s" % port
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=2).read(); break
    except Exception:
        time.sleep(0.1)
def get(p):
    with urllib.request.urlopen(base + p, timeout=10) as r:
        return r.status, r.read()
st, _ = get("/healthz"); print("healthz", st)
st, body = get("/"); print("ui", st, b"installed-copy-marker" in body)
def png(im):
    b = io.BytesIO(); im.save(b, "PNG"); return b.getvalue()
img = Image.new("RGB", (48, 32), (30, 120, 200)); mask = Image.new("L", (48, 32), 0)
mask.paste(255, (10, 10, 20, 20))
bd = uuid.uuid4().hex
parts = []
for name, data in (("image", png(img)), ("mask", png(mask))):
    parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s.png\"\r\n"
                  "Content-Type: image/png\r\n\r\n" % (bd, name, name)).encode() + data + b"\r\n")
body = b"".join(parts) + ("--%s--\r\n" % bd).encode()
req = urllib.request.Request(base + "/api/v1/inpaint", data=body,
                             headers={"Content-Type": "multipart/form-data; boundary=" + bd})
with urllib.request.urlopen(req, timeout=60) as r:
    out = Image.open(io.BytesIO(r.read()))
    print("inpaint", r.status, out.size)
PYEND
} >"$work/http" 2>&1
sed 's/^/     /' "$work/http"
check "installed serve answers /healthz" grep -qx "healthz 200" "$work/http"
check "installed serve finds its UI in share/pixmend/web" grep -qx "ui 200 True" "$work/http"
check "installed serve inpaints an image" grep -qx "inpaint 200 (48, 32)" "$work/http"
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
server_pid=""
check "serve stops cleanly on SIGTERM (exit $rc)" test "$rc" -eq 0

echo "# $passed passed, $failed failed"
[ "$failed" -eq 0 ]
