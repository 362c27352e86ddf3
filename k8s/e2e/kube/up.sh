#!/usr/bin/env bash
# A single-node Kubernetes on this machine, for tests: etcd, kube-apiserver, controller-manager, scheduler
# and kubelet on 127.0.0.1, containerd + runc + CNI bridge from Debian, pods on 198.18.128.0/17 (benchmark range).
# usage: up.sh BINDIR WORKDIR   (BINDIR holds kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
# Writes WORKDIR/admin.kubeconfig and WORKDIR/pids; down.sh WORKDIR stops it all.
# Env: NODE_IP (default 127.0.0.1; an address of the host in 198.18.0.0/15, on a dummy interface, lets the
# API server reach the kubelet: kubectl logs) and CLUSTER_DNS (the pods' nameserver, e.g. a CoreDNS on NODE_IP).
# Copied from ../shared/kube, with NODE_IP and CLUSTER_DNS added.
set -euo pipefail
NODE_IP=${NODE_IP:-127.0.0.1}; CLUSTER_DNS=${CLUSTER_DNS:-}
B=$(cd "$1" && pwd); W=$(mkdir -p "$2" && cd "$2" && pwd); H=$(cd "$(dirname "$0")" && pwd)
cd "$W"; mkdir -p certs logs; : > pids
[ -f sa.key ] || { openssl genrsa -out sa.key 2048 && openssl rsa -in sa.key -pubout -out sa.pub; } 2>/dev/null
printf 's3cr3t-token,admin,admin,system:masters\nnode-token,system:node:gpsnode,nodes,system:nodes\n' > tokens.csv
mkdir -p /etc/containerd /etc/cni/net.d /opt/cni/bin
cp "$H/containerd.toml" /etc/containerd/config.toml; cp "$H/10-gps.conflist" /etc/cni/net.d/
for p in /usr/lib/cni/*; do ln -sf "$p" /opt/cni/bin/; done
containerd > logs/containerd.log 2>&1 & echo $! >> pids
for i in $(seq 30); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
if ! ctr -n k8s.io images ls -q | grep -q '^registry.k8s.io/pause:3.6$'; then   # the pause image, made here
  c=$(buildah --storage-driver vfs from scratch | tail -1)
  buildah --storage-driver vfs copy "$c" /usr/bin/busybox /bin/busybox >/dev/null
  buildah --storage-driver vfs config --entrypoint '["/bin/busybox","sleep","2147483647"]' "$c"
  buildah --storage-driver vfs commit "$c" registry.k8s.io/pause:3.6 >/dev/null 2>&1
  rm -f pause.tar; buildah --storage-driver vfs push registry.k8s.io/pause:3.6 oci-archive:"$W/pause.tar":registry.k8s.io/pause:3.6 >/dev/null 2>&1
  ctr -n k8s.io images import pause.tar >/dev/null
fi
etcd --data-dir etcd-data --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 > logs/etcd.log 2>&1 & echo $! >> pids
"$B/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=26443 \
  --cert-dir=certs --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=sa.pub \
  --service-account-signing-key-file=sa.key --token-auth-file=tokens.csv --authorization-mode=Node,RBAC \
  --service-cluster-ip-range=198.19.0.0/24 --allow-privileged=true > logs/apiserver.log 2>&1 & echo $! >> pids
for i in $(seq 90); do curl -sk -H "Authorization: Bearer s3cr3t-token" https://127.0.0.1:26443/readyz | grep -q ok && break; sleep 1; done
cat > admin.kubeconfig <<K
apiVersion: v1
kind: Config
clusters: [{cluster: {server: "https://127.0.0.1:26443", insecure-skip-tls-verify: true}, name: local}]
users: [{name: admin, user: {token: s3cr3t-token}}]
contexts: [{context: {cluster: local, user: admin}, name: local}]
current-context: local
K
sed 's/s3cr3t-token/node-token/' admin.kubeconfig > node.kubeconfig
"$B/kube-controller-manager" --kubeconfig=admin.kubeconfig --bind-address=127.0.0.1 --secure-port=26444 \
  --service-account-private-key-file=sa.key --root-ca-file=certs/apiserver.crt --controllers='*,-nodeipam' > logs/kcm.log 2>&1 & echo $! >> pids
"$B/kube-scheduler" --kubeconfig=admin.kubeconfig --bind-address=127.0.0.1 --secure-port=26445 > logs/sched.log 2>&1 & echo $! >> pids
sed "s/^address: .*/address: $NODE_IP/" "$H/kubelet.yaml" > kubelet.yaml
[ -z "$CLUSTER_DNS" ] || printf 'clusterDNS: ["%s"]\nclusterDomain: cluster.local\n' "$CLUSTER_DNS" >> kubelet.yaml
"$B/kubelet" --config=kubelet.yaml --kubeconfig=node.kubeconfig --hostname-override=gpsnode --node-ip="$NODE_IP" > logs/kubelet.log 2>&1 & echo $! | tee -a pids > kubelet.pid
for i in $(seq 90); do "$B/kubectl" --kubeconfig admin.kubeconfig get node gpsnode 2>/dev/null | grep -q ' Ready' && break; sleep 1; done
"$B/kubectl" --kubeconfig admin.kubeconfig get node gpsnode
