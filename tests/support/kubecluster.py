"""A real one-node Kubernetes v1.20.2 for the tests and benchmarks, from cached binaries.

``scripts/k8s/build.sh`` builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
and kubectl from Debian's own source package into :data:`CACHE` (with the pause image as a
tarball); etcd is Debian's ``etcd-server``. :func:`start` runs, on loopback and on ports the OS
chose: etcd, the API server (openssl-made certificates, RBAC on, an admin kubeconfig), the
controller manager, the scheduler, and a kubelet (dockershim) on a Docker engine of its own, so
the machine's default engine is never restarted or reconfigured. That engine has its own socket,
data and exec roots, pid file and bridge (pods get addresses on it, reachable from the host), and
the runtime ``scripts/k8s/runc-nonegoom`` (this kind of VM's root lacks CAP_SYS_RESOURCE, which
the kubelet's negative ``oom_score_adj`` needs). The images the pods run are copied into it from
the default engine (``docker save | docker load``). Data volumes are static ``hostPath``
PersistentVolumes. :func:`stop` ends exactly the processes :func:`start` started, by pid. The run
folder records them as they start, and each :func:`start` first stops the leftovers of a killed
session's cluster by those records (tests/support/kuberun.py).

Set ``ORGPLANE_TEST_KUBECONFIG`` to use a cluster of your own instead (:func:`external`).

Adapted from the machine's checked recipes (kubernetes/start.sh, controllers.sh, kubelet.sh,
dockerd-for-kubelet.sh); Kubernetes is Apache-2.0 (The Kubernetes Authors).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import random
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from provisioners.processes import free_port
from tests.support import kuberun
from tests.support.services import REPO
from tests.support.wait import wait_until

VERSION = "1.20.2"
CACHE = Path(os.environ.get("ORGPLANE_K8S_CACHE", f"/var/cache/orgplane/k8s-{VERSION}"))
PAUSE_IMAGE = "orgplane-k8s/pause:3.2"
NODE = "orgplane-test-node"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
#: Static hostPath volumes made at start (each claim binds one for good: reclaim Retain).
VOLUMES = 60
#: Users the API server knows by static token (a throwaway test cluster's): ``nobody``, whom no
#: role grants anything, and ``traefik``, whom a test grants read access for Traefik's providers.
NOBODY_TOKEN = "nobody-token"
TRAEFIK_TOKEN = "traefik-token"
START_TIMEOUT = 120.0


def missing() -> str | None:
    """What this machine lacks to start a cluster, or None."""
    absent = [name for name in BINARIES if not (CACHE / "bin" / name).exists()]
    if absent or not (CACHE / "pause.tar").exists():
        return f"Kubernetes {VERSION} binaries in {CACHE} (run scripts/k8s/build.sh)"
    for tool in ("etcd", "dockerd", "docker", "ip", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} (etcd: Debian's etcd-server; dockerd: docker.io)"
    return None


def kubectl_binary() -> str:
    return str(CACHE / "bin" / "kubectl")


@dataclass
class Cluster:
    """A running cluster: how to reach it, and (when started here) what to stop."""

    kubeconfig: Path
    server: str
    #: The kubelet engine's Docker socket URL (None for an external cluster).
    engine: str | None = None
    run_dir: Path | None = None
    bridge: str | None = None
    #: The host's address on that bridge: pods reach the host there (None for an external one).
    gateway: str | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: What to stop, by name (kubelet, dockerd, ...): pid.
    pids: dict[str, int] = field(default_factory=dict)
    #: Seconds from start to a Ready node with the images loaded (0 for an external cluster).
    started_in: float = 0.0
    traefik_crds: bool = False

    def state(self) -> dict[str, Any]:
        """Where the cluster is and what to stop (:func:`shared`, :func:`stop_shared`)."""
        return {
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "engine": self.engine,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "bridge": self.bridge,
            "gateway": self.gateway,
            "pids": self.pids,
            "started_in": self.started_in,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Cluster:
        run_dir = state["run_dir"]
        return cls(
            kubeconfig=Path(state["kubeconfig"]),
            server=state["server"],
            engine=state["engine"],
            run_dir=Path(run_dir) if run_dir else None,
            bridge=state["bridge"],
            gateway=state.get("gateway"),
            pids={str(k): int(v) for k, v in state["pids"].items()},
            started_in=float(state["started_in"]),
        )

    @property
    def ca_file(self) -> str | None:
        """The API server's CA certificate file (None when the kubeconfig embeds it)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        found = config["clusters"][0]["cluster"].get("certificate-authority")
        return str(found) if found else None

    def kubectl(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        """Run kubectl (the cached 1.20.2 one) against the cluster as its admin."""
        result = subprocess.run(
            [kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.decode()[-2000:]}")
        return result.stdout.decode()

    def namespace(self, name: str) -> str:
        """Make namespace ``name`` unless it exists, and wait for its default service account
        (pods cannot be created before the controller made it); answers ``name``."""
        # A server-side apply: tests on several workers may ask for it at the same time.
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
        wait_until(
            lambda: self.kubectl("-n", name, "get", "serviceaccount", "default", check=False),
            what=f"the default service account of {name}",
            timeout=START_TIMEOUT,
            interval=0.2,
        )
        return name

    def apply(
        self, docs: list[dict[str, Any]], *, namespace: str | None = None, dry_run: bool = False
    ) -> str:
        """Server-side apply ``docs`` as the admin (field manager ``orgplane-test``); with
        ``dry_run`` the server validates and admits them but stores nothing."""
        where = ["-n", namespace] if namespace else []
        where += ["--dry-run=server"] if dry_run else []
        return self.kubectl(
            *where, "apply", "--server-side", "--field-manager=orgplane-test", "-f", "-",
            stdin=yaml.safe_dump_all(docs).encode(),
        )  # fmt: skip

    def install_traefik_crds(self) -> None:
        """Traefik's CRDs (tests/support/traefik.kubernetes_crds), served before it returns
        (once per cluster object)."""
        from tests.support.traefik import kubernetes_crds

        if self.traefik_crds:
            return

        # The vendored CRDs carry CEL rules (x-kubernetes-validations), which servers before
        # 1.25 do not know (1.20's kubectl refuses the field, its server would drop it):
        # left out here, so what the test server checks is the rest of the schema.
        crds = [_without_cel(crd) for crd in kubernetes_crds()]
        self.apply(crds)
        names = [f"crd/{crd['metadata']['name']}" for crd in crds]
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
        self.traefik_crds = True

    def load(self, *images: str) -> None:
        """Copy those of ``images`` the kubelet's engine lacks into it (started clusters only:
        an external one pulls its own)."""
        if self.engine is None:
            return
        engine = self.engine
        absent = tuple(
            image
            for image in images
            if subprocess.run(
                ["docker", "-H", engine, "image", "inspect", image], capture_output=True
            ).returncode
        )
        copy_images(engine, absent)

    def api_client(self, *, impersonate: str | None = None, token: str | None = None) -> Any:
        """A ``kubernetes`` client as the admin, as ``impersonate`` (``system:serviceaccount:
        ns:name``), or with a bearer ``token`` (then no client certificate)."""
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        configuration = k8s.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        if token is not None:
            configuration.cert_file = configuration.key_file = None
            configuration.api_key = {"authorization": f"Bearer {token}"}
        api = k8s.ApiClient(configuration)
        if impersonate is not None:
            api.set_default_header("Impersonate-User", impersonate)
        return api


def _without_cel(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_cel(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
    if isinstance(schema, list):
        return [_without_cel(item) for item in schema]
    return schema


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(certs: Path, gateway: str) -> None:
    """A CA, the API server's serving certificate (also for the host's address on the bridge,
    where pods reach it through a relay), the admin's client certificate (group
    system:masters) and the service-account signing key pair."""
    certs.mkdir(parents=True)
    days = "2"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", days, "-subj", "/CN=orgplane-test-ca", cwd=certs)  # fmt: skip
    (certs / "server.ext").write_text(
        f"subjectAltName=IP:127.0.0.1,IP:{gateway},DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (certs / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=admin", "client.ext"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", subject, cwd=certs)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", days, "-extfile", ext,
                 cwd=certs)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=certs)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=certs)


def _kubeconfig(path: Path, server: str, certs: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "orgplane-test",
                "cluster": {"server": server, "certificate-authority": str(certs / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(certs / "admin.crt"),
                    "client-key": str(certs / "admin.key"),
                },
            }
        ],
        "contexts": [{"name": "admin", "context": {"cluster": "orgplane-test", "user": "admin"}}],
        "current-context": "admin",
    }
    path.write_text(yaml.safe_dump(config))


def _subnet() -> ipaddress.IPv4Network:
    """A /24 for the kubelet engine's bridge that no route of this machine uses."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True)
    used = [
        ipaddress.ip_network(word, strict=False)
        for line in routes.stdout.splitlines()
        for word in line.split()[:1]
        if "/" in word
    ]
    for _ in range(200):
        candidate = ipaddress.ip_network(
            f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
        )
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free /24 for the kubelet engine's bridge")


class _Starter:
    """The steps of :func:`start`, remembering what was started (for :func:`stop`)."""

    def __init__(self, run: Path) -> None:
        self.run = run
        #: The kubelet engine's bridge network; the host is its first address (the gateway).
        self.net = _subnet()
        self.cluster: Cluster | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.bridge: str | None = None

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.run / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.processes.append(proc)
        kuberun.record(self.run, _names(self.processes), self.bridge)
        return proc

    def alive(self, proc: subprocess.Popen[bytes], name: str) -> None:
        if proc.poll() is not None:
            tail = (self.run / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def engine(self) -> str:
        """The kubelet's own dockerd on a bridge of its own; answers its socket URL."""
        net = self.net
        self.bridge = f"opk{os.urandom(3).hex()}"
        gateway = f"{net.network_address + 1}/{net.prefixlen}"
        for argv in (
            ["ip", "link", "add", "name", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", gateway, "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
        kuberun.record(self.run, _names(self.processes), self.bridge)
        root = self.run / "docker"
        (root / "data").mkdir(parents=True)
        (root / "daemon.json").write_text("{}")
        sock = root / "docker.sock"
        proc = self.spawn(
            "dockerd",
            [
                "dockerd",
                f"--host=unix://{sock}",
                f"--config-file={root / 'daemon.json'}",
                f"--data-root={root / 'data'}",
                f"--exec-root={root / 'exec'}",
                f"--pidfile={root / 'docker.pid'}",
                f"--bridge={self.bridge}",
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver=overlay2",
                f"--add-runtime=nonegoom={REPO / 'scripts' / 'k8s' / 'runc-nonegoom'}",
                "--default-runtime=nonegoom",
            ],
        )
        url = f"unix://{sock}"

        def answers() -> bool:
            self.alive(proc, "dockerd")
            done = subprocess.run(
                ["docker", "-H", url, "version"], capture_output=True, check=False
            )
            return done.returncode == 0

        wait_until(answers, what="the kubelet's Docker engine", timeout=START_TIMEOUT, interval=0.2)
        return url

    def etcd(self) -> str:
        client, peer = free_port(), free_port()
        proc = self.spawn(
            "etcd",
            [
                "etcd",
                "--name=test",
                f"--data-dir={self.run / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=test=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        url = f"http://127.0.0.1:{client}"

        def healthy() -> bool:
            self.alive(proc, "etcd")
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, what="etcd", timeout=START_TIMEOUT, interval=0.1)
        return url

    def apiserver(self, etcd: str, certs: Path) -> str:
        port = free_port()
        (self.run / "tokens.csv").write_text(
            f"{NOBODY_TOKEN},nobody,1001,\n{TRAEFIK_TOKEN},traefik,1002,\n"
        )
        proc = self.spawn(
            "kube-apiserver",
            [
                str(CACHE / "bin" / "kube-apiserver"),
                f"--etcd-servers={etcd}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={certs / 'apiserver.crt'}",
                f"--tls-private-key-file={certs / 'apiserver.key'}",
                f"--client-ca-file={certs / 'ca.crt'}",
                f"--token-auth-file={self.run / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={certs / 'sa.pub'}",
                f"--service-account-signing-key-file={certs / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--v=0",
            ],
        )
        server = f"https://127.0.0.1:{port}"
        tls = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        tls.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))

        def ready() -> bool:
            self.alive(proc, "kube-apiserver")
            try:
                answer = httpx.get(f"{server}/readyz", verify=tls, timeout=2)
            except httpx.HTTPError:
                return False
            return answer.status_code == 200

        wait_until(ready, what="kube-apiserver /readyz", timeout=START_TIMEOUT, interval=0.2)
        return server

    def controllers(self, kubeconfig: Path, certs: Path) -> None:
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--port=0",
            "--leader-elect=false",
        ]
        self.spawn(
            "kube-controller-manager",
            [
                str(CACHE / "bin" / "kube-controller-manager"),
                *common,
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={certs / 'sa.key'}",
                f"--root-ca-file={certs / 'ca.crt'}",
                f"--cluster-signing-cert-file={certs / 'ca.crt'}",
                f"--cluster-signing-key-file={certs / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service,-route",
            ],
        )
        self.spawn(
            "kube-scheduler",
            [str(CACHE / "bin" / "kube-scheduler"), *common, f"--secure-port={free_port()}"],
        )

    def kubelet(self, kubeconfig: Path, engine: str) -> None:
        root = self.run / "kubelet"
        root.mkdir()
        self.spawn(
            "kubelet",
            [
                str(CACHE / "bin" / "kubelet"),
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE}",
                "--node-ip=127.0.0.1",
                "--container-runtime=docker",
                f"--docker-endpoint={engine}",
                f"--experimental-dockershim-root-directory={self.run / 'dockershim'}",
                f"--pod-infra-container-image={PAUSE_IMAGE}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                "--address=127.0.0.1",
                f"--port={free_port()}",
                "--read-only-port=0",
                "--healthz-bind-address=127.0.0.1",
                f"--healthz-port={free_port()}",
                "--fail-swap-on=false",
                "--cgroup-driver=cgroupfs",
                f"--cgroup-root={kuberun.cgroup_root(self.run)}",
                "--image-gc-high-threshold=100",
                "--image-gc-low-threshold=99",
                "--eviction-hard=memory.available<100Mi,nodefs.available<1%,imagefs.available<1%",
                "--max-pods=60",
                "--register-node=true",
            ],
        )

    def load_images(self, engine: str, images: tuple[str, ...]) -> None:
        """The pause image from the cache, then ``images`` from the default engine."""
        subprocess.run(
            ["docker", "-H", engine, "load", "-q", "-i", str(CACHE / "pause.tar")],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        copy_images(engine, images)

    def volumes(self, cluster: Cluster) -> None:
        docs = []
        for index in range(VOLUMES):
            path = self.run / "pvs" / f"pv-{index}"
            path.mkdir(parents=True)
            path.chmod(0o777)  # the pods run as a non-root user; hostPath ignores fsGroup
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"test-pv-{index}", "labels": {"orgplane.test": "1"}},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": str(path), "type": "Directory"},
                    },
                }
            )
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs).encode())


def copy_images(engine: str, images: tuple[str, ...]) -> None:
    """Copy ``images`` from the default engine into the kubelet's (``docker save | load``)."""
    if not images:
        return
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    load = subprocess.run(
        ["docker", "-H", engine, "load", "-q"],
        stdin=save.stdout, capture_output=True, check=False, timeout=300,
    )  # fmt: skip
    assert save.stdout is not None
    save.stdout.close()
    if save.wait(timeout=60) != 0 or load.returncode != 0:
        raise RuntimeError(f"copying {images} to the kubelet engine: {load.stderr!r}")


def _node_ready(cluster: Cluster) -> bool:
    out = cluster.kubectl(
        "get", "node", NODE, "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}", check=False,
    )  # fmt: skip
    return out.strip() == "True"


def start(images: tuple[str, ...] = ()) -> Cluster:
    """Start a one-node cluster (see the module docstring); ``images`` are copied into the
    kubelet's engine. On failure, whatever was started is stopped again."""
    began = time.monotonic()
    kuberun.stop_leftovers()  # a killed session's cluster would keep this one's pods from running
    run = Path(tempfile.mkdtemp(prefix=kuberun.PREFIX, dir="/tmp"))  # short: sockets live under it
    kuberun.write_owner(run)
    starter = _Starter(run)
    try:
        certs = run / "certs"
        engine_url: list[str] = []
        errors: list[BaseException] = []

        def engine_and_images() -> None:
            try:
                engine_url.append(starter.engine())
                starter.load_images(engine_url[0], images)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        side = threading.Thread(target=engine_and_images, name="kubelet-engine")
        side.start()
        _certificates(certs, str(starter.net.network_address + 1))
        etcd = starter.etcd()
        server = starter.apiserver(etcd, certs)
        kubeconfig = run / "admin.kubeconfig"
        _kubeconfig(kubeconfig, server, certs)
        cluster = Cluster(kubeconfig=kubeconfig, server=server, run_dir=run)
        starter.cluster = cluster
        starter.controllers(kubeconfig, certs)
        starter.volumes(cluster)
        side.join()
        if errors:
            raise errors[0]
        cluster.engine = engine_url[0]
        starter.kubelet(kubeconfig, cluster.engine)
        wait_until(
            lambda: _node_ready(cluster), what="node Ready", timeout=START_TIMEOUT, interval=0.3
        )
        cluster.namespace("default")
    except BaseException:
        names, own = _names(starter.processes), _own(starter.processes)
        kuberun.teardown(run, names, starter.bridge, None, own)
        raise
    cluster.processes = starter.processes
    cluster.pids = _names(starter.processes)
    cluster.bridge = starter.bridge
    cluster.gateway = str(starter.net.network_address + 1)
    cluster.started_in = time.monotonic() - began
    return cluster


def external(kubeconfig: str) -> Cluster:
    """A cluster of the user's own (``ORGPLANE_TEST_KUBECONFIG``): used as it is, never stopped."""
    from kubernetes import config as k8s_config

    contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    del contexts
    loaded = yaml.safe_load(Path(kubeconfig).read_text())
    cluster_name = active["context"]["cluster"]
    server = next(c["cluster"]["server"] for c in loaded["clusters"] if c["name"] == cluster_name)
    return Cluster(kubeconfig=Path(kubeconfig), server=server)


def _names(processes: list[subprocess.Popen[bytes]]) -> dict[str, int]:
    return {Path(str(p.args[0])).name: p.pid for p in processes}  # type: ignore[index]


def _own(processes: list[subprocess.Popen[bytes]]) -> dict[int, subprocess.Popen[bytes]]:
    return {proc.pid: proc for proc in processes}


#: Under xdist, the cluster of a session is shared by its workers through these files in the
#: session's base temporary directory: ``--dist loadgroup`` cannot keep the tests on one worker
#: (xdist 3.8 renames ``item._nodeid``, which pytest 9 no longer reads: the groups are ignored).
_STATE = "kube-cluster.json"
_LOCK = "kube-cluster.lock"


def shared(root: Path, images: tuple[str, ...] = ()) -> Cluster:
    """The cluster of the test session whose base temporary directory is ``root``: the first
    worker to ask starts it (under a file lock) and writes where it is; the others read that.
    :func:`stop_shared` stops it when the session ends (the xdist controller)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / _LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = root / _STATE
        if state.exists():
            return Cluster.from_state(json.loads(state.read_text()))
        cluster = start(images)
        state.write_text(json.dumps(cluster.state()))
        return cluster


def stop_shared(root: Path) -> None:
    """Stop the session's shared cluster, if a worker started one (by the pids it wrote)."""
    state = root / _STATE
    if state.exists():
        stop(Cluster.from_state(json.loads(state.read_text())))
        state.unlink()


def stop(cluster: Cluster) -> None:
    """Stop what :func:`start` started (by pid), remove the pods' containers, unmount the
    kubelet's volumes and remove the bridge and the run folder. An external cluster: nothing."""
    if cluster.run_dir is None:
        return
    kuberun.teardown(
        cluster.run_dir, cluster.pids, cluster.bridge, cluster.engine, _own(cluster.processes)
    )
