"""Run a rendered Deployment's container as a local process: the pod runner of the deploy test.

No kubelet or container runtime runs here, so a pod is played by a process started with what the
Deployment describes: the image's ENTRYPOINT (read from the Dockerfile the manifests name), the
container's args and env (valueFrom Secrets, ConfigMaps and the downward API resolved from the
rendered objects), and its volumes written to a private root directory (configMap, secret,
projected, emptyDir, persistentVolumeClaim). What cannot be the same is rewritten, and only that:
- an absolute path under a mountPath becomes the same path under the root;
- a Service's cluster DNS name (and a port the host cannot bind) becomes its loopback address, from
  a table the test gives, in the args and in the mounted files;
- the in-cluster service account becomes a kubeconfig named by the `KUBECONFIG` environment
  variable (the fake API server speaks plain HTTP, which the in-cluster loader refuses). The official
  client reads `KUBECONFIG` outside a pod, so every command finds it; no argument is added (a
  `--kubeconfig` flag would break a command that has none, as `forecaster serve` has none: its
  discovery reads the API server through the same client defaults).
Anything the runner does not know (a volume type, an env source) is an error naming it, so a
manifest change that the test cannot follow fails loudly instead of being skipped.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

ROOT = Path(__file__).resolve().parents[2]


class PodSpecError(ValueError):
    """The rendered manifests ask for something the runner cannot give (the message names it)."""


def dockerfile_entrypoint(dockerfile: Path = ROOT / "Dockerfile") -> list[str]:
    """The ENTRYPOINT of the Dockerfile's last stage, in exec (JSON) form."""
    entry: list[str] | None = None
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("FROM "):
            entry = None  # a new stage: only the last one's entrypoint is the image's
        elif stripped.upper().startswith("ENTRYPOINT"):
            value = stripped[len("ENTRYPOINT"):].strip()
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                raise PodSpecError(f"{dockerfile}: ENTRYPOINT must use the exec (JSON) form, got {value!r}") \
                    from None
            entry = [str(p) for p in parsed]
    if not entry:
        raise PodSpecError(f"{dockerfile}: the last stage has no ENTRYPOINT")
    return entry


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container's args: a defined variable is replaced, an
    undefined one is left as written, `$$` is a literal `$`."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


@dataclass
class Objects:
    """The rendered objects, looked up by kind, namespace and name."""

    items: list[dict[str, Any]]

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        for obj in self.items:
            meta = obj.get("metadata", {})
            if obj.get("kind") == kind and meta.get("name") == name and \
                    (namespace is None or meta.get("namespace", namespace) == namespace):
                return obj
        return None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.items if o.get("kind") == kind]


def _data_of(obj: dict[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's or Secret's keys as bytes (Secret data is base64; stringData is plain)."""
    out: dict[str, bytes] = {}
    if obj["kind"] == "Secret":
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(value)
        for key, value in (obj.get("stringData") or {}).items():
            out[key] = str(value).encode()
    else:
        for key, value in (obj.get("data") or {}).items():
            out[key] = str(value).encode()
        for key, value in (obj.get("binaryData") or {}).items():
            out[key] = base64.b64decode(value)
    return out


@dataclass
class LocalPod:
    """One replica of a Deployment's first container, as a process. `start()`, then `stop()`."""

    deployment: dict[str, Any]
    objects: Objects
    root: Path
    entrypoint: list[str]
    kubeconfig: Path
    hosts: Mapping[str, str] = field(default_factory=dict)  # "svc.ns.svc:port" or "svc.ns.svc" -> "127.0.0.1:p"
    pod_name: str = ""
    container: str | None = None
    process: subprocess.Popen | None = None
    mounts: dict[str, Path] = field(default_factory=dict)  # mountPath -> where it lies here

    @property
    def namespace(self) -> str:
        return self.deployment["metadata"].get("namespace", "default")

    def _spec(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]

    def _container(self) -> dict[str, Any]:
        containers = self._spec()["containers"]
        if self.container is None:
            return containers[0]
        for c in containers:
            if c["name"] == self.container:
                return c
        raise PodSpecError(f"{self.deployment['metadata']['name']}: no container {self.container!r}")

    # ---- rewriting ---------------------------------------------------------------------------
    def rewrite(self, text: str) -> str:
        """Paths under a mountPath -> under the root; cluster DNS names -> loopback addresses.

        Each table is one pass of one alternation (longest first), so what a replacement writes is
        never rewritten again: the root usually lies under /tmp, and a pod that mounts /tmp would
        otherwise have /etc/x rewritten to <root>/etc/x and then that to <root>/<root>/etc/x."""
        if self.mounts:
            by_path = {m.rstrip("/") or "/": here for m, here in self.mounts.items()}
            # Only a whole path: /var/run/x is not the start of /var/run/xy, /var/run/x-y or /a/var/run/x.
            pattern = r"(?<![\w./-])(" + "|".join(
                re.escape(p) for p in sorted(by_path, key=len, reverse=True)) + r")(?![\w.-])"
            text = re.sub(pattern, lambda m: str(by_path[m.group(1)]), text)
        if self.hosts:
            pattern = r"(?<![\w.-])(" + "|".join(
                re.escape(n) for n in sorted(self.hosts, key=len, reverse=True)) + r")(?![\w.-])"
            text = re.sub(pattern, lambda m: self.hosts[m.group(1)], text)
        return text

    # ---- volumes -----------------------------------------------------------------------------
    def _source(self, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        obj = self.objects.find(kind, name, self.namespace)
        if obj is None:
            if optional:
                return {}
            raise PodSpecError(f"{self.deployment['metadata']['name']}: {kind} {self.namespace}/{name} is mounted "
                               f"but not in the rendered objects")
        return _data_of(obj)

    def _volume_files(self, volume: dict[str, Any]) -> dict[str, bytes] | None:
        """The files a volume holds (relative path -> bytes); None for a writable directory."""
        if "configMap" in volume or "secret" in volume:
            kind, src = ("ConfigMap", volume["configMap"]) if "configMap" in volume else ("Secret", volume["secret"])
            name = src.get("name") or src.get("secretName")
            data = self._source(kind, name, bool(src.get("optional")))
            if src.get("items"):
                return {item["path"]: data[item["key"]] for item in src["items"] if item["key"] in data}
            return data
        if "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources", []):
                for key in ("configMap", "secret"):
                    if key in source:
                        part = self._volume_files({key: source[key]}) or {}
                        files.update(part)
                if "serviceAccountToken" in source:
                    files[source["serviceAccountToken"]["path"]] = b"fake-service-account-token"
            return files
        if "emptyDir" in volume or "persistentVolumeClaim" in volume:
            return None
        raise PodSpecError(f"{self.deployment['metadata']['name']}: volume {volume['name']!r} has a type the pod "
                           f"runner does not know: {sorted(set(volume) - {'name'})}")

    def _materialize(self) -> None:
        volumes = {v["name"]: v for v in self._spec().get("volumes", [])}
        for mount in self._container().get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                raise PodSpecError(f"{self.deployment['metadata']['name']}: volumeMount {mount['name']!r} names no "
                                   f"volume of the pod")
            if "persistentVolumeClaim" in volume:
                # One directory per claim, shared by restarts of the pod: what a PVC keeps.
                here = self.root / "pvc" / volume["persistentVolumeClaim"]["claimName"]
            else:
                here = self.root / "pod" / self.pod_name / mount["mountPath"].lstrip("/")
            files = self._volume_files(volume)
            here.mkdir(parents=True, exist_ok=True)
            if files is not None:
                if mount.get("subPath"):
                    raise PodSpecError("subPath mounts are not supported by the pod runner")
                for rel, content in files.items():
                    target = here / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
            self.mounts[mount["mountPath"]] = here
        # Mounted text files are rewritten after every mount is known (a config names other mounts).
        for mount_path, here in self.mounts.items():
            volume = volumes[next(m["name"] for m in self._container()["volumeMounts"]
                                  if m["mountPath"] == mount_path)]
            if "configMap" in volume or "projected" in volume:
                for path in here.rglob("*"):
                    if path.is_file():
                        try:
                            text = path.read_text()
                        except UnicodeDecodeError:
                            continue
                        path.write_text(self.rewrite(text))

    # ---- env ---------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        # No KUBERNETES_SERVICE_* (the client would try the in-cluster account): the kubeconfig instead.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        container = self._container()
        for source in container.get("envFrom", []):
            if "configMapRef" in source or "secretRef" in source:
                kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source \
                    else ("Secret", source["secretRef"])
                for key, value in self._source(kind, ref["name"], bool(ref.get("optional"))).items():
                    env[source.get("prefix", "") + key] = value.decode()
            else:
                raise PodSpecError(f"envFrom source {sorted(source)} is not known to the pod runner")
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = self.rewrite(str(var["value"]))
                continue
            ref = var.get("valueFrom", {})
            if "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                known = {"metadata.name": self.pod_name, "metadata.namespace": self.namespace,
                         "status.podIP": "127.0.0.1", "spec.nodeName": "local"}
                if path not in known:
                    raise PodSpecError(f"env {var['name']}: fieldRef {path} is not known to the pod runner")
                env[var["name"]] = known[path]
            elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind, key_ref = ("Secret", ref["secretKeyRef"]) if "secretKeyRef" in ref \
                    else ("ConfigMap", ref["configMapKeyRef"])
                data = self._source(kind, key_ref["name"], bool(key_ref.get("optional")))
                if key_ref["key"] in data:
                    env[var["name"]] = data[key_ref["key"]].decode()
                elif not key_ref.get("optional"):
                    raise PodSpecError(f"env {var['name']}: {kind} {key_ref['name']} has no key {key_ref['key']!r}")
            else:
                raise PodSpecError(f"env {var['name']}: valueFrom {sorted(ref)} is not known to the pod runner")
        return env

    # ---- process -----------------------------------------------------------------------------
    def command(self, env: Mapping[str, str] | None = None) -> list[str]:
        container = self._container()
        command = container.get("command") or self.entrypoint
        env = env if env is not None else self._env()
        args = [self.rewrite(expand(str(a), env)) for a in container.get("args", [])]
        program = shutil.which(command[0], path=str(Path(sys.executable).parent)) or shutil.which(command[0])
        if program is None:
            raise PodSpecError(f"the image's entrypoint {command[0]!r} is not installed here")
        return [program, *command[1:], *args]

    def start(self, log: Path) -> "LocalPod":
        self._materialize()
        env = self._env()
        env.setdefault("POD_NAME", self.pod_name)
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        # Its own process group, as a container is its own PID namespace: stop() can end every
        # process the pod started (a worker pool's children), not only the first.
        self.process = subprocess.Popen(self.command(env), env=env, cwd=self.root, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """What the kubelet and the runtime do: SIGTERM to the container's first process, SIGKILL
        after the grace period, and once it is gone, SIGKILL to whatever it left behind (the end of
        a PID namespace kills all of it). Processes a pod leaves would otherwise outlive the test and
        take the CPU of the next one."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group keeps the first process's id
        except ProcessLookupError:
            pass  # nothing was left
        self._log.close()
        return self.process.returncode


def pods_for(objects: Objects, names: Iterable[str], **kwargs: Any) -> list[LocalPod]:
    """One LocalPod per named Deployment (its first replica)."""
    pods = []
    for name in names:
        deployment = objects.find("Deployment", name)
        if deployment is None:
            raise PodSpecError(f"no Deployment {name!r} in the rendered objects")
        pods.append(LocalPod(deployment, objects, pod_name=f"{name}-0", **kwargs))
    return pods
