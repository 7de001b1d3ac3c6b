#!/bin/sh
# The Kubernetes manifests and the container build file (deploy/): a schema
# and reference check, not a cluster (tests/k8s/check_manifests.py says
# what it does and does not prove).  Needs python3 and python3-yaml.
cd "$(dirname "$0")/.." || exit 2
if ! python3 -c 'import yaml' 2>/dev/null; then
	echo "SKIP k8s_manifests: python3-yaml is not installed"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
exec python3 tests/k8s/check_manifests.py
