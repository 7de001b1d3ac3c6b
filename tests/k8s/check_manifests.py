#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Checks deploy/kubernetes/ and deploy/container/ (docs/fleet.md).

What it proves: every document parses as YAML and matches, by kind, the
vendored schema (tests/k8s/schema.json: the fields these manifests use,
their types and enums; unknown fields refused); the references between
the objects hold (volumes, ConfigMap, service account, selector, binding);
the kgate-specific requirements hold (host bpffs and cgroupfs mounted,
bpffs with Bidirectional propagation in privileged containers only, the API
on loopback, the trail on the node); every policy in the ConfigMap passes
`kgate policy check`; the governor script parses (sh -n); what the
Containerfile copies exists.  And that the checker itself refuses broken
manifests (self-test with mutations).

What it does not prove: that a cluster accepts them (no API server here),
that the image builds, that the pods run, that a pod gets governed.

Python 3 with python3-yaml only (a Debian package); the small JSON Schema
subset it needs is implemented here (type, properties, required,
additionalProperties, items, enum, const, pattern, minimum, maximum,
minItems, minLength, maxLength, $ref).
"""
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

SRC = os.environ.get("KGATE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KGATE = os.environ.get("KGATE_BIN")
SCHEMA = json.load(open(os.path.join(SRC, "tests/k8s/schema.json")))
K8S = os.path.join(SRC, "deploy/kubernetes")

TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def validate(node, schema, path, errs):
    if "$ref" in schema:
        schema = SCHEMA["definitions"][schema["$ref"].split("/")[-1]]
    t = schema.get("type")
    if t:
        ts = t if isinstance(t, list) else [t]
        ok = any(isinstance(node, TYPES[x]) and not (x == "integer" and isinstance(node, bool)) for x in ts)
        if not ok:
            errs.append("%s: %r is not %s" % (path, node, "/".join(ts)))
            return
    if "const" in schema and node != schema["const"]:
        errs.append("%s: %r is not %r" % (path, node, schema["const"]))
    if "enum" in schema and node not in schema["enum"]:
        errs.append("%s: %r is not one of %s" % (path, node, schema["enum"]))
    if isinstance(node, str):
        if "pattern" in schema and not re.search(schema["pattern"], node) and \
                not (isinstance(t, list) and "integer" in t and False):
            errs.append("%s: %r does not match %s" % (path, node, schema["pattern"]))
        if len(node) < schema.get("minLength", 0) or len(node) > schema.get("maxLength", 1 << 30):
            errs.append("%s: length of %r" % (path, node))
    if isinstance(node, int) and not isinstance(node, bool):
        if node < schema.get("minimum", -(1 << 62)) or node > schema.get("maximum", 1 << 62):
            errs.append("%s: %d out of range" % (path, node))
    if isinstance(node, dict):
        props = schema.get("properties", {})
        for r in schema.get("required", []):
            if r not in node:
                errs.append("%s: missing %s" % (path, r))
        for k, v in node.items():
            if k in props:
                validate(v, props[k], path + "." + k, errs)
            elif schema.get("additionalProperties") is False:
                errs.append("%s: unknown field %s" % (path, k))
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(v, schema["additionalProperties"], path + "." + k, errs)
    if isinstance(node, list):
        if len(node) < schema.get("minItems", 0):
            errs.append("%s: fewer than %d items" % (path, schema["minItems"]))
        for i, v in enumerate(node):
            if "items" in schema:
                validate(v, schema["items"], "%s[%d]" % (path, i), errs)


def load_docs():
    docs = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            with open(os.path.join(K8S, name)) as f:
                for d in yaml.safe_load_all(f):
                    if d is not None:
                        docs.append((name, d))
    return docs


def semantic(docs, errs):
    by_kind = {}
    for name, d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    namespaces = {d["metadata"]["name"] for d in by_kind.get("Namespace", [])}
    sas = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in by_kind.get("ServiceAccount", [])}
    cms = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in by_kind.get("ConfigMap", [])}
    roles = {d["metadata"]["name"] for d in by_kind.get("ClusterRole", [])}
    for kind in ("ConfigMap", "ServiceAccount", "DaemonSet"):
        for d in by_kind.get(kind, []):
            if d["metadata"].get("namespace") not in namespaces:
                errs.append("%s %s: namespace %s is not defined" % (kind, d["metadata"]["name"], d["metadata"].get("namespace")))
    for b in by_kind.get("ClusterRoleBinding", []):
        if b["roleRef"]["name"] not in roles:
            errs.append("binding %s: no ClusterRole %s" % (b["metadata"]["name"], b["roleRef"]["name"]))
        for s in b.get("subjects", []):
            if s["kind"] == "ServiceAccount" and (s.get("namespace"), s["name"]) not in sas:
                errs.append("binding %s: no ServiceAccount %s/%s" % (b["metadata"]["name"], s.get("namespace"), s["name"]))
    if not by_kind.get("DaemonSet"):
        errs.append("no DaemonSet")
    for ds in by_kind.get("DaemonSet", []):
        ns = ds["metadata"]["namespace"]
        tpl = ds["spec"]["template"]
        spec = tpl["spec"]
        labels = tpl.get("metadata", {}).get("labels", {})
        for k, v in ds["spec"]["selector"]["matchLabels"].items():
            if labels.get(k) != v:
                errs.append("daemonset: selector %s=%s does not select its own pods" % (k, v))
        if (ns, spec.get("serviceAccountName", "default")) not in sas:
            errs.append("daemonset: no ServiceAccount %s" % spec.get("serviceAccountName"))
        vols = {}
        for v in spec.get("volumes", []):
            if v["name"] in vols:
                errs.append("volume %s defined twice" % v["name"])
            vols[v["name"]] = v
            if "configMap" in v and (ns, v["configMap"]["name"]) not in cms:
                errs.append("volume %s: no ConfigMap %s" % (v["name"], v["configMap"]["name"]))
        host = {v.get("hostPath", {}).get("path"): n for n, v in vols.items()}
        for need in ("/sys/fs/bpf", "/sys/fs/cgroup", "/var/log/kgate"):
            if need not in host:
                errs.append("no hostPath volume for %s" % need)
        names = set()
        used = set()
        for c in spec["containers"]:
            if c["name"] in names:
                errs.append("container %s defined twice" % c["name"])
            names.add(c["name"])
            priv = c.get("securityContext", {}).get("privileged", False)
            for m in c.get("volumeMounts", []):
                used.add(m["name"])
                if m["name"] not in vols:
                    errs.append("%s: mounts undefined volume %s" % (c["name"], m["name"]))
                if m.get("mountPropagation") == "Bidirectional" and not priv:
                    errs.append("%s: Bidirectional propagation needs a privileged container" % c["name"])
                v = vols.get(m["name"], {})
                if v.get("hostPath", {}).get("path") == "/sys/fs/bpf" and m.get("mountPropagation") != "Bidirectional":
                    errs.append("%s: bpffs without Bidirectional propagation: pins would stay in the pod" % c["name"])
            cmd = c.get("command", [])
            if cmd[:2] == ["/usr/bin/kgate", "daemon"]:
                if not priv:
                    errs.append("%s: kgate daemon needs privileged (BPF LSM, cgroup programs)" % c["name"])
                if "--http" in cmd:
                    addr = cmd[cmd.index("--http") + 1]
                    if not addr.startswith("127.0.0.1:") and not addr.startswith("[::1]:"):
                        errs.append("%s: the HTTP API is meant for the node's loopback, not %s" % (c["name"], addr))
            for e in c.get("env", []):
                if "value" in e and not isinstance(e["value"], str):
                    errs.append("%s: env %s is not a string" % (c["name"], e["name"]))
        for n in vols:
            if n not in used:
                errs.append("volume %s mounted by no container" % n)


def check_policies(docs, errs):
    if not KGATE or not os.access(KGATE, os.X_OK):
        return "no KGATE_BIN: policies not checked"
    with tempfile.TemporaryDirectory() as d:
        files = []
        for name, doc in docs:
            if doc.get("kind") != "ConfigMap":
                continue
            for k, v in doc.get("data", {}).items():
                if k.endswith(".json"):
                    p = os.path.join(d, k)
                    open(p, "w").write(v)
                    files.append(p)
        if not files:
            errs.append("the ConfigMap holds no policy")
            return None
        r = subprocess.run([KGATE, "policy", "check"] + files, capture_output=True, text=True)
        if r.returncode != 0:
            errs.append("kgate policy check: " + (r.stdout + r.stderr).strip())
    return None


def check_image(errs):
    cf = os.path.join(SRC, "deploy/container/Containerfile")
    for line in open(cf):
        m = re.match(r"^COPY\s+(?!--from)(\S+)\s+\S+", line)
        if m and m.group(1) != "." and not os.path.exists(os.path.join(SRC, m.group(1))):
            errs.append("Containerfile copies %s, which does not exist" % m.group(1))
    gov = os.path.join(K8S, "kgate-governor")
    r = subprocess.run(["sh", "-n", gov], capture_output=True, text=True)
    if r.returncode != 0:
        errs.append("kgate-governor: " + r.stderr.strip())
    if not os.access(gov, os.X_OK):
        errs.append("kgate-governor is not executable")


def check_all(docs):
    errs = []
    for name, d in docs:
        kind = d.get("kind") if isinstance(d, dict) else None
        if kind not in SCHEMA["definitions"]:
            errs.append("%s: kind %r is not in the schema" % (name, kind))
            continue
        validate(d, {"$ref": "#/definitions/" + kind}, "%s:%s/%s" % (name, kind, d.get("metadata", {}).get("name")), errs)
    if not errs:
        semantic(docs, errs)
    return errs


results = {"passed": 0, "failed": 0, "skipped": 0}


def report(name, errs, skip=None):
    if skip:
        print("SKIP %s: %s" % (name, skip))
        results["skipped"] += 1
    elif errs:
        print("FAIL %s:" % name)
        for e in errs:
            print("  " + e)
        results["failed"] += 1
    else:
        print("PASS %s" % name)
        results["passed"] += 1


def main():
    docs = load_docs()
    report("manifests_match_the_schema_and_refer_to_each_other", check_all(docs))
    errs = []
    skip = check_policies(docs, errs)
    report("configmap_policies_pass_kgate_policy_check", errs, skip)
    errs = []
    check_image(errs)
    report("containerfile_sources_exist_and_governor_parses", errs)

    # the checker refuses what it should (each mutation must be caught)
    def ds_of(ds):
        return next(d for n, d in ds if d.get("kind") == "DaemonSet")

    def mut_typo(ds):
        c = ds_of(ds)["spec"]["template"]["spec"]["containers"][0]
        c["volumeMounts"][0]["mountPropagaton"] = c["volumeMounts"][0].pop("mountPropagation")

    def mut_env_int(ds):
        ds_of(ds)["spec"]["template"]["spec"]["containers"][1]["env"][2]["value"] = 1

    def mut_unpriv_bidir(ds):
        ds_of(ds)["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = False

    def mut_no_bpffs(ds):
        spec = ds_of(ds)["spec"]["template"]["spec"]
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "bpffs"]

    def mut_api_exposed(ds):
        c = ds_of(ds)["spec"]["template"]["spec"]["containers"][0]
        c["command"][c["command"].index("--http") + 1] = "0.0.0.0:8081"

    def mut_bad_configmap(ds):
        ds_of(ds)["spec"]["template"]["spec"]["volumes"][-1]["configMap"]["name"] = "kgate-policies-v9"

    def mut_bad_enum(ds):
        ds_of(ds)["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["type"] = "Dir"

    def mut_selector(ds):
        ds_of(ds)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other"

    errs = []
    for mut in (mut_typo, mut_env_int, mut_unpriv_bidir, mut_no_bpffs, mut_api_exposed,
                mut_bad_configmap, mut_bad_enum, mut_selector):
        bad = copy.deepcopy(docs)
        mut(bad)
        found = check_all(bad)
        if not found:
            errs.append("%s: not caught" % mut.__name__)
        else:
            print("  %s caught: %s" % (mut.__name__, found[0]))
    report("the_checker_catches_broken_manifests", errs)
    print("%d passed, %d failed, %d skipped" % (results["passed"], results["failed"], results["skipped"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
