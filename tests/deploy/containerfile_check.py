#!/usr/bin/python3
"""Static check of the Containerfile and the Kubernetes manifest that runs it.

No container engine runs here (and the base images cannot be pulled), and
hadolint is not packaged in Debian 12, so this parses every instruction
itself and checks what the image promises:
  - every instruction is a known one with well-formed arguments (JSON form
    parses as a list of strings; flags are known);
  - two stages: build on debian:12, run on debian:12-slim;
  - the packages each stage installs: only through scripts/install-deps, the
    runtime stage with the runtime set only, the build stage with runtime and
    build (never test); any apt-get install names a package of those sets;
  - every COPY source exists in the repository; COPY --from names an earlier
    stage and a path that stage's install produces;
  - the runtime stage: a non-root USER, VOLUME /data, HEALTHCHECK on
    /healthz, EXPOSE of the port serve listens on, ENTRYPOINT the installed
    binary, the web UI where serve finds it, the version label = project();
  - deploy/kubernetes: the image tag is the project version, the same uid,
    /data and /models (read-only) mounted, probes on the exposed port.
usage: containerfile_check.py SOURCE_DIR VERSION
"""
import json
import os
import re
import shlex
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
         "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod", "link"}, "ADD": {"chown", "chmod", "checksum"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
         "RUN": {"mount", "network", "security"}}

src, version = sys.argv[1], sys.argv[2]
failures = []
passed = 0


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print("ok   - " + name)
    else:
        failures.append(name)
        print("FAIL - " + name + (": " + detail if detail else ""))


def instructions(path):
    """(line number, KEYWORD, flags dict, argument text) for every instruction."""
    out, buf, start = [], "", 0
    for no, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.rstrip("\n")
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        m = re.match(r"\s*([A-Za-z]+)\s*(.*)$", buf)
        if not m:
            raise SystemExit("line %d: cannot read an instruction: %r" % (start, buf))
        kw, rest = m.group(1).upper(), m.group(2).strip()
        flags = {}
        while rest.startswith("--"):
            fm = re.match(r"--([a-z-]+)(?:=(\S+))?\s*(.*)$", rest)
            flags[fm.group(1)] = fm.group(2)
            rest = fm.group(3)
        out.append((start, kw, flags, rest))
        buf = ""
    return out


def json_or_shell(text):
    if text.startswith("["):
        v = json.loads(text)
        assert isinstance(v, list) and all(isinstance(x, str) for x in v), text
        return v, True
    return text, False


cf = os.path.join(src, "Containerfile")
ins = instructions(cf)
print("# %d instructions in %s" % (len(ins), cf))

# --- every instruction known and well formed
for no, kw, flags, rest in ins:
    check("line %d: %s is a known instruction" % (no, kw), kw in KNOWN)
    bad = set(flags) - FLAGS.get(kw, set())
    check("line %d: %s flags %s known" % (no, kw, sorted(flags)), not bad, "unknown %s" % sorted(bad))
    if kw in ("CMD", "ENTRYPOINT", "SHELL", "VOLUME") or (kw in ("RUN", "HEALTHCHECK") and rest.startswith("[")):
        body = rest.split(None, 1)[1] if kw == "HEALTHCHECK" and rest.startswith("CMD") else rest
        try:
            json_or_shell(body)
            check("line %d: %s arguments parse" % (no, kw), True)
        except (ValueError, AssertionError) as e:
            check("line %d: %s arguments parse" % (no, kw), False, str(e))
    if kw == "HEALTHCHECK":
        m = re.match(r"CMD\s+(.*)$", rest)
        check("line %d: HEALTHCHECK has a CMD" % no, m is not None)
        if m:
            json_or_shell(m.group(1))
    if kw in ("RUN", "CMD") and not rest.startswith("["):
        try:
            shlex.split(rest)
            check("line %d: %s shell words parse" % (no, kw), True)
        except ValueError as e:
            check("line %d: %s shell words parse" % (no, kw), False, str(e))

# --- stages
stages = []  # [{"name", "base", "ins": [...]}]
for item in ins:
    no, kw, flags, rest = item
    if kw == "FROM":
        words = rest.split()
        name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
        stages.append({"name": name, "base": words[0], "ins": []})
    else:
        check("line %d: %s comes after a FROM" % (no, kw), bool(stages))
        stages[-1]["ins"].append(item)
check("two stages", len(stages) == 2, str([s["base"] for s in stages]))
build, run = stages[0], stages[-1]
check("build stage on debian:12", build["base"] == "debian:12", build["base"])
check("runtime stage on debian:12-slim", run["base"] == "debian:12-slim", run["base"])
check("the build stage is named", bool(build["name"]))


def listed(*sets):
    r = subprocess.run([os.path.join(src, "scripts/install-deps"), "--list", *sets], capture_output=True, text=True,
                       check=True)
    return set(r.stdout.split())


RUNTIME, BUILD = listed("runtime"), listed("runtime", "build")
check("the runtime set is not empty", len(RUNTIME) > 3, str(RUNTIME))


def packages_of(stage, allowed_sets, allowed_pkgs):
    """Checks every RUN of a stage installs only through install-deps (sets
    within allowed_sets) or apt-get install of allowed packages."""
    used = []
    for no, kw, flags, rest in stage["ins"]:
        if kw != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", rest):
            words = shlex.split(cmd)
            if not words:
                continue
            exe = os.path.basename(words[0])
            if exe == "install-deps":
                sets = [w for w in words[1:] if not w.startswith("-")]
                used += sets
                check("line %d: install-deps %s within %s" % (no, " ".join(sets), "+".join(allowed_sets)),
                      sets and set(sets) <= set(allowed_sets), str(sets))
            elif exe in ("apt-get", "apt") and "install" in words:
                pkgs = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
                stray = sorted(set(pkgs) - allowed_pkgs)
                check("line %d: apt-get install of set packages only" % no, not stray, "not in the set: %s" % stray)
            elif exe in ("pip", "pip3", "npm", "curl", "wget"):
                check("line %d: no %s in the image" % (no, exe), False, cmd.strip())
    return used


check("runtime stage installs the runtime set",
      packages_of(run, ["runtime"], RUNTIME) == ["runtime"])
used = packages_of(build, ["runtime", "build"], BUILD)
check("build stage installs runtime and build, not test", set(used) == {"runtime", "build"}, str(used))

# --- COPY sources
names = [s["name"] for s in stages]
for si, st in enumerate(stages):
    for no, kw, flags, rest in st["ins"]:
        if kw not in ("COPY", "ADD"):
            continue
        words, is_json = json_or_shell(rest)
        words = words if is_json else shlex.split(words)
        srcs, dest = words[:-1], words[-1]
        if "from" in flags:
            check("line %d: COPY --from=%s names an earlier stage" % (no, flags["from"]),
                  flags["from"] in names[:si])
            for s in srcs:
                check("line %d: %s comes from the build's install (DESTDIR=/out, prefix /usr)" % (no, s),
                      s.startswith("/out/usr/"))
        else:
            for s in srcs:
                check("line %d: COPY source %s exists" % (no, s), os.path.exists(os.path.join(src, s)))
build_run = " ".join(r for _, k, _, r in build["ins"] if k == "RUN")
check("build installs under /usr into /out", "-DCMAKE_INSTALL_PREFIX=/usr" in build_run and "DESTDIR=/out" in build_run
      and "cmake --install" in build_run)


# --- the runtime stage's promises
def last(kw):
    found = [(f, r) for _, k, f, r in run["ins"] if k == kw]
    return found[-1] if found else (None, None)


_, user = last("USER")
check("runs as a non-root user", user is not None and user.split(":")[0] not in ("root", "0"), str(user))
uid = user.split(":")[0] if user else ""
_, vol = last("VOLUME")
vols = json_or_shell(vol)[0] if vol else []
check("/data is a volume", "/data" in (vols if isinstance(vols, list) else vols.split()), str(vols))
hf, hc = last("HEALTHCHECK")
check("HEALTHCHECK asks /healthz", hc is not None and "/healthz" in hc, str(hc))
_, expose = last("EXPOSE")
_, cmd = last("CMD")
cmd = json_or_shell(cmd)[0] if cmd else []
listen = cmd[cmd.index("--listen") + 1] if "--listen" in cmd else ""
port = listen.rsplit(":", 1)[-1]
check("serve listens on all interfaces", listen.startswith("0.0.0.0:"), listen)
check("EXPOSE %s is the port serve listens on" % expose, expose is not None and expose.split("/")[0] == port)
check("HEALTHCHECK asks that port", hc is not None and "/%s" % port in hc)
check("serve keeps its data on /data", "--data-dir" in cmd and cmd[cmd.index("--data-dir") + 1] == "/data")
_, ep = last("ENTRYPOINT")
ep = json_or_shell(ep)[0] if ep else []
copies = [(f, r) for _, k, f, r in run["ins"] if k == "COPY" and "from" in f]
dests = [shlex.split(r)[-1] for _, r in copies]
check("ENTRYPOINT is the installed binary", ep[:1] == ["/usr/bin/pixmend"] and "/usr/bin/pixmend" in dests, str(ep))
check("the web UI is where serve finds it (/usr/share/pixmend/web)", "/usr/share/pixmend/web" in dests)
run_text = " ".join(r for _, k, _, r in run["ins"] if k == "RUN")
check("the user is created with uid %s" % uid, "--uid %s" % uid in run_text)
check("/models is created for the read-only weights", "/models" in run_text)
labels = " ".join(r for _, k, _, r in run["ins"] if k == "LABEL")
check("the version label is %s" % version, 'org.opencontainers.image.version="%s"' % version in labels)
text = open(cf, encoding="utf-8").read()
check("the header documents -t pixmend:%s and /models read-only" % version,
      "-t pixmend:%s" % version in text and "/models:ro" in text)

# --- Kubernetes uses this image
k8s = os.path.join(src, "deploy/kubernetes/pixmend.yaml")
docs = [d for d in yaml.safe_load_all(open(k8s)) if d]
dep = [d for d in docs if d["kind"] == "Deployment"][0]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
check("kubernetes runs pixmend:%s" % version, c["image"].endswith("pixmend:%s" % version), c["image"])
sc = c.get("securityContext", {})
check("kubernetes runs as uid %s, not root" % uid, sc.get("runAsNonRoot") is True and str(sc.get("runAsUser")) == uid)
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
check("kubernetes mounts /data", "/data" in mounts)
check("kubernetes mounts /models read-only", mounts.get("/models", {}).get("readOnly") is True)
args = c["args"]
check("kubernetes keeps the data in /data", args[args.index("--data-dir") + 1] == "/data")
kport = c["ports"][0]["containerPort"]
check("kubernetes' container port is the exposed one", str(kport) == port, str(kport))
vol_names = {v["name"] for v in pod["volumes"]}
check("every kubernetes mount has a volume", {m["name"] for m in c["volumeMounts"]} <= vol_names)
claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
pvcs = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
check("every claim is defined", claims <= pvcs, str(claims - pvcs))

print("# %d passed, %d failed" % (passed, len(failures)))
sys.exit(1 if failures else 0)
