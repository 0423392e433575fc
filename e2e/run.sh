#!/usr/bin/env bash
# End-to-end on kind, in one command:
#   e2e/run.sh                 # create cluster, build + load images, helm install, test, delete
#   KEEP_CLUSTER=1 e2e/run.sh  # leave the cluster up afterwards (kubeconfig path is printed)
#
# A kind cluster from ../kind-config.yaml; both images built and loaded; the chart
# installed with Redis; provider Secret, AIGateway, ProviderRoute, RateLimitPolicy and a
# gateway key applied in namespace `ai`, with an in-cluster fake Anthropic behind the
# route. A workspace pod (namespace `workspaces`) calls
# http://ai-gateway.ai.svc:8090/v1/claude/v1/messages with its key and gets the fake's
# answer; then a stricter RateLimitPolicy is applied and the same pod must get 429
# within E2E_LIMIT_SECONDS (20). Also checked: the audit line in the data plane's log
# and ai_gateway_ metrics on its admin port.
#
# Without docker (and a running engine), kind, kubectl or helm it prints
# `e2e: SKIPPED — <reason>` and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CLUSTER="${E2E_CLUSTER:-ai-gateway}"            # the name in kind-config.yaml
NS="${E2E_NAMESPACE:-ai}"                      # where the gateway and its objects live
WS_NS="${E2E_WORKSPACE_NAMESPACE:-workspaces}" # where the developer's pod runs
SYSTEM_NS="${E2E_SYSTEM_NAMESPACE:-ai-gateway-system}"
RELEASE="ai-gateway"
TAG="${E2E_IMAGE_TAG:-e2e}"
LIMIT_SECONDS="${E2E_LIMIT_SECONDS:-20}"
HELM="${AI_GATEWAY_HELM:-helm}"

skip() {
  echo "e2e: SKIPPED — $*"
  exit 0
}
command -v docker >/dev/null 2>&1 || skip "docker not found"
docker info >/dev/null 2>&1 || skip "the Docker engine is not running (docker info failed)"
command -v kind >/dev/null 2>&1 || skip "kind not found"
command -v kubectl >/dev/null 2>&1 || skip "kubectl not found"
command -v "$HELM" >/dev/null 2>&1 || skip "helm not found (set AI_GATEWAY_HELM or put helm on PATH)"
command -v curl >/dev/null 2>&1 || skip "curl not found"

WORK="$(mktemp -d)"
export KUBECONFIG="$WORK/kubeconfig"
PIDS=()

say() { printf '\n== e2e: %s\n' "$*"; }
fail() {
  echo "e2e: FAILED — $*" >&2
  exit 1
}

diagnostics() {
  echo "---- diagnostics ----"
  kubectl get pods,deploy,svc,aigateways,providerroutes,ratelimitpolicies -A -o wide 2>&1 | grep -v '^kube-system' || true
  kubectl get events -A --sort-by=.lastTimestamp 2>&1 | tail -n 40 || true
  kubectl -n "$NS" describe aigateway ai-gateway 2>&1 | tail -n 30 || true
  kubectl -n "$SYSTEM_NS" logs -l app.kubernetes.io/name=ai-gateway-operator --tail=80 --prefix 2>&1 || true
  [ -n "${DP_SELECTOR:-}" ] && kubectl -n "$NS" logs -l "$DP_SELECTOR" --tail=80 --prefix 2>&1 || true
  kubectl -n "$NS" logs deploy/fake-anthropic --tail=30 2>&1 || true
}

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    diagnostics
  fi
  if [ "${KEEP_CLUSTER:-0}" = "1" ]; then
    echo "e2e: cluster $CLUSTER kept; KUBECONFIG=$KUBECONFIG"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT

# --- cluster ---------------------------------------------------------------------------
say "kind cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  kind create cluster --name "$CLUSTER" --config "$ROOT/kind-config.yaml" \
    --kubeconfig "$KUBECONFIG" --wait 180s
fi

# --- images ----------------------------------------------------------------------------
say "building images (first build compiles the workspace in release mode)"
export DOCKER_BUILDKIT=1
docker build -f Dockerfile.operator -t "ai-gateway-operator:$TAG" .
# The profile-guided build changes code layout, not behaviour: skip its second build here.
docker build -f Dockerfile.dataplane --build-arg PGO=0 -t "ai-gateway:$TAG" .
kind load docker-image --name "$CLUSTER" "ai-gateway-operator:$TAG" "ai-gateway:$TAG"

# --- chart -----------------------------------------------------------------------------
say "helm install $RELEASE into $SYSTEM_NS"
"$HELM" upgrade --install "$RELEASE" charts/ai-gateway \
  --namespace "$SYSTEM_NS" --create-namespace \
  --set operator.image.repository=ai-gateway-operator \
  --set operator.image.tag="$TAG" \
  --set dataplane.image.repository=ai-gateway \
  --set dataplane.image.tag="$TAG" \
  --set redis.enabled=true \
  --set gateway.enabled=false \
  --wait --timeout 5m
kubectl get crd aigateways.ai-gateway.dev providerroutes.ai-gateway.dev ratelimitpolicies.ai-gateway.dev >/dev/null

# --- fake provider, Secrets and the three custom resources -----------------------------
say "fake Anthropic, provider Secret, gateway key and the three CRs in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace "$WS_NS" --dry-run=client -o yaml | kubectl apply -f -

PROVIDER_KEY="sk-ant-e2e-$(date +%s)"
GATEWAY_KEY="gw_e2e_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

kubectl -n "$NS" create configmap fake-anthropic --from-file=fake_anthropic.py="$ROOT/e2e/fake_anthropic.py" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f - <<EOF
apiVersion: v1
kind: Secret
metadata: { name: fake-anthropic-expected, namespace: $NS }
stringData: { api-key: "$PROVIDER_KEY" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: fake-anthropic, namespace: $NS, labels: { app: fake-anthropic } }
spec:
  replicas: 1
  selector: { matchLabels: { app: fake-anthropic } }
  template:
    metadata: { labels: { app: fake-anthropic } }
    spec:
      securityContext: { runAsNonRoot: true, runAsUser: 65534 }
      containers:
        - name: fake
          image: python:3.12-slim
          command: ["python3", "-u", "/app/fake_anthropic.py"]
          env:
            - name: EXPECTED_API_KEY
              valueFrom: { secretKeyRef: { name: fake-anthropic-expected, key: api-key } }
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe: { httpGet: { path: /healthz, port: http }, periodSeconds: 2 }
          volumeMounts: [{ name: app, mountPath: /app }]
      volumes: [{ name: app, configMap: { name: fake-anthropic } }]
---
apiVersion: v1
kind: Service
metadata: { name: fake-anthropic, namespace: $NS }
spec:
  selector: { app: fake-anthropic }
  ports: [{ name: http, port: 8080, targetPort: http }]
---
apiVersion: v1
kind: Secret
metadata: { name: anthropic-creds, namespace: $NS }
stringData: { api-key: "$PROVIDER_KEY" }
---
apiVersion: v1
kind: Secret
metadata:
  name: key-dev
  namespace: $NS
  labels:
    ai-gateway.dev/key: "true"
    ai-gateway.dev/user: dev
    ai-gateway.dev/team: platform
    ai-gateway.dev/workspace: ws-dev
stringData: { key: "$GATEWAY_KEY" }
---
apiVersion: ai-gateway.dev/v1alpha1
kind: AIGateway
metadata: { name: ai-gateway, namespace: $NS }
spec:
  replicas: 2
  auth: { mode: keys }
  audit: { sink: stdout }
  rateLimitStore: { kind: redis, url: "redis://$RELEASE-redis.$SYSTEM_NS.svc:6379/0" }
---
apiVersion: ai-gateway.dev/v1alpha1
kind: ProviderRoute
metadata: { name: anthropic, namespace: $NS }
spec:
  gatewayRef: ai-gateway
  type: anthropic
  endpoint: http://fake-anthropic.$NS.svc:8080
  credentialsRef: { secretName: anthropic-creds, apiKeyKey: api-key }
  models: ["claude-*"]
  retries: { attempts: 0 }
---
apiVersion: ai-gateway.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: limits, namespace: $NS }
spec:
  gatewayRef: ai-gateway
  rules:
    - subject: global
      limits: { requests_per_minute: 1000 }
    - subject: user
      limits: { requests_per_minute: 60, tokens_per_minute: 100000 }
EOF
kubectl -n "$NS" rollout status deploy/fake-anthropic --timeout=180s

say "waiting for the operator to create the data plane"
for _ in $(seq 1 90); do
  kubectl -n "$NS" get deploy ai-gateway >/dev/null 2>&1 && break
  sleep 2
done
kubectl -n "$NS" get deploy ai-gateway >/dev/null || fail "the operator created no Deployment ai-gateway in $NS"
kubectl -n "$NS" get svc ai-gateway -o jsonpath='{.spec.ports[*].name}' | grep -qw admin \
  || fail "Service ai-gateway has no port named admin"
kubectl -n "$NS" rollout status deploy/ai-gateway --timeout=300s
DP_SELECTOR="$(kubectl -n "$NS" get deploy ai-gateway \
  -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}')"
DP_SELECTOR="${DP_SELECTOR%,}"
kubectl -n "$NS" wait aigateway/ai-gateway --for=condition=Ready --timeout=180s
kubectl -n "$NS" get aigateway,providerroute,ratelimitpolicy

# --- the workspace ---------------------------------------------------------------------
say "workspace pod in $WS_NS"
kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: { name: workspace, namespace: $WS_NS, labels: { app: workspace } }
spec:
  securityContext: { runAsNonRoot: true, runAsUser: 100 }
  containers:
    - name: dev
      image: curlimages/curl:8.11.1
      command: ["sleep", "3600"]
      env:
        - { name: ANTHROPIC_BASE_URL, value: "http://ai-gateway.$NS.svc:8090/v1/claude" }
        - { name: ANTHROPIC_API_KEY, value: "$GATEWAY_KEY" }
EOF
kubectl -n "$WS_NS" wait pod/workspace --for=condition=Ready --timeout=180s

# One Messages API call from inside the workspace; prints "<status>" then headers and body.
call() {
  kubectl -n "$WS_NS" exec workspace -- sh -c '
    curl -sS -D /tmp/headers -o /tmp/body -w "%{http_code}" --max-time 20 \
      "$ANTHROPIC_BASE_URL/v1/messages" \
      -H "x-api-key: $ANTHROPIC_API_KEY" -H "anthropic-version: 2023-06-01" \
      -H "content-type: application/json" \
      -d "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":32,\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}"
    echo; cat /tmp/headers; cat /tmp/body' 2>&1 || true
}

say "the workspace calls the gateway"
ok=""
for _ in $(seq 1 30); do
  out="$(call)"
  if [ "$(printf '%s\n' "$out" | head -n 1)" = "200" ]; then
    ok=1
    break
  fi
  sleep 2
done
[ -n "$ok" ] || fail "no 200 from the gateway; last answer: $out"
printf '%s\n' "$out" | grep -q '"text":"pong' || fail "200 without the fake provider's answer: $out"
printf '%s\n' "$out" | grep -qi '^x-ai-gateway-provider: anthropic' || fail "no x-ai-gateway-provider header: $out"
echo "200 with the provider's answer"

say "a stricter RateLimitPolicy: 1 request a minute per user"
kubectl apply -f - <<EOF
apiVersion: ai-gateway.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: limits, namespace: $NS }
spec:
  gatewayRef: ai-gateway
  rules:
    - subject: global
      limits: { requests_per_minute: 1000 }
    - subject: user
      limits: { requests_per_minute: 1, tokens_per_minute: 100000 }
EOF
start=$(date +%s)
limited=""
while [ $(($(date +%s) - start)) -le "$LIMIT_SECONDS" ]; do
  out="$(call)"
  status="$(printf '%s\n' "$out" | head -n 1)"
  if [ "$status" = "429" ]; then
    limited=1
    break
  fi
  sleep 1
done
[ -n "$limited" ] || fail "no 429 within ${LIMIT_SECONDS}s of kubectl apply; last answer: $out"
printf '%s\n' "$out" | grep -qi '^retry-after:' || fail "429 without retry-after: $out"
printf '%s\n' "$out" | grep -q '"rate_limit_error"' || fail "429 not in Anthropic's error shape: $out"
echo "429 after $(($(date +%s) - start)) s"

# --- audit and metrics -----------------------------------------------------------------
say "audit records in the data plane's log"
audit="$(kubectl -n "$NS" logs -l "$DP_SELECTOR" --tail=-1 --max-log-requests=10 2>/dev/null \
  | grep '"event":"ai_request"' || true)"
printf '%s\n' "$audit" | grep '"user":"dev"' | grep -q '"status":200' \
  || fail "no audit record of the 200 call for user dev; audit lines: $audit"
printf '%s\n' "$audit" | grep '"user":"dev"' | grep -q '"status":429' \
  || fail "no audit record of the 429 for user dev; audit lines: $audit"
if printf '%s\n' "$audit" | grep -q -- "$GATEWAY_KEY\|$PROVIDER_KEY"; then
  fail "a key appears in the audit log"
fi
printf '%s\n' "$audit" | tail -n 2

say "metrics on the admin port"
metrics=""
port=18091
for pod in $(kubectl -n "$NS" get pods -l "$DP_SELECTOR" -o jsonpath='{.items[*].metadata.name}'); do
  kubectl -n "$NS" port-forward "pod/$pod" "$port:8091" >"$WORK/pf-$pod.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 20); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  metrics+="$(curl -fsS "http://127.0.0.1:$port/metrics" || true)"$'\n'
  port=$((port + 1))
done
for want in 'ai_gateway_requests_total{' 'status="200"' 'ai_gateway_rate_limited_total{' \
  'ai_gateway_config{' 'gen_ai_client_token_usage_total{'; do
  printf '%s' "$metrics" | grep -qF "$want" || fail "/metrics lacks $want"
done
printf '%s\n' "$metrics" | grep -E '^ai_gateway_(requests_total|rate_limited_total|config)\{' | head -n 6

say "PASSED"
