#!/usr/bin/env python3
"""test_deploy.py: the deploy checks of issue 6, as one ctest entry.

Why: there is no Docker engine and no cluster in CI, so this proves offline
what can be proved offline:
  1. tests/deploy/run: helm lint --strict and helm template (Kubernetes 1.28
     and 1.32) of the scorer chart, the agent library and the example app,
     kubectl kustomize of base and every overlay, every object type-checked
     and asserted (restricted containers, native vs plain sidecar, shared
     socket volume, probes, knobs, bad values rejected).
  2. The Dockerfile: its structure (scratch runtime, non-root, OCI labels,
     version argument = the CMake project version, no RUN in the runtime
     stage), and its build stage executed: every RUN line of the `build`
     stage runs here, in the checkout (WORKDIR /src after COPY . .), with the
     stage's ARGs as environment as `docker build --build-arg` gives them:
     BUILD_DIR is moved into the test's build tree (so it is reused between
     runs and does not touch ./build), ROOTFS into a temporary directory,
     JOBS=2. The staged runtime file system is then run for real: each
     program starts with `--version` and `--help` in a chroot that holds
     only the staged files, as UID/GID 65532, with no shell in it.
  3. The default score file of the chart/base passes `vitals-scorer
     --check-config`.
Output: one line per check and "N passed, M failed"; exit 1 on any failure.
Env: VITALS_SRC (checkout), VITALS_BUILD (ctest's build dir),
VITALS_DEPLOY_BUILD (optional: the Release build dir to use).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.environ.get("VITALS_SRC")
                      or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.abspath(os.environ.get("VITALS_BUILD") or os.path.join(SRC, "build"))
RELEASE_BUILD = os.path.abspath(os.environ.get("VITALS_DEPLOY_BUILD")
                                or os.path.join(BUILD, "deploy-release"))
DEADLINE = time.monotonic() + 570          # ctest kills at 600 s
PROGRAMS = ["vitals-agent", "vitals-scorer", "vitalsctl"]
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
CI_BUILD = "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"

passed = failed = 0


def check(name, fn):
    global passed, failed
    t0 = time.monotonic()
    try:
        note = fn()
        passed += 1
        print(f"ok    {name}{f'  ({note})' if note else ''}  [{time.monotonic() - t0:.1f}s]", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        failed += 1
        msg = str(e).replace("\n", "\n      ")
        print(f"FAIL  {name}\n      {msg}", flush=True)


def remaining():
    return max(10, int(DEADLINE - time.monotonic()))


# ------------------------------------------------------------- Dockerfile
def parse_dockerfile(path):
    """Stages as dicts: from, name, instrs [(INSTR, args)], args {name: default}."""
    lines, buf = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            lines.append((buf + line).strip())
            buf = ""
    stages, global_args = [], {}
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "instrs": [], "args": {}})
            continue
        if not stages:
            if instr == "ARG":
                k, _, v = rest.partition("=")
                global_args[k.strip()] = v.strip()
            continue
        stages[-1]["instrs"].append((instr, rest.strip()))
        if instr == "ARG":
            k, _, v = rest.partition("=")
            stages[-1]["args"][k.strip()] = v.strip().strip('"')
    return stages


DOCKERFILE = os.path.join(SRC, "Dockerfile")
stages = []


def cmake_project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*vitals\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


def check_structure():
    global stages
    stages = parse_dockerfile(DOCKERFILE)
    names = [s["name"] for s in stages]
    assert names[:1] == ["build"] and len(stages) == 2, f"expected stages build, runtime; got {names}"
    build, rt = stages
    assert build["from"].startswith("debian:bookworm"), f"build stage FROM {build['from']}"
    assert rt["from"] == "scratch", f"runtime stage FROM {rt['from']} (want scratch: no shell)"
    kinds = [i for i, _ in rt["instrs"]]
    assert "RUN" not in kinds and "SHELL" not in kinds, "the runtime stage must not RUN (it has no shell)"
    users = [a for i, a in rt["instrs"] if i == "USER"]
    assert users and users[-1] == "65532:65532", f"runtime USER {users}"
    label = " ".join(a for i, a in rt["instrs"] if i == "LABEL")
    for k in ["title", "description", "version", "revision", "created", "source", "licenses"]:
        assert f"org.opencontainers.image.{k}=" in label, f"OCI label org.opencontainers.image.{k} missing"
    assert "${VERSION}" in label, "image version label does not use the VERSION build argument"
    want = cmake_project_version()
    assert rt["args"].get("VERSION") == want, f"ARG VERSION={rt['args'].get('VERSION')} but CMake says {want}"
    cmd = [a for i, a in rt["instrs"] if i == "CMD"]
    assert cmd and json.loads(cmd[-1]), "CMD must be exec form (no shell)"
    assert not [a for i, a in rt["instrs"] if i == "ENTRYPOINT"], "ENTRYPOINT set: the command must choose the program"
    rootfs = build["args"].get("ROOTFS")
    copies = [a for i, a in rt["instrs"] if i == "COPY"]
    assert copies and all(re.search(rf"--from=build\b.*\s{re.escape(rootfs)}/", c) for c in copies), \
        f"runtime COPY lines must take from the build stage's ROOTFS ({rootfs}): {copies}"
    runs = [a for i, a in build["instrs"] if i == "RUN"]
    assert runs and runs[0] == "scripts/setup", f"first RUN of the build stage is {runs[:1]}, not scripts/setup"
    # With the ARG defaults, the build RUN must be exactly CI's build command.
    defaults = {k: v for k, v in build["args"].items()}
    expanded = [re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), ""), r)
                for r in runs if r.startswith("cmake")]
    assert expanded, "no cmake RUN line in the build stage"
    got = " ".join(expanded[0].replace('"', "").split())
    assert got == CI_BUILD, f"build RUN expands to `{got}`, CI runs `{CI_BUILD}`"
    return f"stages {names}, build RUN = `{got}`"


def check_dockerignore():
    pats = [p.strip() for p in open(os.path.join(SRC, ".dockerignore")) if p.strip() and not p.startswith("#")]
    import fnmatch

    def ignored(rel):
        return any(fnmatch.fnmatch(rel, p.rstrip("/")) or fnmatch.fnmatch(rel.split("/")[0], p.rstrip("/"))
                   for p in pats)
    for must in ["build", "build-test", ".git", "tests/deploy/.tools"]:
        assert ignored(must), f".dockerignore does not exclude {must}"
    for need in ["CMakeLists.txt", "lib", "proto", "agent", "scorer", "tools", "scripts/setup",
                 "deploy/docker/stage-rootfs", "tests/unit", "bench"]:
        assert not ignored(need), f".dockerignore excludes {need}, which the build stage needs"
    return f"{len(pats)} patterns"


ROOTFS_TMP = tempfile.mkdtemp(prefix="vitals-rootfs-")


def check_build_stage():
    build = stages[0]
    env = dict(os.environ)
    env.update(build["args"])
    env.update({"BUILD_DIR": RELEASE_BUILD, "ROOTFS": os.path.join(ROOTFS_TMP, "rootfs"), "JOBS": "2"})
    notes = []
    for instr, arg in build["instrs"]:
        if instr in ("ARG", "WORKDIR"):
            continue
        if instr == "COPY":
            assert arg == ". .", f"unexpected COPY in build stage: {arg}"
            continue                       # the checkout is the context
        assert instr == "RUN", f"build stage instruction {instr} not reproduced by this test"
        t0 = time.monotonic()
        print(f"      RUN {arg}   (BUILD_DIR={env['BUILD_DIR']} ROOTFS={env['ROOTFS']} JOBS=2)", flush=True)
        p = subprocess.run(["/bin/sh", "-c", arg], cwd=SRC, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=remaining())
        if p.returncode != 0:
            tail = "\n".join(p.stdout.strip().splitlines()[-40:])
            raise AssertionError(f"RUN {arg}\nexit {p.returncode}:\n{tail}")
        notes.append(f"{arg.split()[0]} {time.monotonic() - t0:.0f}s")
    return ", ".join(notes)


def merged_rootfs():
    r = os.path.join(ROOTFS_TMP, "rootfs")
    m = os.path.join(ROOTFS_TMP, "merged")
    if not os.path.isdir(m):
        shutil.copytree(os.path.join(r, "root"), m, symlinks=True)
        shutil.copytree(os.path.join(r, "data"), m, symlinks=True, dirs_exist_ok=True)
        for d in ["run/vitals", "var/lib/vitals/spool", "var/lib/vitals/data", "tmp"]:
            os.chown(os.path.join(m, d), 65532, 65532) if os.geteuid() == 0 else None
    return m


def check_rootfs_contents():
    m = merged_rootfs()
    for p in PROGRAMS:
        f = os.path.join(m, "usr/local/bin", p)
        assert os.path.isfile(f) and open(f, "rb").read(4) == b"\x7fELF", f"{p} missing or not ELF"
    for sh in ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"]:
        assert not os.path.lexists(os.path.join(m, sh)), f"runtime has a shell: /{sh}"
    assert "65532" in open(os.path.join(m, "etc/passwd")).read(), "no passwd entry for 65532"
    assert os.path.isfile(os.path.join(m, "etc/ssl/certs/ca-certificates.crt")), "no CA bundle"
    files = sum(len(fs) for _, _, fs in os.walk(m))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(m) for f in fs)
    return f"{files} files, {size / 1e6:.1f} MB, no shell"


def check_programs_run():
    m = merged_rootfs()
    out = []
    for p in PROGRAMS:
        for flag in ["--version", "--help"]:
            if os.geteuid() == 0:
                cmd = [CHROOT, "--userspec=65532:65532", m, f"/usr/local/bin/{p}", flag]
            else:                               # no chroot: at least the staged loader and libs
                ld = [f for f in os.listdir(os.path.join(m, "lib64"))][0]
                libdir = [d for d in os.listdir(os.path.join(m, "usr/lib")) if d.endswith("-linux-gnu")][0]
                cmd = [os.path.join(m, "lib64", ld), "--inhibit-cache", "--library-path",
                       os.path.join(m, "usr/lib", libdir), os.path.join(m, "usr/local/bin", p), flag]
            r = subprocess.run(cmd, env={"PATH": "/usr/local/bin"}, text=True, capture_output=True, timeout=20)
            assert r.returncode == 0, f"{' '.join(cmd[-2:])} exited {r.returncode}: {(r.stderr or r.stdout)[-400:]}"
            assert (r.stdout + r.stderr).strip(), f"{p} {flag} printed nothing"
            if flag == "--version":
                out.append(f"{p}: {(r.stdout or r.stderr).strip().splitlines()[0]}")
    how = "chroot as 65532:65532" if os.geteuid() == 0 else "staged ld.so, not root: no chroot"
    return f"{how}; " + "; ".join(out)


def free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def check_daemons_serve():
    """Both daemons start from the staged file system alone (chroot, 65532,
    no shell), bind their sockets and data dirs, and answer /healthz."""
    import urllib.request
    assert os.geteuid() == 0, "not root: cannot chroot into the staged runtime file system"
    m = merged_rootfs()
    os.makedirs(os.path.join(m, "etc/vitals"), exist_ok=True)
    shutil.copy(os.path.join(SRC, "deploy/kustomize/base/scores.json"), os.path.join(m, "etc/vitals/scores.json"))
    aport, hport, gport = free_port(), free_port(), free_port()
    runs = {
        "vitals-agent": ({"VITALS_ADMIN_ADDR": f"127.0.0.1:{aport}", "VITALS_SERVICE": "deploy-test",
                          "VITALS_AGENT_ID": "deploy-test"}, aport),
        "vitals-scorer": ({"VITALS_HTTP_ADDR": f"127.0.0.1:{hport}", "VITALS_GRPC_ADDR": f"127.0.0.1:{gport}",
                           "VITALS_SCORES": "/etc/vitals/scores.json", "VITALS_DATA_DIR": "/var/lib/vitals/data"},
                          hport),
    }
    procs, notes = [], []
    try:
        for prog, (env, _) in runs.items():
            log = open(os.path.join(ROOTFS_TMP, f"{prog}.log"), "w")
            procs.append((prog, subprocess.Popen([CHROOT, "--userspec=65532:65532", m, f"/usr/local/bin/{prog}"],
                                                 env={"PATH": "/usr/local/bin", **env},
                                                 stdout=log, stderr=subprocess.STDOUT)))
        for prog, (_, port) in runs.items():
            deadline, body = time.monotonic() + 15, None
            while time.monotonic() < deadline and body is None:
                proc = dict(procs)[prog]
                if proc.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        body = (r.status, r.read().decode(errors="replace").strip()[:40])
                except OSError:
                    time.sleep(0.2)
            log = open(os.path.join(ROOTFS_TMP, f"{prog}.log")).read()[-600:]
            assert body and body[0] == 200, f"{prog}: no 200 from /healthz (exit {dict(procs)[prog].poll()}):\n{log}"
            notes.append(f"{prog} /healthz {body[0]} {body[1]!r}")
        socks = sorted(os.listdir(os.path.join(m, "run/vitals")))
        assert "ingest.sock" in socks, f"agent made no ingest.sock in /run/vitals: {socks}"
        notes.append(f"/run/vitals: {', '.join(socks)}")
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return "; ".join(notes)


def check_scores():
    scorer = os.path.join(RELEASE_BUILD, "bin", "vitals-scorer")
    assert os.access(scorer, os.X_OK), f"{scorer} not built"
    f = os.path.join(SRC, "deploy/kustomize/base/scores.json")
    r = subprocess.run([scorer, "--check-config", f], text=True, capture_output=True, timeout=20)
    assert r.returncode == 0, f"vitals-scorer --check-config {f} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    return (r.stdout.strip().splitlines() or ["ok"])[0]


ENV_SOURCES = {
    "vitals-agent": ["deploy/helm/vitals-agent/templates/_agent.tpl",
                     "deploy/kustomize/components/agent-sidecar/kustomization.yaml",
                     "deploy/kustomize/components/agent-sidecar/sidecar.yaml"],
    "vitals-scorer": ["deploy/helm/vitals/templates/statefulset.yaml",
                      "deploy/kustomize/base/statefulset.yaml"],
}


def check_env_names():
    """Every VITALS_* variable the manifests set is one the program knows."""
    notes = []
    for prog, files in ENV_SOURCES.items():
        exe = os.path.join(RELEASE_BUILD, "bin", prog)
        assert os.access(exe, os.X_OK), f"{exe} not built"
        r = subprocess.run([exe, "--help"], text=True, capture_output=True, timeout=20)
        helptext = r.stdout + r.stderr
        names = set()
        for f in files:
            names |= set(re.findall(r"\b(VITALS_[A-Z0-9_]+)\b", open(os.path.join(SRC, f)).read()))
        unknown = sorted(n for n in names if n not in helptext)
        assert not unknown, f"{prog} --help does not know {unknown} (set in {files})"
        notes.append(f"{prog}: {len(names)} variables")
    return ", ".join(notes)


def main():
    print(f"# deploy checks (tests/deploy/run), src {SRC}", flush=True)

    def deploy_checks():
        p = subprocess.run([os.path.join(SRC, "tests/deploy/run")], cwd=SRC, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=420,
                           env={**os.environ, "VITALS_SRC": SRC})
        for line in p.stdout.splitlines():
            print("      " + line)
        summary = [l for l in p.stdout.splitlines() if re.match(r"^\d+ passed, \d+ failed$", l)]
        assert p.returncode == 0, f"tests/deploy/run exited {p.returncode} ({summary[-1] if summary else 'no summary'})"
        return summary[-1] if summary else None
    check("helm lint/template + kustomize + type checks + assertions", deploy_checks)

    print(f"# Dockerfile (build stage run here; Release build dir {RELEASE_BUILD})", flush=True)
    check("Dockerfile structure: bookworm build stage, scratch runtime, 65532, OCI labels", check_structure)
    check(".dockerignore keeps build trees and caches out, sources in", check_dockerignore)
    if stages:
        check("build stage RUN lines (scripts/setup, cmake Release configure + build, stage-rootfs)", check_build_stage)
        if os.path.isdir(os.path.join(ROOTFS_TMP, "rootfs", "root")):
            check("runtime file system: the three programs, their libraries, no shell", check_rootfs_contents)
            check("each program runs from the runtime file system alone (--version, --help)", check_programs_run)
            check("both daemons serve /healthz from the runtime file system (chroot as 65532)", check_daemons_serve)
            check("default score file passes vitals-scorer --check-config", check_scores)
            check("every VITALS_* variable in the manifests is known to the program (--help)", check_env_names)
        else:
            check("runtime file system staged", lambda: (_ for _ in ()).throw(
                AssertionError("not staged: the build stage failed above")))
    shutil.rmtree(ROOTFS_TMP, ignore_errors=True)
    print(f"\n{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
