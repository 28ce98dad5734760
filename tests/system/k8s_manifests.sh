#!/usr/bin/env bash
# System test: deploy/k8s parses and hangs together (tests/system/k8s_manifests.py says
# what is checked), including vuswitch-cni accepting the NetworkAttachmentDefinition's
# config. Needs no cluster, no root, no hugepages.
# Exit: 0 pass, 1 fail, 77 skip (python3-yaml missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${VUSW_BUILD:-$ROOT/build}
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3
"$PYTHON" -c 'import yaml' 2>/dev/null || { echo "[k8s_manifests] SKIP: python3-yaml not installed (deploy/setup.sh installs it)" >&2; exit 77; }
for b in control/vuswitchd control/vuswitch-cni; do
  [[ -x $BUILD/$b ]] || { echo "[k8s_manifests] FAIL: $BUILD/$b not built" >&2; exit 1; }
done
"$PYTHON" "$ROOT/tests/system/k8s_manifests.py" "$ROOT/deploy/k8s" "$BUILD/control/vuswitchd" \
  "$BUILD/control/vuswitch-cni" | sed 's/^/[k8s_manifests] /'
