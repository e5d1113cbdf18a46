#!/usr/bin/env bash
# Validates every file in deploy/ with a real tool: systemd-analyze, logrotate,
# promtool (rules and their unit tests, and the dashboard's queries), yamllint
# and a structural check of the Kubernetes objects, JSON for Grafana.
# usage: check.sh SOURCE_DIR PIXMEND_BINARY
set -u
src=$1
bin=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
run() {
    local name=$1
    shift
    if out=$("$@" 2>&1); then passed=$((passed + 1)); echo "ok   - $name"; else failed=$((failed + 1)); echo "FAIL - $name"; echo "$out" | sed 's/^/    /'; fi
}

# systemd: verify the unit with ExecStart pointing at the binary just built.
sed "s|/usr/local/bin/pixmend|$bin|" "$src/deploy/pixmend.service" >"$work/pixmend.service"
run "systemd unit verifies" bash -c "out=\$(systemd-analyze verify '$work/pixmend.service' 2>&1); echo \"\$out\"; ! echo \"\$out\" | grep -q 'pixmend.service'"
run "systemd unit has a memory ceiling and restarts" bash -c "grep -q '^MemoryMax=' '$src/deploy/pixmend.service' && grep -q '^Restart=on-failure' '$src/deploy/pixmend.service'"

# logrotate: a dry run against a copy pointing at a temporary log.
mkdir -p "$work/log"
echo line >"$work/log/pixmend.log"
sed -e "s|/var/log/pixmend|$work/log|" -e '/^    create /d' "$src/deploy/pixmend.logrotate" >"$work/logrotate.conf"
run "logrotate config parses" bash -c "logrotate -d -s '$work/state' '$work/logrotate.conf' 2>&1 | tee '$work/lr.out' | grep -q 'rotating pattern' && ! grep -qi 'error' '$work/lr.out'"

# Prometheus rules and their unit tests.
run "promtool check rules" promtool check rules "$src/deploy/prometheus/pixmend-rules.yml"
run "promtool test rules" bash -c "cd '$src/tests/deploy' && promtool test rules rules_test.yml"

# Kubernetes: YAML lint, and the objects carry what operators rely on.
run "yamllint kubernetes" yamllint -d relaxed "$src/deploy/kubernetes/pixmend.yaml"
run "yamllint kubernetes fleet" yamllint -d relaxed "$src/deploy/kubernetes/fleet.yaml"
run "kubernetes fleet matches the code's names" /usr/bin/python3 - "$src/deploy/kubernetes/fleet.yaml" "$src/src/fleet" <<'PY'
import re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
code = open(sys.argv[2] + "/claim.c").read() + open(sys.argv[2] + "/fleet_internal.h").read()
group = re.search(r'#define PM_FLEET_GROUP "([^"]+)"', code).group(1)
streams = {"pixmend:" + m for m in re.findall(r'PM_FLEET_PREFIX "(jobs:[a-z]+)"', code)}
redis = by[("StatefulSet", "pixmend-redis")]["spec"]["template"]["spec"]["containers"][0]["args"]
assert redis[redis.index("--appendonly") + 1] == "yes", redis
assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction", redis
front = by[("Deployment", "pixmend-front")]["spec"]["template"]["spec"]["containers"][0]["args"]
assert front[0] == "serve" and front[front.index("--workers") + 1] == "0" and "--redis" in front, front
worker = by[("Deployment", "pixmend-worker")]["spec"]["template"]["spec"]
args = worker["containers"][0]["args"]
assert args[0] == "worker" and "--redis" in args, args
assert worker["terminationGracePeriodSeconds"] > float(args[args.index("--drain-seconds") + 1])
trig = by[("ScaledObject", "pixmend-worker")]["spec"]["triggers"]
assert {t["metadata"]["stream"] for t in trig} == streams, (trig, streams)
assert all(t["type"] == "redis-streams" and t["metadata"]["consumerGroup"] == group for t in trig)
hpa = by[("HorizontalPodAutoscaler", "pixmend-worker-hpa")]["spec"]["metrics"][0]["external"]["metric"]["name"]
assert hpa == "pixmend_fleet_queue_depth", hpa
PY
run "kubernetes probes and resources" /usr/bin/python3 - "$src/deploy/kubernetes/pixmend.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
assert {"Deployment", "Service", "PersistentVolumeClaim"} <= set(kinds), kinds.keys()
dep = kinds["Deployment"]
assert dep["apiVersion"] == "apps/v1"
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert "memory" in c["resources"]["limits"]
assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
args = c["args"]
drain = int(args[args.index("--drain-seconds") + 1])
assert spec["terminationGracePeriodSeconds"] > drain, "grace period must exceed the drain time"
PY

# Grafana: valid JSON, and every panel query is valid PromQL (checked by promtool
# as recording rules) using only metrics that pixmend documents.
run "grafana dashboard queries" /usr/bin/python3 - "$src/deploy/grafana/pixmend-dashboard.json" "$work" <<'PY'
import json, re, subprocess, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
assert len(exprs) >= 10, len(exprs)
known = {"pixmend_jobs_total", "pixmend_queue_depth", "pixmend_job_duration_seconds_bucket",
         "pixmend_queue_wait_seconds_bucket", "pixmend_admission_paused", "pixmend_admission_pauses_total",
         "pixmend_memory_budget_bytes", "pixmend_memory_reserved_bytes", "pixmend_process_resident_memory_bytes",
         "pixmend_cpu_usage_ratio", "pixmend_gpu_memory_used_bytes", "pixmend_gpu_utilization_ratio",
         "pixmend_disk_write_seconds_bucket"}
for e in exprs:
    for m in re.findall(r"pixmend_[a-z_]+", e):
        assert m in known, (m, e)
rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": f"dashboard:q{i}", "expr": e.replace("$instance", ".*")} for i, e in enumerate(exprs)]}]}
path = sys.argv[2] + "/dash_rules.yml"
json.dump(rules, open(path, "w"))
r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
assert r.returncode == 0, r.stdout + r.stderr
PY

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
