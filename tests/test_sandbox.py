"""The grading sandbox (mi_course.grading.sandbox): hostile subjects are contained, the report is honest.

Modes: "root" (throwaway uid + namespaces), "root-no-ns" (throwaway uid, no namespaces), "same-uid"
(the subject keeps the grader's uid: the non-root code path; as root it runs in a user namespace) and
"same-uid-no-ns". The "root" modes need root and are skipped otherwise; "non-root" runs the sandbox
itself as a normal uid under setpriv (root only, to become that uid).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from mi_course.grading import sandbox as sb

IS_ROOT = os.geteuid() == 0
MODES = {
    "root": dict(),
    "root-no-ns": dict(namespaces=False),
    "same-uid": dict(drop_privileges=False),
    "same-uid-no-ns": dict(drop_privileges=False, namespaces=False),
}
NEEDS_ROOT = {"root", "root-no-ns"}
SLACK = 3.0  # seconds past a wall budget, for a loaded 2-core machine
NON_ROOT_UID = 59000 + os.getpid() % 1000  # below the throwaway range, one per test process


def _runnable_by_others(path: str) -> bool:
    real = Path(os.path.realpath(path))
    dirs_ok = all(os.stat(p).st_mode & 0o001 for p in real.parents)
    return dirs_ok and bool(os.stat(real).st_mode & 0o005 == 0o005)


def _subject_python(mode: str) -> str:
    """An interpreter the subject may run: the throwaway uid cannot reach one under /root (pyenv)."""
    if mode not in NEEDS_ROOT or _runnable_by_others(sys.executable):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and _runnable_by_others(candidate):
            return candidate
    pytest.skip("no python that a throwaway uid can run (sys.executable is under a private folder)")


def _mode(mode: str) -> dict:
    if mode in NEEDS_ROOT and not IS_ROOT:
        pytest.skip("a throwaway uid needs a grader that is root")
    return MODES[mode]


def _run(mode: str, code: str, limits: sb.SandboxLimits = sb.SandboxLimits(wall_seconds=20), box=None, **kw):
    """Run python ``code`` as the subject, in a fresh sandbox of ``mode`` or in ``box``."""
    argv = [_subject_python(mode), "-I", "-c", textwrap.dedent(code), *kw.pop("args", [])]
    if box is not None:
        return box.run(argv, **kw)
    return sb.run_sandboxed(argv, limits=limits, **_mode(mode), **kw)


def _skip_without_namespaces(result: sb.SandboxResult, key: str = "network") -> None:
    if not result.applied[key].startswith("applied"):
        pytest.skip(f"the kernel does not allow it here: {result.applied[key]}")


@pytest.fixture
def outside():
    """A root-owned (grader-owned) folder, mode 0755, outside the sandbox."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-outside-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_output_exit_code_stdin_and_env(monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "do-not-leak")
    code = """
        import os, sys
        print("out", sys.stdin.read(), os.environ.get("GRADER_SECRET"), os.environ["X"])
        print(os.environ["HOME"], os.environ["TMPDIR"], os.getcwd())
        sys.stderr.write("err")
        sys.exit(3)
    """
    r = _run("same-uid" if not IS_ROOT else "root", code, env={"X": "given"}, stdin_bytes=b"in")
    assert r.returncode == 3 and not r.timed_out and r.setup_error is None
    first, second = r.stdout.decode().splitlines()
    assert first == "out in None given"
    home, tmp, cwd = second.split()
    assert Path(home).name == "home" and Path(tmp).name == "tmp" and Path(cwd).name == "work"
    assert r.stderr == b"err"
    assert not Path(home).parent.exists()  # the private folder is gone


def test_setup_error_is_reported():
    r = sb.run_sandboxed(["/no/such/program"], limits=sb.SandboxLimits(wall_seconds=10))
    assert r.returncode == 127 and "FileNotFoundError" in r.setup_error


HANG = """
    import signal, time
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.alarm(1)
    print("hanging", flush=True)
    while True:
        time.sleep(0.05)
"""


@pytest.mark.parametrize("mode", ["root", "root-no-ns", "same-uid", "same-uid-no-ns"])
def test_a_hang_that_blocks_signals_is_killed_at_the_wall_budget(mode):
    budget = 1.5
    start = time.monotonic()
    r = _run(mode, HANG, sb.SandboxLimits(wall_seconds=budget))
    elapsed = time.monotonic() - start
    assert r.timed_out and r.returncode == -signal.SIGKILL
    assert r.stdout == b"hanging\n"  # what came before the kill is kept
    assert budget <= r.elapsed <= budget + SLACK and elapsed <= budget + SLACK
    assert r.leftover_processes == 0


def test_a_busy_loop_hits_the_cpu_limit():
    r = _run("root" if IS_ROOT else "same-uid", "while True: pass",
             sb.SandboxLimits(cpu_seconds=1, wall_seconds=30))
    assert not r.timed_out and r.returncode in (-signal.SIGXCPU, -signal.SIGKILL)


@pytest.mark.parametrize("mode", ["root", "same-uid"])
def test_allocating_beyond_the_address_space_fails_inside(mode):
    code = """
        try:
            block = bytearray(3 * 2**30)
            print("allocated")
        except MemoryError:
            print("MemoryError")
    """
    r = _run(mode, code, sb.SandboxLimits(address_space=1 * sb.GiB, wall_seconds=20))
    assert r.returncode == 0 and r.stdout == b"MemoryError\n"


FORK_BOMB = """
    import os, time
    n = 0
    try:
        while n < 500:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
    except OSError as e:
        print("capped", n, flush=True)
"""


@pytest.mark.parametrize("mode", ["root", "root-no-ns", "same-uid"])
def test_a_fork_bomb_is_capped_by_the_process_limit(mode):
    if mode == "same-uid" and IS_ROOT:  # real uid 0 is exempt from RLIMIT_NPROC: the report must say so
        with sb.Sandbox(**MODES[mode]) as box:
            assert box._processes_note().startswith("not applied: the subject keeps real uid 0")
        return  # test_as_a_normal_user runs the bomb as a normal uid
    r = _run(mode, FORK_BOMB, sb.SandboxLimits(processes=16, wall_seconds=20))
    _skip_without_namespaces(r, "processes")  # a normal user without a user namespace shares its count
    words = r.stdout.decode().split()
    assert words[:1] == ["capped"] and int(words[1]) < 16
    assert r.leftover_processes == 0 and not r.timed_out  # the sleeping children were swept


DAEMON = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(0.5)  # keeps stdout and stderr open, then leaves a trace
            open(sys.argv[1], "w").write("the daemon survived")
            os._exit(0)
        os._exit(0)
    time.sleep(0.1)
    print("main done")
"""


@pytest.mark.parametrize("mode", ["root", "root-no-ns", "same-uid", "same-uid-no-ns"])
def test_a_double_forked_setsid_daemon_is_gone_after_the_run(mode):
    with sb.Sandbox(sb.SandboxLimits(wall_seconds=20), **_mode(mode)) as box:
        trace = box.exchange / "trace.txt"
        r = _run(mode, DAEMON, box=box, args=[str(trace)])
        assert r.returncode == 0 and r.stdout == b"main done\n" and not r.timed_out
        assert r.elapsed < 0.5 + SLACK
        time.sleep(1.2)
        assert not trace.exists()
        if box.uid is not None:
            assert r.leftover_processes == 0 and sb._pids_of_uid(box.uid) == []


@pytest.mark.parametrize("mode", ["root", "root-no-ns", "same-uid"])
def test_writing_outside_the_private_folder_fails(mode, outside):
    stray = Path(tempfile.gettempdir()) / f"sandbox-stray-{os.getpid()}-{mode}"
    code = """
        import sys
        for target in sys.argv[1:]:
            try:
                open(target, "w").write("x")
                print("wrote")
            except OSError as e:
                print(type(e).__name__)
    """
    try:
        r = _run(mode, code, args=[str(outside / "f.txt"), str(stray)])
        into_outside, into_tmp = r.stdout.decode().split()
        if mode == "same-uid":  # the grader's own folder: only a read-only mount protects it
            _skip_without_namespaces(r, "filesystem")
        assert into_outside in ("PermissionError", "OSError") and not (outside / "f.txt").exists()
        if r.applied["filesystem"].startswith("applied"):
            assert into_tmp == "OSError" and not stray.exists()  # read-only file system: even /tmp
        else:
            assert mode == "root-no-ns" and "world-writable" in r.applied["filesystem"]
    finally:
        stray.unlink(missing_ok=True)


@pytest.mark.parametrize("mode", ["root", "same-uid", "root-no-ns"])
def test_network_connections_fail_where_the_namespace_applies(mode):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        code = """
            import socket, sys
            try:
                socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
                print("connected")
            except OSError as e:
                print("blocked", type(e).__name__)
        """
        r = _run(mode, code, args=[str(server.getsockname()[1])])
    if mode == "root-no-ns":  # the control: the test's listener is reachable without the namespace
        assert r.stdout == b"connected\n" and r.applied["network"].startswith("not applied")
        return
    _skip_without_namespaces(r)
    assert r.stdout.decode().startswith("blocked")


def test_the_report_names_each_protection():
    r = _run("root" if IS_ROOT else "same-uid", "pass")
    names = {"user", "network", "ipc", "sweep", "private_folder", "env", "address_space", "cpu_seconds", "processes",
             "file_size", "core_dumps", "wall", "output", "readable", "filesystem", "hidden"}
    assert names <= set(r.applied)
    for key, note in r.applied.items():
        assert note.split(":")[0] in ("applied", "partly", "not applied"), (key, note)
    if IS_ROOT:
        assert r.applied["user"].startswith("applied: throwaway uid")
    nons = _run("same-uid-no-ns", "pass")
    assert nons.not_applied()["network"] == "not applied: namespaces=False"
    assert "grader's uid" in nons.applied["filesystem"] and "grader's uid" in nons.applied["user"]


def test_output_is_capped():
    code = "import sys; sys.stdout.write('x' * 5_000_000); sys.stderr.write('e' * 10)"
    r = _run("root" if IS_ROOT else "same-uid", code, sb.SandboxLimits(output_bytes=65536, wall_seconds=20))
    assert r.returncode == 0 and len(r.stdout) == 65536 and r.stdout_truncated
    assert r.stderr == b"e" * 10 and not r.stderr_truncated


def test_files_go_in_and_come_out_through_exchange_and_links_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("grader's secret")
    code = """
        import json, os
        data = json.load(open("../exchange/in.json"))
        json.dump({"doubled": data["x"] * 2}, open("../exchange/out.json", "w"))
        os.symlink(os.environ["SECRET"], "../exchange/link.json")
    """
    r = _run("root" if IS_ROOT else "same-uid", code, inputs={"in.json": b'{"x": 21}'},
             outputs=["out.json", "link.json", "missing.json"], env={"SECRET": str(secret)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.outputs["out.json"]) == {"doubled": 42}
    assert set(r.outputs) == {"out.json"}  # the link and the missing file are left out
    with pytest.raises(ValueError):
        sb._plain_name("../etc/passwd")


@pytest.mark.parametrize("mode", ["root", "same-uid"])
def test_hidden_folders_look_empty(mode, outside):
    hidden = outside / "other_students"
    hidden.mkdir(mode=0o755)
    (hidden / "alice.py").write_text("answer = 42")
    code = """
        import os, sys
        print(os.listdir(sys.argv[1]))
    """
    r = _run(mode, code, hidden=[hidden], readable=[outside], args=[str(hidden)])
    _skip_without_namespaces(r, "hidden")
    assert r.applied["readable"].startswith("applied"), r.applied["readable"]
    assert r.stdout == b"[]\n" and (hidden / "alice.py").exists()


@pytest.mark.skipif(not IS_ROOT or not shutil.which("setpriv"), reason="becoming a normal uid needs root and setpriv")
def test_as_a_normal_user(outside):
    """The sandbox run by a normal uid: what can hold there holds (hang, daemon, network, read-only)."""
    python = _subject_python("root")
    os.chown(outside, NON_ROOT_UID, NON_ROOT_UID)  # the grader's own folder: only the mount protects it
    script = textwrap.dedent("""
        import importlib.util, json, sys, time
        spec = importlib.util.spec_from_file_location("sandbox", sys.argv[1])
        sb = importlib.util.module_from_spec(spec)
        sys.modules["sandbox"] = sb
        spec.loader.exec_module(sb)
        outside, python = sys.argv[2], sys.argv[3]
        hang = sb.run_sandboxed([python, "-I", "-c", sys.argv[4]], limits=sb.SandboxLimits(wall_seconds=1.0))
        code = "open(%r + '/f', 'w')" % outside
        write = sb.run_sandboxed([python, "-I", "-c", code])
        bomb = sb.run_sandboxed([python, "-I", "-c", sys.argv[5]], limits=sb.SandboxLimits(processes=16))
        with sb.Sandbox() as box:
            daemon = box.run([python, "-I", "-c", sys.argv[6], str(box.exchange / "trace")])
            time.sleep(1.2)
            survived = (box.exchange / "trace").exists()
        print(json.dumps({"hang": [hang.timed_out, hang.elapsed], "write": write.stderr.decode()[-200:],
                          "bomb": bomb.stdout.decode(), "daemon": [daemon.stdout.decode(), survived],
                          "applied": write.applied}))
    """)
    env = {"PATH": sb.DEFAULT_PATH, "TMPDIR": "/tmp"}
    done = subprocess.run([shutil.which("setpriv"), f"--reuid={NON_ROOT_UID}", f"--regid={NON_ROOT_UID}",
                           "--clear-groups", "--", python, "-I", "-c", script, sb.__file__, str(outside), python,
                           textwrap.dedent(HANG), textwrap.dedent(FORK_BOMB), textwrap.dedent(DAEMON)],
                          capture_output=True, env=env, cwd="/", timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    applied = report["applied"]
    assert report["hang"][0] and report["hang"][1] <= 1.0 + SLACK
    assert applied["user"].startswith("not applied: the grader is not root")
    assert report["daemon"] == ["main done\n", False]
    assert sb._pids_of_uid(NON_ROOT_UID) == []  # the helper is done: nothing of its uid may be left
    if applied["filesystem"].startswith("applied"):
        assert "Read-only file system" in report["write"] and not (outside / "f").exists()
        assert applied["network"].startswith("applied") and applied["sweep"].startswith("applied")
        assert applied["processes"].startswith("applied")
        words = report["bomb"].split()
        assert words[:1] == ["capped"] and int(words[1]) < 16
    else:  # no unprivileged user namespace: the report must say the tree is writable
        assert "grader's uid" in applied["filesystem"]


ECHO = """
    import os, sys
    print("to stderr", file=sys.stderr, flush=True)
    while line := sys.stdin.readline():
        if line.strip() == "hang":
            while True:
                pass
        sys.stdout.write(line.upper())
        sys.stdout.flush()
"""


@pytest.mark.parametrize("mode", ["same-uid", "same-uid-no-ns"])
def test_start_gives_an_interactive_process(mode):
    """Sandbox.start: talk to the subject through pipes; kill and close take it down; stderr stays readable."""
    with sb.Sandbox(sb.SandboxLimits(wall_seconds=20), **_mode(mode)) as box:
        proc = box.start([_subject_python(mode), "-I", "-c", textwrap.dedent(ECHO)])
        for word in (b"one", b"two"):
            proc.stdin.write(word + b"\n")
            assert proc.stdout.readline() == word.upper() + b"\n"
        proc.stdin.write(b"hang\n")
        time.sleep(0.3)
        assert proc.alive()
        proc.kill()
        code = proc.close()
        assert not proc.alive() and code != 0
        assert "to stderr" in proc.stderr_tail()
        assert proc.setup_error() is None


def test_start_reports_a_setup_error():
    with sb.Sandbox(drop_privileges=False) as box:
        proc = box.start(["/no/such/program"])
        assert proc.close() == 127
        assert "FileNotFoundError" in (proc.setup_error() or "")
