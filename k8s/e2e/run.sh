#!/usr/bin/env bash
# End-to-end check of k8s/ in a real single-node Kubernetes on this machine
# (root; Go module proxy and Debian packages only, no registry):
#   1. Debian packages (etcd, containerd, runc, CNI plugins, buildah, busybox);
#   2. pinned binaries, cached: Kubernetes (kube/mod/go.mod), helm
#      (helm.sh/helm/v4), nats-server (the chart's appVersion), a minimal
#      CoreDNS (kube/dns), and gps from this checkout;
#   3. the cluster (kube/up.sh), CoreDNS on the node's address, pods on
#      198.18.128.0/17;
#   4. images with buildah (static binaries on scratch): gps:e2e and the
#      chart's nats:2.14.2-alpine;
#   5. the official NATS chart with k8s/nats-values.yaml (3 JetStream
#      servers) + nats-values-e2e.yaml;
#   6. a lab world (gps lab gen) on the gps-seed volume, the overlay
#      k8s/e2e/overlay (prod + image, lab allow list, prober --world);
#   7. the check (go test -run TestCluster ./k8s/e2e): seed import, faults,
#      /metrics, /readyz on SIGTERM, predictions against `gps all --world`.
# Then everything is stopped (kube/down.sh), success or not.
#
# usage: k8s/e2e/run.sh
# env:   GPS_E2E_CACHE  cache of binaries between runs (default /var/cache/gps-e2e)
#        GPS_E2E_CHART  the nats chart directory (default k8s/e2e/charts/nats,
#                       the official chart, vendored)
#        GPS_E2E_KEEP=1 leave the cluster up at the end (stop it with
#                       k8s/e2e/kube/down.sh $GPS_E2E_CACHE/run)
# Exit status 77: skipped (not root, packages not installable, no chart).
set -euo pipefail

E2E=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$E2E/../.." && pwd)
CACHE=${GPS_E2E_CACHE:-/var/cache/gps-e2e}
BIN=$CACHE/bin
WORK=$CACHE/run
CHART=${GPS_E2E_CHART:-$E2E/charts/nats}
NODE_IP=198.18.0.1        # the node's own address (on lo; not in 127.0.0.0/8, so that the API server reaches the kubelet)
HELM_VERSION=v4.3.2
NATS_IMAGE=docker.io/library/nats:2.14.2-alpine   # what the chart's values name
GPS_IMAGE=ghcr.io/gpsscan/gps:e2e
export GOTOOLCHAIN=local CGO_ENABLED=0
T0=$(date +%s)

log() { printf '%s e2e [%4ss] %s\n' "$(date +%T)" "$(($(date +%s) - T0))" "$*" >&2; }
step() { log "== $*"; }
skip() { log "SKIP: $*"; exit 77; }
die() { log "FAIL: $*"; exit 1; }

# ---------------------------------------------------------------- 1. packages
step "preflight"
[ "$(id -u)" = 0 ] || skip "needs root (containerd, kubelet, network interfaces)"
[ -f "$CHART/Chart.yaml" ] || skip "no NATS chart at $CHART (set GPS_E2E_CHART)"
missing=()
for p in etcd:etcd-server containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
  buildah:buildah /usr/bin/busybox:busybox-static openssl:openssl; do
  c=${p%%:*}
  if [ "${c:0:1}" = / ]; then [ -e "$c" ] || missing+=("${p#*:}"); else command -v "$c" >/dev/null || missing+=("${p#*:}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  command -v apt-get >/dev/null || skip "packages missing (${missing[*]}) and no apt-get"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } > "$CACHE.apt.log" 2>&1 ||
    skip "cannot install ${missing[*]} (see $CACHE.apt.log)"
fi
if pgrep -x kubelet >/dev/null || pgrep -x kube-apiserver >/dev/null; then
  die "a kubelet or kube-apiserver is already running on this machine"
fi

# ---------------------------------------------------------------- 2. binaries
step "binaries (cache $BIN)"
mkdir -p "$BIN"
# build NAME STAMP CMD...: runs CMD unless BIN/NAME (every binary of a
# comma-separated list) exists and was built for STAMP.
build() {
  local name=$1 stamp=$2 b cached=1; shift 2
  for b in ${name//,/ }; do [ -x "$BIN/$b" ] || cached=; done
  if [ -n "$cached" ] && [ "$(cat "$BIN/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "$name: cached ($stamp)"; return
  fi
  local t=$(date +%s)
  "$@" || die "building $name"
  echo "$stamp" > "$BIN/$name.stamp"
  log "$name: built in $(($(date +%s) - t)) s ($stamp)"
}
KSTAMP=$(cat "$E2E/kube/mod/go.mod" "$E2E/kube/mod/go.sum" | sha256sum | cut -c1-16)
# One go build for the five, so that the packages they share are compiled
# once and alongside the rest; without symbol tables (-s -w) they link faster.
KBINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
build "$(IFS=,; echo "${KBINS[*]}")" "k8s $KSTAMP -s -w" bash -c "cd '$E2E/kube/mod' &&
  go build -trimpath -ldflags='-s -w' -o '$BIN/' $(printf 'k8s.io/kubernetes/cmd/%s ' "${KBINS[@]}")"
build helm "helm $HELM_VERSION" env GOBIN="$BIN" go install -trimpath -ldflags='-s -w' "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
NATS_VERSION=v$(awk '/^appVersion:/ {gsub(/"/, "", $2); print $2}' "$CHART/Chart.yaml")
build nats-server "nats-server $NATS_VERSION" env GOBIN="$BIN" go install -trimpath -ldflags='-s -w' "github.com/nats-io/nats-server/v2@$NATS_VERSION"
DSTAMP=$(cat "$E2E/kube/dns/"* | sha256sum | cut -c1-16)
build coredns "coredns $DSTAMP" bash -c "cd '$E2E/kube/dns' && go build -trimpath -o '$BIN/coredns' ."
t=$(date +%s)
(cd "$REPO" && go build -trimpath -ldflags='-s -w' -o "$BIN/gps" ./cmd/gps) || die "building gps"
log "gps: built in $(($(date +%s) - t)) s"
K="$BIN/kubectl --kubeconfig $WORK/admin.kubeconfig"

# ---------------------------------------------------------------- 3. cluster
cleanup() {
  local rc=$?
  if [ "${GPS_E2E_KEEP:-}" = 1 ] && [ $rc = 0 ]; then
    log "cluster left up (GPS_E2E_KEEP=1): KUBECONFIG=$WORK/admin.kubeconfig; stop: $E2E/kube/down.sh $WORK"
    exit $rc
  fi
  step "teardown"
  [ -z "${CHECK:-}" ] || kill "$CHECK" 2>/dev/null || true
  if [ -f "$WORK/admin.kubeconfig" ] && [ $rc != 0 ]; then
    log "what the cluster looked like:"
    { $K get pods,pvc -A -o wide; $K get events -A --sort-by=.lastTimestamp | tail -25
      for f in /var/log/pods/*/*/*.log; do echo "--- $f"; tail -8 "$f"; done
      echo "--- coredns"; tail -5 "$WORK/logs/coredns.log"; } 2>&1 | sed 's/^/    /' >&2 || true
  fi
  # The kubelet first, so that it restarts nothing; then the pods, then the rest.
  [ -f "$WORK/kubelet.pid" ] && kill "$(cat "$WORK/kubelet.pid")" 2>/dev/null
  stop_pods
  "$E2E/kube/down.sh" "$WORK" >/dev/null 2>&1 || true
  scrub
  log "done, status $rc, $(($(date +%s) - T0)) s in all"
  exit $rc
}
# stop_pods kills and deletes every container and sandbox while containerd
# still runs, so that no shim outlives it.
stop_pods() {
  ctr version >/dev/null 2>&1 || return 0
  local t
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  sleep 1
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
  done
  ctr -n k8s.io containers ls -q 2>/dev/null | xargs -r ctr -n k8s.io containers rm >/dev/null 2>&1 || true
}
# scrub removes what a stopped cluster leaves behind: pod mounts, IP
# allocations, the interfaces.
scrub() {
  awk '$2 ~ "^(/var/lib/kubelet|/run/containerd|/run/netns)" {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf /var/lib/cni/networks/gpsnet /var/lib/kubelet/pods
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  ip link del gps0 2>/dev/null || true
}
step "cluster (work dir $WORK)"
scrub
rm -rf "$WORK"; mkdir -p "$WORK"
trap cleanup EXIT
trap 'exit 130' INT TERM
ip addr add "$NODE_IP/32" dev lo
NODE_IP=$NODE_IP CLUSTER_DNS=$NODE_IP "$E2E/kube/up.sh" "$BIN" "$WORK" >&2
$K get node gpsnode -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -q True || die "node not Ready"
# CoreDNS: cluster.local only, from the API; on the node's address (the
# pods' nameserver, reached through the bridge's gateway). No forward: a pod
# resolves no name outside the cluster.
cat > "$WORK/Corefile" <<EOF
cluster.local:53 {
  bind $NODE_IP
  errors
  cache 5
  kubernetes cluster.local {
    kubeconfig $WORK/admin.kubeconfig local
  }
}
EOF
"$BIN/coredns" -conf "$WORK/Corefile" > "$WORK/logs/coredns.log" 2>&1 & echo $! >> "$WORK/pids"
log "node Ready at $NODE_IP, CoreDNS on $NODE_IP:53"

# ---------------------------------------------------------------- 4. images
step "images"
BA="buildah --storage-driver vfs"
# image NAME FILE DEST ENTRYPOINT [buildah config args...]: a static binary on scratch, into containerd.
image() {
  local name=$1 file=$2 dest=$3 entry=$4; shift 4
  local c; c=$($BA from scratch | tail -1)
  $BA copy "$c" "$file" "$dest" >/dev/null
  $BA config --entrypoint "[\"$entry\"]" "$@" "$c"
  $BA commit "$c" "$name" >/dev/null 2>&1
  $BA rm "$c" >/dev/null
  rm -f "$WORK/image.tar"
  $BA push "$name" oci-archive:"$WORK/image.tar":"$name" >/dev/null 2>&1
  ctr -n k8s.io images import "$WORK/image.tar" >/dev/null
  $BA rmi "$name" >/dev/null 2>&1 || true
  rm -f "$WORK/image.tar"
  log "image $name ($(du -h "$file" | cut -f1) binary)"
}
if ctr -n k8s.io images ls -q | grep -qx "$NATS_IMAGE" && [ "$(cat "$CACHE/nats-image.stamp" 2>/dev/null)" = "$NATS_VERSION" ]; then
  log "image $NATS_IMAGE: cached"
else
  # The chart's preStop runs `nats-server -sl=ldm=...`: it must be on PATH.
  image "$NATS_IMAGE" "$BIN/nats-server" /usr/local/bin/nats-server /usr/local/bin/nats-server \
    --env PATH=/usr/local/bin:/usr/bin:/bin --port 4222
  echo "$NATS_VERSION" > "$CACHE/nats-image.stamp"
fi
# As the Dockerfile's runtime image: /gps, uid 65532, port 9090.
image "$GPS_IMAGE" "$BIN/gps" /gps /gps --user 65532:65532 --port 9090

# ---------------------------------------------------------------- 5. NATS
step "NATS: the official chart ($CHART), 3 JetStream servers"
mkdir -p "$WORK/pv"
# pv NAME NAMESPACE CLAIM SIZE: a hostPath PersistentVolume bound to one claim
# (the test cluster has no dynamic provisioner).
pv() {
  mkdir -p "$WORK/pv/$1"
  cat <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: $1}
spec:
  capacity: {storage: $4}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  hostPath: {path: $WORK/pv/$1, type: Directory}
  claimRef: {namespace: $2, name: $3}
---
EOF
}
{ for i in 0 1 2; do pv "nats-$i" nats "nats-js-nats-$i" 2Gi; done; pv gps-seed gps gps-seed 1Gi; } > "$WORK/pvs.yaml"
$K apply -f "$WORK/pvs.yaml" >/dev/null
"$BIN/helm" --kubeconfig "$WORK/admin.kubeconfig" upgrade --install nats "$CHART" -n nats --create-namespace \
  -f "$REPO/k8s/nats-values.yaml" -f "$E2E/nats-values-e2e.yaml" >/dev/null
$K -n nats rollout status statefulset/nats --timeout=3m >&2 || die "NATS not ready"
$K -n nats get pods -o wide >&2

# ---------------------------------------------------------------- 6. gps
step "gps: lab world, overlay k8s/e2e/overlay"
"$BIN/gps" lab gen --out "$WORK/pv/gps-seed" --seed 7 --hosts 3000 --slash16s 4 --seed-frac 0.2 --log-level warn
gzip -k "$WORK/pv/gps-seed/seed.jsonl"
chmod -R a+rX "$WORK/pv/gps-seed"
log "world: $(wc -l < "$WORK/pv/gps-seed/truth.jsonl") services, $(wc -l < "$WORK/pv/gps-seed/seed.jsonl") in the seed"
$K create namespace gps >/dev/null
# The prober's NET_RAW (k8s/README.md); the others would pass "restricted".
$K label namespace gps pod-security.kubernetes.io/enforce=privileged >/dev/null
# As an operator does for prod (the test's NATS has no auth: the file is unused).
$K -n gps create secret generic gps-nats-creds --from-literal=user.creds=unused >/dev/null
$K apply -k "$E2E/overlay" >&2
# Every Deployment the overlay runs (one of 0 replicas is done at once).
for d in $($K -n gps get deployments -o name); do
  $K -n gps rollout status "$d" --timeout=5m >&2 || die "$d not Ready"
done
$K -n gps get pods -o wide >&2

# ---------------------------------------------------------------- 7. check
step "check: go test -run TestCluster ./k8s/e2e"
NATS_URLS=$($K -n nats get pods -l app.kubernetes.io/name=nats -o jsonpath='{range .items[*]}nats://{.status.podIP}:4222,{end}')
# In the background, so that a SIGTERM stops the cluster at once (bash runs
# a trap only once the foreground command ends; `wait` returns at once).
(cd "$REPO" && exec env GPS_E2E_CLUSTER=1 KUBECTL="$BIN/kubectl" KUBECONFIG="$WORK/admin.kubeconfig" \
  GPS_E2E_NATS="${NATS_URLS%,}" GPS_E2E_WORLD="$WORK/pv/gps-seed" \
  go test -count=1 -v -timeout 20m -run '^TestCluster$' ./k8s/e2e) >&2 &
CHECK=$!
wait $CHECK || die "the check failed"
CHECK=
step "PASS"
