#!/usr/bin/env python3
"""Checks deploy/k8s: every YAML parses, every object has the fields Kubernetes requires
for its kind, and the objects agree with each other and with vuswitch:

  - DaemonSet: selector matches the template's labels; hostNetwork; vuswitchd privileged;
    hugepages-2Mi requested = limited (Kubernetes refuses otherwise) with cpu/memory;
    every volumeMount names a volume; host paths /dev/hugepages, /run/vuswitch and
    /opt/cni/bin; the init container installs vuswitch-cni into the CNI bin mount;
    vuswitchd's --config file is the ConfigMap's key at its mount path;
  - ConfigMap: every `name = value` line of vuswitch.conf is a flag in `vuswitchd --help`;
    its control socket is the NAD's controlSocket;
  - NetworkAttachmentDefinition: spec.config is JSON, type vuswitch-cni, socketDir under
    the DaemonSet's /run/vuswitch, and vuswitch-cni accepts it (CHECK against a control
    socket that does not exist must fail with code 11, "try again later", not 1/6/7);
  - sample pod: asks for the NAD, mounts socketDir at podSocketDir, hugepages.

No Debian package validates Kubernetes schemas offline (kubeconform is not packaged), so
the fields are checked here. Usage: k8s_manifests.py K8S_DIR VUSWITCHD VUSWITCH_CNI
"""
import json
import os
import re
import subprocess
import sys

import yaml

errors = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        errors.append(what)
    return ok


def load(directory):
    objects = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yaml"):
            with open(os.path.join(directory, name)) as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            for d in docs:
                meta = d.get("metadata", {}) if isinstance(d, dict) else {}
                check(isinstance(d, dict) and bool(d.get("apiVersion")) and bool(d.get("kind"))
                      and bool(meta.get("name")), f"{name}: apiVersion, kind, metadata.name")
                objects[d["kind"]] = d
    return objects


QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def resources_ok(where, container):
    res = container.get("resources", {})
    req, lim = res.get("requests", {}), res.get("limits", {})
    check(all(QUANTITY.match(str(v)) for v in list(req.values()) + list(lim.values())),
          f"{where}: resource quantities well-formed")
    check("hugepages-2Mi" in lim and req.get("hugepages-2Mi", lim.get("hugepages-2Mi")) == lim["hugepages-2Mi"],
          f"{where}: hugepages-2Mi limit, request equal to it")
    check("cpu" in lim or "memory" in lim, f"{where}: cpu or memory limit with hugepages")


def pod_spec_ok(where, spec):
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        check(bool(c.get("name")) and bool(c.get("image")), f"{where}: container {c.get('name')} has name and image")
        for m in c.get("volumeMounts", []):
            check(m.get("name") in volumes and m.get("mountPath", "").startswith("/"),
                  f"{where}: {c['name']} mounts volume {m.get('name')} that exists, at an absolute path")
    return volumes


def host_paths(volumes):
    return {v["hostPath"]["path"]: name for name, v in volumes.items() if "hostPath" in v}


def mount_of(container, volume):
    return next((m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] == volume), None)


def check_daemonset(ds, cm):
    spec = ds["spec"]
    tmpl = spec["template"]
    labels = tmpl["metadata"].get("labels", {})
    check(ds["apiVersion"] == "apps/v1", "DaemonSet: apps/v1")
    check(spec["selector"]["matchLabels"].items() <= labels.items(), "DaemonSet: selector matches template labels")
    pod = tmpl["spec"]
    check(pod.get("hostNetwork") is True, "DaemonSet: hostNetwork")
    volumes = pod_spec_ok("DaemonSet", pod)
    hp = host_paths(volumes)
    for path in ("/dev/hugepages", "/run/vuswitch", "/opt/cni/bin"):
        check(path in hp, f"DaemonSet: hostPath {path}")
    main = next(c for c in pod["containers"] if c["name"] == "vuswitchd")
    check(main.get("securityContext", {}).get("privileged") is True, "DaemonSet: vuswitchd privileged")
    resources_ok("DaemonSet vuswitchd", main)
    check(mount_of(main, hp.get("/dev/hugepages")) == "/dev/hugepages", "DaemonSet: hugetlbfs at /dev/hugepages")
    check(mount_of(main, hp.get("/run/vuswitch")) == "/run/vuswitch", "DaemonSet: /run/vuswitch shared with the host")
    init = pod.get("initContainers", [])
    cni_dir = [mount_of(c, hp.get("/opt/cni/bin")) for c in init]
    check(any(d and f"{d}/vuswitch-cni" in " ".join(c["command"]) for c, d in zip(init, cni_dir)),
          "DaemonSet: an init container installs vuswitch-cni into /opt/cni/bin")
    cmd = main["command"]
    conf_path = cmd[cmd.index("--config") + 1] if "--config" in cmd else ""
    cm_volume = next((n for n, v in volumes.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"]), None)
    check(cm_volume is not None and conf_path == f"{mount_of(main, cm_volume)}/vuswitch.conf",
          f"DaemonSet: --config {conf_path} is the ConfigMap's vuswitch.conf")
    check(ds["metadata"].get("namespace") == cm["metadata"].get("namespace"), "DaemonSet and ConfigMap: one namespace")


def check_configmap(cm, vuswitchd):
    conf = cm.get("data", {}).get("vuswitch.conf", "")
    helptext = subprocess.run([vuswitchd, "--help"], capture_output=True, text=True).stdout
    flags = set(re.findall(r"--([a-z][a-z-]+)", helptext))
    values = {}
    for line in conf.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = (s.strip() for s in line.partition("="))
            check(key in flags, f"ConfigMap vuswitch.conf: `{key}` is a vuswitchd flag")
            values[key] = value
    return values


def check_nad(nad, cni, control_socket):
    check(nad["apiVersion"] == "k8s.cni.cncf.io/v1", "NAD: k8s.cni.cncf.io/v1")
    try:
        conf = json.loads(nad["spec"]["config"])
    except (KeyError, json.JSONDecodeError) as e:
        check(False, f"NAD: spec.config is JSON ({e})")
        return {}
    check(conf.get("type") == "vuswitch-cni" and conf.get("cniVersion") == "1.0.0", "NAD: type vuswitch-cni, CNI 1.0.0")
    check(conf.get("name") == nad["metadata"]["name"], "NAD: network name = object name")
    check(conf.get("controlSocket") == control_socket, "NAD: controlSocket is the ConfigMap's control socket")
    check(conf.get("socketDir", "").startswith("/run/vuswitch/"), "NAD: socketDir under the DaemonSet's /run/vuswitch")
    dry = dict(conf, controlSocket=f"/nonexistent-{os.getpid()}/vuswitchd.ctl")
    env = dict(os.environ, CNI_COMMAND="CHECK", CNI_CONTAINERID="0123456789abcdef", CNI_IFNAME="net1",
               CNI_NETNS="/proc/self/ns/net", CNI_PATH="/opt/cni/bin")
    run = subprocess.run([cni], input=json.dumps(dry), capture_output=True, text=True, env=env)
    code = json.loads(run.stdout or "{}").get("code")
    check(run.returncode == 1 and code == 11, f"NAD: vuswitch-cni accepts the config (dry CHECK: code {code}, want 11)")
    return conf


def check_pod(pod, nad, conf):
    spec = pod["spec"]
    annotation = pod["metadata"].get("annotations", {}).get("k8s.v1.cni.cncf.io/networks", "")
    check(nad["metadata"]["name"] in annotation.split(","), "sample pod: asks for the NAD")
    volumes = pod_spec_ok("sample pod", spec)
    c = spec["containers"][0]
    resources_ok("sample pod", c)
    sockets = host_paths(volumes).get(conf.get("socketDir"))
    check(sockets is not None and mount_of(c, sockets) == conf.get("podSocketDir"),
          "sample pod: mounts socketDir at podSocketDir")
    huge = next((n for n, v in volumes.items() if v.get("emptyDir", {}).get("medium") == "HugePages"), None)
    check(huge is not None and mount_of(c, huge) is not None, "sample pod: a HugePages emptyDir mounted")


def main():
    directory, vuswitchd, cni = sys.argv[1:4]
    objects = load(directory)
    for kind in ("DaemonSet", "ConfigMap", "NetworkAttachmentDefinition", "Pod"):
        if not check(kind in objects, f"deploy/k8s has a {kind}"):
            return 1
    check_daemonset(objects["DaemonSet"], objects["ConfigMap"])
    values = check_configmap(objects["ConfigMap"], vuswitchd)
    conf = check_nad(objects["NetworkAttachmentDefinition"], cni, values.get("control", ""))
    check_pod(objects["Pod"], objects["NetworkAttachmentDefinition"], conf)
    print(f"{len(errors)} failed" if errors else "all checks passed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
