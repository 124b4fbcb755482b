"""Run one untrusted program (a learner's code, graded by a class run) in a throwaway sandbox.

The subject may be hostile: it may hang with SIGALRM blocked and SIGTERM ignored, fork daemons (double
fork, setsid), fill memory, write files, open network connections. ``run_sandboxed`` (or a ``Sandbox``
used as a context manager) runs it so that none of this reaches the grader, and reports in
``SandboxResult.applied`` which protection was applied and which was not, and why.

How, from the outside in:

* ``unshare`` (util-linux) puts the subject in new network, pid and mount namespaces (as root), or in a
  new user namespace plus those (as a normal user, where the kernel allows unprivileged user namespaces).
* Inside, this file itself runs as a small supervisor (``python -I -S sandbox.py --inside SPEC``, standard
  library only): it makes every mount read-only except the private folder, gives a fresh ``/dev/shm``,
  covers ``hidden`` folders with an empty tmpfs, forks the subject, sets its rlimits, drops it to a
  throwaway uid (grader is root) or drops all its capabilities (grader is not root, or
  ``drop_privileges=False``), and execs it. The supervisor is pid 1 of the pid namespace (or a child
  subreaper without namespaces): when the subject's main process ends, it kills every process left.
* The grader enforces the wall budget by SIGKILL of the whole process group (``unshare --kill-child``
  takes the pid namespace with it), reads stdout/stderr with a size cap, and, as root, kills whatever still
  runs as the throwaway uid.

The subject can read what its uid can read (the course tree, the venv): the caller must keep the
instructor's tree not world-writable and anything secret (other students' work, hidden tests) out of
reach, by permissions or by ``hidden``. Without a mount namespace, a subject that runs as the grader's
uid (grader not root) can write whatever the grader can write: run class grading as root or in a container.

``Sandbox.start`` runs a program the caller talks to through pipes instead (a ``SandboxProcess``: the
grading judge's subject server, ``mi_course.grading.judge``); the caller then owns the wall budget.

Files go in and out through ``exchange`` (a folder of the private tree): the caller writes inputs before a
run and reads outputs after it with ``read_output`` (no symlinks, regular files, size cap). Treat them as
data only (JSON, safetensors): nothing here unpickles anything, and neither should the judge.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MiB = 2**20
GiB = 2**30
UID_BASE = 60000  # throwaway uids: UID_BASE .. UID_BASE + UID_COUNT - 1, none of them in /etc/passwd
UID_COUNT = 4000
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
SHM_OPTIONS = "size=256m,mode=1777"  # the fresh /dev/shm: multiprocessing needs one, tmpfs memory needs a cap
STATUS_CAP = 64 * 1024  # bytes of the supervisor's status reply that are read
KILL_GRACE = 2.0  # seconds to drain pipes after the kill or after the supervisor has gone
NAMESPACE_FLAGS = ["--net", "--ipc", "--pid", "--fork", "--kill-child", "--mount-proc"]  # --mount-proc: mount ns too
USER_NS_FLAGS = ["--user", "--map-root-user"]

# mount(2) flags, for the supervisor
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND = 32, 4096
PER_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
                   "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24}
# prctl(2) options, for the supervisor
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 24, 28, 36, 38
SECURE_NOROOT = 0x23  # noroot + its lock, keep_caps off + locked: exec as uid 0 grants no capability


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run. Counts and sizes are per process except ``processes`` (per uid: threads
    count too) and ``wall_seconds`` (the whole run, enforced from outside by SIGKILL). The defaults let
    pytest import torch and TransformerLens on a CPU."""

    address_space: int | None = 4 * GiB  # RLIMIT_AS: MemoryError beyond it; None: none (CUDA maps huge ranges)
    cpu_seconds: int = 60  # RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later
    processes: int = 256  # RLIMIT_NPROC: processes and threads of the subject's uid
    file_size: int = 256 * MiB  # RLIMIT_FSIZE: the largest file the subject can write
    wall_seconds: float = 120.0
    output_bytes: int = 1 * MiB  # stdout and stderr each are cut here; the rest is read and dropped


@dataclass
class SandboxResult:
    """What one run gave. ``returncode`` is negative for a signal, as in ``subprocess``."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    elapsed: float
    applied: dict[str, str]  # protection -> "applied: ...", "partly: ..." or "not applied: why"
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    setup_error: str | None = None  # the subject could not be started (bad cwd, no such program, ...)
    leftover_processes: int = 0  # processes of the throwaway uid that outlived the sweep (should be 0)
    outputs: dict[str, bytes] = field(default_factory=dict)  # run_sandboxed's ``outputs``, read safely

    def not_applied(self) -> dict[str, str]:
        """The protections that were not (fully) applied, with the reason."""
        return {k: v for k, v in self.applied.items() if not v.startswith("applied")}


class Sandbox:
    """A private folder (HOME, TMPDIR, cwd, ``exchange``), a throwaway uid where the grader is root, and
    ``run`` to run programs in them. Close it (or leave the ``with`` block) to remove the folder."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), *, drop_privileges: bool = True,
                 namespaces: bool = True, readable: Sequence[str | Path] = (),
                 hidden: Sequence[str | Path] = (), base: str | Path | None = None) -> None:
        """``drop_privileges=False`` (or a grader that is not root) runs the subject as the grader's uid with
        no capabilities; ``namespaces=False`` skips unshare (rlimits, subreaper sweep and uid only);
        ``readable``: paths the subject must be able to read (checked, reported); ``hidden``: folders the
        subject must not see (covered with an empty tmpfs where a mount namespace applies)."""
        self.limits = limits
        self.readable = [Path(p).resolve() for p in readable]
        self.hidden = [Path(p).resolve() for p in hidden]
        for folder in self.hidden:
            if not folder.is_dir():
                raise ValueError(f"hidden paths must be folders: {folder}")
        self.is_root = os.geteuid() == 0
        self._claim: int | None = None
        self.uid: int | None = None
        self.root: Path | None = None
        if self.is_root and drop_privileges:
            self.uid, self._claim = _claim_uid()
        try:
            self.unshare_flags, self.namespace_note = _namespace_plan(namespaces, user_ns=self.uid is None)
            self.root = Path(tempfile.mkdtemp(prefix="mi-sandbox-", dir=base)).resolve()
            self.root.chmod(0o711)  # root-owned: the subject cannot rename exchange/ away and symlink it
            for name in ("home", "tmp", "work", "exchange"):
                (self.root / name).mkdir(mode=0o700)
        except BaseException:
            self.close()
            raise

    home = property(lambda self: self.root / "home")
    tmp = property(lambda self: self.root / "tmp")
    work = property(lambda self: self.root / "work")
    exchange = property(lambda self: self.root / "exchange")

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what is left of the throwaway uid, remove the private folder, give the uid back."""
        if self.uid is not None:
            _sweep_uid(self.uid)
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)  # fd-based on Linux: a planted symlink is not followed
        if self._claim is not None:
            os.close(self._claim)  # releases the flock on the uid
            self._claim = None

    def write_input(self, name: str, data: bytes) -> Path:
        """Put a data file (JSON, safetensors, ...) into ``exchange`` for the subject to read."""
        path = self.exchange / _plain_name(name)
        path.write_bytes(data)
        return path

    def read_output(self, name: str, max_bytes: int = 64 * MiB) -> bytes:
        """Read a file the subject left in ``exchange``: a regular file with one link, no symlink, no
        bigger than ``max_bytes``, so that a planted link cannot make the grader read its own secrets."""
        folder = os.open(self.exchange, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(_plain_name(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise ValueError(f"exchange/{name} is not a plain file")
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"exchange/{name} is larger than {max_bytes} bytes")
        return data

    def run(self, argv: Sequence[str], *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
            stdin_bytes: bytes | None = None) -> SandboxResult:
        """Run ``argv`` in the sandbox and wait for it, at most ``limits.wall_seconds``. ``env`` is all the
        subject gets (nothing is inherited) plus PATH (if missing), HOME and TMPDIR; ``cwd`` defaults to
        the private ``work`` folder."""
        start = time.monotonic()
        proc, status_r, spec_file = self._launch(
            argv, cwd, env, stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            streams = _collect(proc, stdin_bytes, status_r, start + self.limits.wall_seconds, self.limits.output_bytes)
        except BaseException:  # an interrupted grader leaves no subject running
            _kill_group(proc)
            proc.wait()
            raise
        proc.wait()
        elapsed = time.monotonic() - start
        Path(spec_file).unlink(missing_ok=True)
        leftover = _sweep_uid(self.uid) if self.uid is not None else 0
        status = _parse_status(streams["status"])
        timed_out = streams["timed_out"]
        if timed_out:
            returncode = -signal.SIGKILL
        else:
            returncode = status.get("returncode", proc.returncode)
        return SandboxResult(returncode=returncode, stdout=streams["stdout"], stderr=streams["stderr"],
                             timed_out=timed_out, elapsed=elapsed, applied=self._applied(status.get("setup")),
                             stdout_truncated=streams["stdout_truncated"],
                             stderr_truncated=streams["stderr_truncated"], setup_error=status.get("exec_error"),
                             leftover_processes=leftover)

    def start(self, argv: Sequence[str], *, cwd: str | Path | None = None,
              env: Mapping[str, str] | None = None) -> "SandboxProcess":
        """Start ``argv`` in the sandbox and return at once with pipes to its stdin and stdout (see
        :class:`SandboxProcess`). Same protections as :meth:`Sandbox.run` (namespaces, uid or no
        capabilities, rlimits, the supervisor's sweep), except the wall budget, which is the caller's."""
        stderr_path = self.root / f".stderr-{time.monotonic_ns()}"
        with open(stderr_path, "wb") as stderr:  # the grader's file: the subject only holds the fd
            proc, status_r, spec_file = self._launch(argv, cwd, env, stdin=subprocess.PIPE, stderr=stderr, bufsize=0)
        os.set_blocking(status_r, False)
        return SandboxProcess(proc, status_r, stderr_path, spec_file)

    def _launch(self, argv: Sequence[str], cwd: str | Path | None, env: Mapping[str, str] | None,
                **popen: object) -> tuple[subprocess.Popen, int, str]:
        """Start the supervisor (in the namespaces) that runs ``argv``: (process, status pipe, spec file)."""
        if self.uid is not None:
            _chown_tree(self.root, self.uid)
        spec = {"argv": list(argv), "cwd": str(cwd or self.work), "env": self._subject_env(env),
                "uid": self.uid, "private": str(self.root), "hidden": [str(p) for p in self.hidden],
                "namespaces": self.unshare_flags is not None, "limits": _rlimits(self.limits)}
        status_r, status_w = os.pipe()
        spec["status_fd"] = status_w
        spec_file = _write_spec(self.root, spec)  # a file, not argv: ps would show argv to every user
        command = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--inside", spec_file]
        if self.unshare_flags is not None:
            command = [_tool("unshare"), *self.unshare_flags, "--", *command]
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, pass_fds=(status_w,),
                                    env={"PATH": DEFAULT_PATH}, start_new_session=True, cwd="/", **popen)
        except BaseException:
            os.close(status_r)
            os.unlink(spec_file)
            raise
        finally:
            os.close(status_w)
        return proc, status_r, spec_file

    def _subject_env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """The caller's env, plus a PATH if it has none; HOME and TMPDIR always point into the private folder."""
        result = {"PATH": DEFAULT_PATH, **(env or {})}
        result.update(HOME=str(self.home), TMPDIR=str(self.tmp))
        return result

    def _applied(self, setup: dict[str, str] | None) -> dict[str, str]:
        """The report: every protection, applied or not and why."""
        lim = self.limits
        ns = self.unshare_flags is not None
        applied = {
            "user": self._user_note(),
            "network": "applied: new network namespace (no interfaces up, not even loopback)" if ns
            else f"not applied: {self.namespace_note}",
            "ipc": "applied: new IPC namespace (no shared SysV memory or message queues with the grader)" if ns
            else f"not applied: {self.namespace_note}",
            "sweep": "applied: pid namespace, every process dies with the subject's main process" if ns
            else ("applied: child subreaper, process group kill and a sweep of the throwaway uid"
                  if self.uid is not None else
                  "partly: child subreaper and process group kill; a subject that kills its supervisor "
                  f"(same uid) can leave setsid daemons ({self.namespace_note})"),
            "private_folder": f"applied: HOME, TMPDIR, cwd and exchange in {self.root}, removed on close",
            "env": "applied: only the caller's env plus PATH, HOME, TMPDIR",
            "address_space": f"applied: RLIMIT_AS {lim.address_space} bytes" if lim.address_space is not None
            else "not applied: address_space=None",
            "cpu_seconds": f"applied: RLIMIT_CPU {lim.cpu_seconds} s per process",
            "processes": self._processes_note(),
            "file_size": f"applied: RLIMIT_FSIZE {lim.file_size} bytes per file (not a total)",
            "core_dumps": "applied: RLIMIT_CORE 0",
            "wall": f"applied: {lim.wall_seconds} s, then SIGKILL from outside",
            "output": f"applied: stdout and stderr cut at {lim.output_bytes} bytes each",
            "readable": _check_readable(self.readable, other=self.uid is not None),
        }
        if setup is None:
            setup = {"filesystem": "not applied: the supervisor did not report (it failed to start)"}
        elif not ns:
            setup = {"filesystem": "not applied: no mount namespace; " + (
                "the throwaway uid can still write world-writable places (/tmp, /var/tmp, /dev/shm)"
                if self.uid is not None else "the subject runs as the grader's uid and can write "
                "whatever the grader can write, the course tree included: grade classes as root or in a container")}
            if self.hidden:
                setup["hidden"] = "not applied: no mount namespace; keep them unreadable by permissions"
        applied.update(setup)
        applied.setdefault("hidden", "applied: nothing to hide" if not self.hidden else "not applied")
        return applied

    def _processes_note(self) -> str:
        """RLIMIT_NPROC counts per uid (per user namespace): what it counts here."""
        limit = f"RLIMIT_NPROC {self.limits.processes}"
        if self.uid is not None:
            return f"applied: {limit}, counting the throwaway uid's processes and threads"
        if self.is_root:  # the kernel checks the real uid outside any user namespace
            return "not applied: the subject keeps real uid 0, which RLIMIT_NPROC exempts (drop_privileges=False)"
        if self.unshare_flags is not None:
            return f"applied: {limit}, counting the processes and threads of the sandbox's user namespace"
        return f"partly: {limit}, counting every process of the grader's uid (no user namespace)"

    def _user_note(self) -> str:
        if self.uid is not None:
            return (f"applied: throwaway uid/gid {self.uid}, no supplementary groups, no capabilities, "
                    "no new privileges")
        who = "drop_privileges=False" if self.is_root else f"the grader is not root (uid {os.geteuid()})"
        return (f"not applied: {who}; the subject runs as the grader's uid with no capabilities and no new "
                "privileges")


def run_sandboxed(argv: Sequence[str], *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
                  limits: SandboxLimits = SandboxLimits(), stdin_bytes: bytes | None = None,
                  readable: Sequence[str | Path] = (), hidden: Sequence[str | Path] = (),
                  inputs: Mapping[str, bytes] | None = None, outputs: Sequence[str] = (),
                  drop_privileges: bool = True, namespaces: bool = True,
                  max_output_file: int = 64 * MiB) -> SandboxResult:
    """One run in a fresh sandbox: ``inputs`` are written to ``exchange`` first, ``outputs`` (names in
    ``exchange``) are read back into ``result.outputs`` (missing or unsafe ones are left out)."""
    with Sandbox(limits, drop_privileges=drop_privileges, namespaces=namespaces, readable=readable,
                 hidden=hidden) as box:
        for name, data in (inputs or {}).items():
            box.write_input(name, data)
        result = box.run(argv, cwd=cwd, env=env, stdin_bytes=stdin_bytes)
        for name in outputs:
            try:
                result.outputs[name] = box.read_output(name, max_output_file)
            except (OSError, ValueError):
                pass  # missing, a link, a FIFO or too big: the judge sees it absent
        return result


# ------------------------------------------------------------------------------------------ grader side


def _plain_name(name: str) -> str:
    """A file name in ``exchange``: no folders, no dot files, so that it cannot point elsewhere."""
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"exchange file names are plain names: {name!r}")
    return name


def _tool(name: str) -> str:
    return shutil.which(name, path=DEFAULT_PATH + ":/usr/sbin:/sbin") or f"/usr/bin/{name}"


_PROBES: dict[tuple[str, ...], str] = {}  # unshare flags -> "" (works) or why not


def _probe_unshare(flags: list[str]) -> str:
    """Whether ``unshare FLAGS true`` works here: "" or the reason it does not (cached)."""
    key = tuple(flags)
    if key not in _PROBES:
        if shutil.which("unshare", path=DEFAULT_PATH + ":/usr/sbin:/sbin") is None:
            _PROBES[key] = "unshare (util-linux) is not installed"
        else:
            try:
                done = subprocess.run([_tool("unshare"), *flags, "--", "true"], capture_output=True, timeout=20,
                                      env={"PATH": DEFAULT_PATH})
                _PROBES[key] = "" if done.returncode == 0 else (
                    f"`unshare {' '.join(flags)}` failed: {done.stderr.decode(errors='replace').strip()}")
            except (OSError, subprocess.TimeoutExpired) as e:
                _PROBES[key] = f"`unshare {' '.join(flags)}` failed: {e}"
    return _PROBES[key]


def _namespace_plan(wanted: bool, *, user_ns: bool) -> tuple[list[str] | None, str]:
    """The unshare flags to use (None: no namespaces) and why not where None. A user namespace is
    needed when the subject keeps the grader's uid: as a normal user for the right to unshare at all,
    as root so that the subject's "root" has no capabilities outside its namespaces."""
    if not wanted:
        return None, "namespaces=False"
    flags = (USER_NS_FLAGS if user_ns else []) + NAMESPACE_FLAGS
    why = _probe_unshare(flags)
    return (flags, "") if not why else (None, why)


def _claim_uid() -> tuple[int, int]:
    """A throwaway uid no one else uses now: not in passwd, no process, flock-ed by this grader (the lock
    goes with the grader's process, so a crash frees it)."""
    claims = Path(tempfile.gettempdir()) / "mi-course-sandbox-uids"
    claims.mkdir(mode=0o755, exist_ok=True)
    st = os.lstat(claims)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise RuntimeError(f"{claims} must be a root-owned folder that only root can write")
    start = (os.getpid() * 131 + time.time_ns() // 1000) % UID_COUNT
    for i in range(UID_COUNT):
        uid = UID_BASE + (start + i) % UID_COUNT
        try:
            pwd.getpwuid(uid)
            continue  # a real account
        except KeyError:
            pass
        fd = os.open(claims / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _pids_of_uid(uid):
            os.close(fd)
            continue
        return uid, fd
    raise RuntimeError("no free throwaway uid")


def _write_spec(root: Path, spec: dict) -> str:
    """The supervisor's instructions, readable by the grader's uid only (not by a throwaway uid)."""
    path = root / f".spec-{os.getpid()}-{time.monotonic_ns()}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    return str(path)


def _chown_tree(root: Path, uid: int) -> None:
    """Give the private subfolders (and what the caller put in them) to the throwaway uid; the root
    folder itself stays the grader's."""
    for name in ("home", "tmp", "work", "exchange"):
        top = root / name
        os.lchown(top, uid, uid)
        for folder, dirs, files in os.walk(top):
            for entry in dirs + files:
                path = os.path.join(folder, entry)
                st = os.lstat(path)
                # only what the grader wrote: never a hard link an earlier subject planted to a file outside
                if st.st_uid == os.geteuid() and (stat.S_ISDIR(st.st_mode) or st.st_nlink == 1):
                    os.lchown(path, uid, uid)


def _rlimits(limits: SandboxLimits) -> dict[str, list[int]]:
    """The rlimits the supervisor sets on the subject: (soft, hard) by resource name."""
    space = resource.RLIM_INFINITY if limits.address_space is None else limits.address_space
    return {"RLIMIT_AS": [space, space],
            "RLIMIT_CPU": [limits.cpu_seconds, limits.cpu_seconds + 1],  # SIGXCPU first, SIGKILL a second later
            "RLIMIT_NPROC": [limits.processes] * 2,
            "RLIMIT_FSIZE": [limits.file_size] * 2,
            "RLIMIT_CORE": [0, 0]}


def _collect(proc: subprocess.Popen, stdin_bytes: bytes | None, status_fd: int, deadline: float,
             cap: int) -> dict:
    """Feed stdin, read stdout, stderr and the supervisor's status until they close, keeping at most
    ``cap`` bytes of each output; at ``deadline`` SIGKILL the process group (the wall budget)."""
    sel = selectors.DefaultSelector()
    names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", status_fd: "status"}
    caps = {"stdout": cap, "stderr": cap, "status": STATUS_CAP}
    data = {name: bytearray() for name in caps}
    truncated = {name: False for name in caps}
    for fd in names:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin_bytes or b"")
    stdin_fd = proc.stdin.fileno() if proc.stdin is not None else -1
    if stdin_fd >= 0:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    timed_out, give_up = False, None
    while sel.get_map():
        now = time.monotonic()
        if not timed_out and now >= deadline:
            timed_out, give_up = True, now + KILL_GRACE
            _kill_group(proc)
        if give_up is not None and now >= give_up:
            break  # an escaped process still holds a pipe: stop listening
        limit = (give_up if give_up is not None else deadline) - now
        for key, _ in sel.select(timeout=max(limit, 0.0)):
            fd = key.fd
            if fd == stdin_fd:
                try:
                    pending = pending[os.write(fd, pending[:65536]):]
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    pending = pending[:0]  # the subject does not read its stdin: fine
                if not pending:
                    sel.unregister(fd)
                    proc.stdin.close()
                continue
            chunk = os.read(fd, 65536)
            name = names[fd]
            if not chunk:
                sel.unregister(fd)
                if name == "status" and give_up is None:
                    give_up = time.monotonic() + KILL_GRACE  # the supervisor is gone: the rest is leftovers
                continue
            room = caps[name] - len(data[name])
            data[name] += chunk[:max(room, 0)]
            truncated[name] |= len(chunk) > room
    if proc.poll() is None:
        _kill_group(proc)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and not stream.closed:
            stream.close()
    sel.close()
    os.close(status_fd)
    return {"stdout": bytes(data["stdout"]), "stderr": bytes(data["stderr"]), "status": bytes(data["status"]),
            "stdout_truncated": truncated["stdout"], "stderr_truncated": truncated["stderr"],
            "timed_out": timed_out}


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group; with namespaces unshare's --kill-child takes the pid namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _parse_status(raw: bytes) -> dict:
    """The supervisor's JSON lines, merged (a cut or garbled line is ignored)."""
    status: dict = {}
    for line in raw.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            status.update(item)
    return status


def _pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes with ``uid`` as real, effective, saved or filesystem uid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if str(uid) in fields.get("Uid", "").split():
            pids.append(int(entry))
    return pids


def _sweep_uid(uid: int, seconds: float = 5.0) -> int:
    """SIGKILL every process of the throwaway uid until none is left (a fork can race one pass, not many);
    returns how many were still there at the end."""
    end = time.monotonic() + seconds
    while True:
        pids = _pids_of_uid(uid)
        if not pids or time.monotonic() > end:
            return len(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def readable_by_others(paths: Sequence[str | Path]) -> bool:
    """Whether a throwaway uid could read (and traverse to) every path, none of them writable by others."""
    return _check_readable([Path(p).resolve() for p in paths], other=True).startswith("applied")


def _check_readable(paths: Sequence[Path], *, other: bool) -> str:
    """Whether the subject can read each path (as "others" where it runs as a throwaway uid), and
    whether anyone but the owner can write it or a folder above it (the subject could then change it
    where no mount namespace makes everything read-only)."""
    if not paths:
        return "applied: nothing to check"
    problems = []
    for path in paths:
        for part in [path, *path.parents]:
            try:
                mode = os.stat(part).st_mode
            except OSError as e:
                problems.append(f"{part}: {e.strerror}")
                break
            if mode & 0o002 and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
                problems.append(f"{part} is world-writable")
            if other and not mode & (0o001 if stat.S_ISDIR(mode) else 0o004):
                problems.append(f"{part} is not {'traversable' if stat.S_ISDIR(mode) else 'readable'} by others")
            if other and part == path and stat.S_ISDIR(mode) and not mode & 0o004:
                problems.append(f"{part} is not listable by others")
    if problems:
        return "not applied: " + "; ".join(dict.fromkeys(problems))
    return "applied: " + ", ".join(map(str, paths)) + " readable by the subject, writable only by their owners"


# ------------------------------------------------------------------------------------- supervisor side
# Runs as ``python -I -S sandbox.py --inside SPEC``: standard library only, no package import.

_libc = None


def _libc_call(name: str, *args: object) -> None:
    """Call a libc function that returns -1 and sets errno on failure."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _libc_call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def _mount_points() -> list[tuple[str, list[str]]]:
    """(mount point, per-mount options) from /proc/self/mountinfo, octal escapes decoded."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
            points.append((point, parts[5].split(",")))
    return points


def _prepare_mounts(private: str, hidden: list[str]) -> dict[str, str]:
    """In the new mount namespace: every mount read-only but the private folder, a fresh /dev/shm, the
    hidden folders covered. Per-mount flags are kept (a user namespace may not clear locked ones)."""
    notes = {}
    failed = []
    try:
        _mount(private, private, None, MS_BIND)  # its own mount, so it stays writable
        for point, options in _mount_points():
            if point == private or point.startswith(private + "/") or point.startswith("/proc/"):
                continue  # /proc/...: shadowed by the fresh /proc (and /proc itself is the pid ns's own)
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(PER_MOUNT_FLAGS.get(o, 0) for o in options)
            try:
                _mount(None, point, None, flags)
            except OSError as e:
                failed.append(f"{point} ({e.strerror})")
        notes["filesystem"] = ("applied: every mount read-only except the private folder" if not failed else
                               "partly: read-only except the private folder, but not " + ", ".join(failed))
    except OSError as e:
        notes["filesystem"] = f"not applied: {e.strerror}"
    try:
        if os.path.isdir("/dev/shm"):
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, SHM_OPTIONS)
            notes["shm"] = f"applied: a fresh /dev/shm ({SHM_OPTIONS})"
    except OSError as e:
        notes["shm"] = f"not applied: {e.strerror} (/dev/shm is read-only)"
    covered, missed = [], []
    for folder in hidden:
        try:
            _mount("tmpfs", folder, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
            covered.append(folder)
        except OSError as e:
            missed.append(f"{folder} ({e.strerror})")
    if hidden:
        notes["hidden"] = ("applied: covered with an empty tmpfs: " + ", ".join(covered) if not missed else
                           "not applied: " + ", ".join(missed))
    return notes


def _set_limits(limits: dict[str, list[int]]) -> None:
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _drop_capabilities() -> None:
    """Uid 0 (in a user namespace, or root with drop_privileges=False) keeps no capability across exec."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _libc_call("prctl", PR_CAPBSET_DROP, cap, 0, 0, 0)
    _libc_call("prctl", PR_SET_SECUREBITS, SECURE_NOROOT, 0, 0, 0)


def _become_subject(spec: dict) -> None:
    """In the forked child: limits, no new privileges, the throwaway uid or no capabilities, then exec."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # python ignores some of them; exec would keep that
    os.umask(0o077)
    _set_limits(spec["limits"])
    _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries (su, sudo) give nothing
    if spec["uid"] is not None:
        _drop_capabilities()
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])  # as root: real, effective and saved uid
    elif os.geteuid() == 0:
        _drop_capabilities()
    os.chdir(spec["cwd"])  # after dropping: the subject's own right to be there
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


def _children_of(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _kill_descendants() -> None:
    """Kill every child until none is left; orphans come to us (pid 1 or subreaper), so this reaches
    double-forked daemons too."""
    me = os.getpid()
    while True:
        for pid in _children_of(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _send(fd: int, item: dict) -> None:
    try:
        os.write(fd, (json.dumps(item) + "\n").encode())
    except OSError:
        pass  # the grader stopped listening: nothing to tell


def _inside_main(spec: dict) -> None:
    """The supervisor: prepare the mounts, start the subject, wait for it, kill what it left."""
    status_fd = spec["status_fd"]
    os.set_inheritable(status_fd, False)  # the subject must not write the status
    setup = {}
    if spec["namespaces"]:
        setup.update(_prepare_mounts(spec["private"], spec["hidden"]))
    try:
        _libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # pid 1 already is one; without namespaces it matters
    except OSError as e:
        setup["subreaper"] = f"not applied: {e.strerror}"
    _send(status_fd, {"setup": setup})
    child = os.fork()
    if child == 0:
        try:
            _become_subject(spec)
        except BaseException as e:  # noqa: BLE001 -- anything here is a setup failure to report
            _send(status_fd, {"exec_error": f"{type(e).__name__}: {e}"})
        os._exit(127)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            break
    _kill_descendants()
    _send(status_fd, {"returncode": os.waitstatus_to_exitcode(status)})



# ------------------------------------------------------------------------------- interactive processes


class SandboxProcess:
    """A program started by :meth:`Sandbox.start` that the caller talks to through pipes (the grading
    judge's subject server). ``stdin``/``stdout`` are the caller's ends (raw, unbuffered file objects);
    stderr goes to a file in the private folder (read its tail with :meth:`stderr_tail`). The caller owns
    the wall budget: it should :meth:`kill` a process that does not answer in time."""

    def __init__(self, proc: subprocess.Popen, status_fd: int, stderr_path: Path, spec_file: str) -> None:
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self._status_fd = status_fd
        self._status = bytearray()
        self._stderr_path = stderr_path
        self._spec_file = spec_file

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole run (with namespaces, unshare's --kill-child takes the pid namespace)."""
        _kill_group(self.proc)

    def close(self, grace: float = KILL_GRACE) -> int:
        """Close the pipes, kill what is left and reap; returns the subject's exit code where known
        (negative for a signal)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self._drain_status()
        if self._status_fd >= 0:
            os.close(self._status_fd)
            self._status_fd = -1
        Path(self._spec_file).unlink(missing_ok=True)
        status = _parse_status(bytes(self._status))
        return status.get("returncode", self.proc.returncode)

    def setup_error(self) -> str | None:
        """Why the subject could not be exec'd (bad program, bad cwd), if the supervisor said so."""
        self._drain_status()
        return _parse_status(bytes(self._status)).get("exec_error")

    def stderr_tail(self, max_bytes: int = 4096) -> str:
        """The last ``max_bytes`` of what the subject wrote to stderr."""
        try:  # O_NOFOLLOW: a subject that replaced the file with a link makes the grader read nothing
            fd = os.open(self._stderr_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return ""
                f.seek(max(os.fstat(f.fileno()).st_size - max_bytes, 0))
                return f.read(max_bytes).decode(errors="replace")
        except OSError:
            return ""

    def _drain_status(self) -> None:
        while self._status_fd >= 0 and len(self._status) < STATUS_CAP:
            try:
                chunk = os.read(self._status_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._status += chunk



if __name__ == "__main__" and sys.argv[1:2] == ["--inside"]:
    with open(sys.argv[2]) as spec_file:
        _inside_main(json.load(spec_file))
