"""Class grading's judge/subject split (mi_course.grading.codec, .subject, .judge), S tier.

The graded tests run in the judge; the learner's lesson module lives in a sandboxed subject process and
only data crosses. Checked here: the codec keeps types exactly and refuses what it cannot carry (pickle
payloads included, which must run nothing); a fake lesson called through RemoteImpl gives values, the
right exception classes, budgets, restarts and in-place mutations; a hostile lesson reaches nothing of the
judge; and lesson 00's real graded tests, run by pytest with ``impl`` overridden to a RemoteImpl, give
full points to the solution and none to the stub.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mi_course.grading import codec
from mi_course.grading.asserts import call_unmutated, expect_value_error
from mi_course.grading.exercise_files import make_stubs
from mi_course.grading.judge import (
    DriverError,
    ProtocolError,
    RemoteError,
    RemoteImpl,
    Subject,
    SubjectDied,
    SubjectTimeout,
    drive,
)

ROOT = Path(__file__).resolve().parents[1]
SLACK = 6.0  # seconds past a budget, for a loaded 2-core machine

FAKE_LESSON = textwrap.dedent('''\
    import os
    import numpy as np
    import torch

    print("the learner prints at import")

    class Picky(ValueError):
        pass

    class Odd(Exception):
        pass

    def ok(x): return 2 * x
    def raises(x): raise RuntimeError("learner bug")
    def hangs(x):
        while True:
            pass
    def exits(x): os._exit(3)
    def nan(x): return x * float("nan")
    def mutates(x): return x.mul_(2)
    def mutates_kw(*, x): x["w"].mul_(2)
    def wrong_shape(x): return (2 * x)[None]
    def not_started(x): raise NotImplementedError("exercise 99.not_started: not started yet")
    def half(x): return x

    def chatty(x):
        print("noise on stdout " * 1000)
        os.write(1, b"raw noise on fd 1")
        return x + 1
    def picky(x): raise Picky(f"bad value {x}")
    def odd(): raise Odd("odd")
    def missing_key(): raise KeyError("resid_pre")
    def leaves(): raise SystemExit(0)
    def hog(): raise MemoryError()
    def kinds(): return (1, 1.0, True, None, "s", [1, (2, 3)], {1: "one", "two": 2}, float("inf"))
    def numpy_float(): return np.float64(0.5)
    def grad_flag(x): return x.requires_grad, (x * 2).requires_grad
    def same(a, b): return a is b
    def kw(x, *, scale=1): return x * scale
    def param_sum(model): return float(sum(p.detach().sum() for p in model.parameters()))
    CONSTANT = 7
''')

ATTACK_LESSON = textwrap.dedent('''\
    import os, socket

    SEEN = {}

    def _try(name, fn):
        try:
            SEEN[name] = "ok: " + str(fn())
        except BaseException as err:
            SEEN[name] = f"failed: {type(err).__name__}: {err}"

    def _write():
        with open({target!r}, "w") as f:
            f.write("pwned")
        return "written"

    def _patch():
        import mi_course.grading.asserts as a
        import pytest
        a.assert_close = lambda *args, **kwargs: None
        pytest.fail = lambda *args, **kwargs: None
        return "patched in the subject"

    def _connect():
        s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
        s.sendall(b"pwned")
        return "connected"

    _try("write", _write)
    _try("patch", _patch)
    _try("secret", lambda: os.environ.get("MI_JUDGE_SECRET"))
    _try("judge_environ", lambda: open(f"/proc/{judge_pid}/environ", "rb").read()[:20])
    _try("socket", _connect)

    def observations():
        return dict(SEEN)

    def answer(x):
        return x * 0  # wrong on purpose: the patched assert_close lives only in the subject
''')


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _roundtrip(value):
    return codec.from_bytes(codec.to_bytes(value))


# ------------------------------------------------------------------------------------------ codec


def test_plain_values_keep_their_exact_types():
    value = [None, True, False, 0, -5, 2**70, 1.0, 1.5, "s", "", b"\x00\xff", (), (1,), [1, (2, [3])],
             {"a": 1, 3: "x", "b": {"c": (True, 1)}}, {}]
    back = _roundtrip(value)
    assert back == value
    assert [type(v) for v in back] == [type(v) for v in value]
    assert type(back[13][1]) is tuple and type(back[13][1][1]) is list
    assert list(back[14]) == ["a", 3, "b"] and type(back[14]["b"]["c"][0]) is bool


@pytest.mark.parametrize("x", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats(x):
    back = _roundtrip(x)
    assert type(back) is float and (back != back if x != x else back == x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.uint8, torch.bool])
def test_tensors_keep_dtype_shape_and_values(dtype):
    for t in (torch.arange(6).reshape(2, 3).to(dtype), torch.tensor(3).to(dtype), torch.zeros(0, 4, dtype=dtype)):
        back = _roundtrip(t)
        assert back.dtype == dtype and back.shape == t.shape and torch.equal(back, t)
        assert not back.requires_grad


def test_requires_grad_non_contiguous_and_aliasing_survive():
    x = torch.randn(3, 4, requires_grad=True)
    y = torch.randn(4, 3).T  # not contiguous
    a, b, c, d = _roundtrip([x, y, x * 2, x])
    assert a.requires_grad and c.requires_grad and not b.requires_grad
    assert torch.equal(a, x.detach()) and torch.equal(b, y) and a is d and a is not c


def test_unknown_values_are_refused_with_a_codec_error_that_no_test_can_take_for_a_learner_error():
    assert not issubclass(codec.CodecError, (ValueError, NotImplementedError))
    for value in (object(), {1, 2}, np.float64(1.0), np.array([1.0]), {(1, 2): 3}, {True: 1}, torch.nn.Linear(2, 2),
                  lambda: 1, 1 + 2j, [1, [2, object()]]):
        with pytest.raises(codec.CodecError):
            codec.to_bytes(value)


def test_opaque_replies_fail_type_checks_instead_of_being_coerced():
    back = codec.from_bytes(codec.to_bytes([np.float64(0.5), 1], opaque=True))
    assert isinstance(back[0], codec.Opaque) and not isinstance(back[0], float)
    assert back[0].type_name == "numpy.float64" and "0.5" in back[0].text and back[1] == 1


def _evil_pickle(marker: Path) -> bytes:
    """A protocol-0 pickle, written by hand (no pickle module here), that runs ``touch marker`` when
    anything unpickles it."""
    return f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode()


def test_pickle_bearing_payloads_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_pickle(marker)
    doc = json.dumps({"value": {"$": "tensor", "key": "t0", "grad": False}}).encode()
    zipped = tmp_path / "t.zip"  # the layout of a torch.save file: a zip holding data.pkl
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", evil)
    frames = [
        evil,  # a bare pickle as a frame
        codec.HEADER.pack(len(doc), len(evil)) + doc + evil,  # a pickle as the tensor blob
        codec.HEADER.pack(len(doc), zipped.stat().st_size) + doc + zipped.read_bytes(),
        codec.pack({"value": {"$": "pickle", "data": evil.hex()}}, {}),  # a tag no decoder knows
        codec.pack({"value": {"$": "opaque", "type": "x", "text": evil.hex()}}, {}) + b"trailing",
    ]
    for frame in frames:
        with pytest.raises(codec.CodecError):
            codec.from_bytes(frame)
    assert not marker.exists()
    for module in ("codec", "subject", "judge"):  # nothing on the data path can run code on load
        source = (ROOT / "mi_course" / "grading" / f"{module}.py").read_text()
        for word in ("import pickle", "pickle.load", "torch.load", "import marshal", "eval(", "exec(", "dill"):
            assert word not in source, f"{module}.py mentions {word}"


def test_decode_limits():
    small = codec.Limits(max_bytes=1000, max_depth=10, max_items=50, max_tensors=2)
    with pytest.raises(codec.CodecError):
        codec.from_bytes(codec.to_bytes("x" * 2000), small)
    with pytest.raises(codec.CodecError):  # a header that claims 4 GiB is refused before reading anything
        codec.unpack_header(codec.HEADER.pack(2**32 - 1, 2**32 - 1))
    deep: list = []
    for _ in range(20):
        deep = [deep]
    with pytest.raises(codec.CodecError):
        codec.from_bytes(codec.to_bytes(deep), small)
    with pytest.raises(codec.CodecError):
        codec.from_bytes(codec.to_bytes(list(range(100))), small)
    with pytest.raises(codec.CodecError):
        codec.from_bytes(codec.to_bytes([torch.zeros(1), torch.zeros(1), torch.zeros(1)]), small)
    assert codec.from_bytes(codec.to_bytes([deep, list(range(100))])) == [deep, list(range(100))]


@pytest.mark.parametrize("doc", [b'{"value": NaN}', b'{"value": {"a": 1}}', b'{"value": {"$": "dict", "keys": [[1]], '
                                 b'"values": [1]}}', b"not json", b'{"value": {"$": "tensor", "key": "t9"}}',
                                 b'{"value": {"$": "bytes", "b64": "!!"}}', b'{"value": {"$": "float", "v": "1e999"}}'])
def test_malformed_payloads_are_codec_errors(doc):
    with pytest.raises(codec.CodecError):
        codec.from_bytes(codec.HEADER.pack(len(doc), 0) + doc)


def test_models_cross_by_role_and_unknown_modules_are_refused():
    model = codec.load_role_model("attn-only-1l")
    with torch.no_grad():
        model.W_E[0, 0] = 123.0  # the state dict crosses, not only the role
    model.W_U.requires_grad_(False)
    a, b = _roundtrip([model, model])
    assert a is b and a is not model and codec.role_of(a) == "attn-only-1l"
    assert a.W_E[0, 0].item() == 123.0 and not a.W_U.requires_grad and a.W_E.requires_grad
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), a.state_dict().values()))
    with pytest.raises(codec.CodecError, match="by role"):
        codec.to_bytes(torch.nn.Linear(2, 2))
    bad = codec.pack({"value": {"$": "model", "key": "m0", "role": "no-such-role"}}, {})
    with pytest.raises(codec.CodecError):
        codec.from_bytes(bad)


def _tiny_hooked(**kw):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=8, n_ctx=8, d_head=4, n_heads=2, d_vocab=7, act_fn="gelu",
                                  device="cpu", **kw)
    return HookedTransformer(cfg).eval()


def test_transformer_lens_objects_cross_as_data():
    from transformer_lens import ActivationCache, FactoredMatrix

    model = _tiny_hooked(attn_only=False, d_mlp=16, normalization_type="LN", positional_embedding_type="rotary",
                         rotary_dim=4)
    tokens = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    fm = FactoredMatrix(torch.randn(3, 2), torch.randn(2, 4))
    m, c, f = _roundtrip([model, cache, fm])
    assert type(m) is type(model) and m.cfg == model.cfg and c.model is m
    assert type(c) is ActivationCache and list(c.keys()) == list(cache.keys())
    assert all(torch.equal(c[k], cache[k]) for k in cache.keys())
    with torch.no_grad():
        assert torch.allclose(m(tokens), logits, atol=1e-6)
    assert type(f) is FactoredMatrix and torch.allclose(f.AB, fm.AB)


def test_the_judge_accepts_no_models_from_a_subject():
    frame = codec.to_bytes(_tiny_hooked(attn_only=True))
    with pytest.raises(codec.CodecError, match="does not accept models"):
        codec.from_bytes(frame, models=False)
    cfg = {"$": "dict", "keys": ["n_layers", "shell"], "values": [1, "rm -rf /"]}
    bad = codec.pack({"value": {"$": "model", "key": "m0", "cfg": cfg}}, {})
    with pytest.raises(codec.CodecError):  # unknown config fields are refused, not passed on
        codec.from_bytes(bad)


# ------------------------------------------------------------------------------------------ through a subject


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A RemoteImpl over the fake lesson, one subject for the module's tests (startups cost seconds)."""
    folder = tmp_path_factory.mktemp("fake")
    (folder / "l99_fake.py").write_text(FAKE_LESSON)
    subject = Subject(folder / "l99_fake.py", call_seconds=30)
    impl = RemoteImpl(subject)
    yield impl, subject
    subject.close()


def test_values_come_back(fake):
    impl, _ = fake
    x = torch.arange(3.0)
    assert torch.equal(impl.ok(x), 2 * x)
    assert torch.isnan(impl.nan(x)).all()
    assert impl.wrong_shape(x).shape == (1, 3)
    assert torch.equal(impl.half(x), x)
    assert impl.kinds() == (1, 1.0, True, None, "s", [1, (2, 3)], {1: "one", "two": 2}, float("inf"))
    assert [type(v) for v in impl.kinds()[:3]] == [int, float, bool]
    assert isinstance(impl.numpy_float(), codec.Opaque)
    assert impl.grad_flag(torch.ones(2, requires_grad=True)) == (True, True)
    assert impl.grad_flag(torch.ones(2)) == (False, False)
    assert impl.same(x, x) is True and impl.same(x, x.clone()) is False
    assert torch.equal(impl.kw(x, scale=3), 3 * x)
    assert impl.CONSTANT == 7
    assert fake[1].has("ok") and not fake[1].has("no_such_function") and not fake[1].has("_private")


def _local_fake():
    import types

    module = types.ModuleType("l99_fake_local")
    exec(compile(FAKE_LESSON, "l99_fake_local.py", "exec"), module.__dict__)
    return module


def _driver_spied(impl, x):
    """A driver: runs next to the learner's module (here in the subject), patches it, returns data."""
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl, "half", lambda v: calls.append(v.shape) or v)
        out = impl.ok(impl.half(x))  # the learner's own function, with the spy in place of its helper
    return {"out": out, "calls": len(calls), "module": impl.__name__}


def _driver_raises(impl):
    return impl.picky(5)


def test_drivers_run_where_the_learners_code_is(fake):
    impl, subject = fake
    x = torch.arange(3.0)
    got = drive(impl, _driver_spied, x)
    assert torch.equal(got["out"], 2 * x) and got["calls"] == 1
    assert got["module"] == "_mi_subject_lesson_l99_fake"  # the subject's copy of the lesson, not one in this process
    assert drive(_local_fake(), _driver_spied, x)["module"] == "l99_fake_local"  # a local impl: run here
    with pytest.raises(ValueError, match="bad value 5"):  # the learner's exception, with its class
        drive(impl, _driver_raises)
    with pytest.raises(DriverError):  # only module-level functions of a test file
        drive(impl, lambda m: 1)
    assert torch.equal(impl.ok(x), 2 * x)


def test_prints_do_not_corrupt_the_channel(fake):
    impl, _ = fake
    assert torch.equal(impl.chatty(torch.zeros(2)), torch.ones(2))
    assert torch.equal(impl.ok(torch.ones(1)), torch.full((1,), 2.0))


def test_exceptions_come_back_with_their_class(fake):
    impl, _ = fake
    x = torch.ones(2)
    with pytest.raises(RuntimeError, match="learner bug"):
        impl.raises(x)
    with pytest.raises(NotImplementedError, match="not started"):
        impl.not_started(x)
    with pytest.raises(NotImplementedError):  # the stub still reads as "not started" through the asserts
        expect_value_error(impl.not_started, x, what="not_started(x)")
    assert "bad value" in expect_value_error(impl.picky, 3, what="picky(3)")  # a ValueError subclass is a ValueError
    with pytest.raises(KeyError) as info:
        impl.missing_key()
    assert info.value.args == ("resid_pre",)
    for name in ("odd", "leaves", "hog"):  # no allowed built-in base (MemoryError is a subject limit)
        with pytest.raises(RemoteError) as info:
            getattr(impl, name)()
        assert not isinstance(info.value, (ValueError, NotImplementedError, MemoryError))
    with pytest.raises(AssertionError):  # expect_value_error turns a RemoteError into the learner's failure
        expect_value_error(impl.odd, what="odd()")
    with pytest.raises(AttributeError):
        impl.no_such_function
    with pytest.raises(codec.CodecError):  # an argument with no codec: an infrastructure error, not ValueError
        impl.ok(object())


def test_in_place_mutation_is_written_back(fake):
    impl, _ = fake
    x = torch.arange(3.0)
    with pytest.raises(AssertionError, match="changed in place"):
        call_unmutated(impl.mutates, x)
    assert torch.equal(x, torch.tensor([0.0, 2.0, 4.0]))
    nan = torch.tensor([float("nan"), 1.0])
    tree, tensors, _ = codec.encode([[nan], {}])
    reply, _ = fake[1].request({"op": "call", "name": "half", "args": tree[0], "kwargs": tree[1]}, tensors)
    assert reply["ok"] and reply["mutated"] == []  # NaN-safe: an unchanged NaN is not a mutation
    k = {"w": torch.ones(2)}
    with pytest.raises(AssertionError, match="changed in place"):
        call_unmutated(impl.mutates_kw, x=k)
    assert torch.equal(k["w"], torch.full((2,), 2.0))
    y = torch.arange(3.0)
    assert torch.equal(call_unmutated(impl.ok, y), 2 * y)


def test_monkeypatch_setattr_stays_on_the_proxy(fake, monkeypatch):
    impl, _ = fake
    original = impl.ok
    monkeypatch.setattr(impl, "ok", lambda x: "local")
    assert impl.ok(1) == "local"
    monkeypatch.undo()
    assert impl.ok(torch.ones(1)).item() == 2.0 and repr(original).startswith("<remote ok")


def test_a_hang_costs_its_budget_and_a_death_restarts(fake):
    impl, subject = fake
    subject.call_seconds = 2.0
    try:
        start = time.monotonic()
        with pytest.raises(SubjectTimeout) as info:
            impl.hangs(torch.ones(1))
        assert time.monotonic() - start < 2.0 + SLACK
        assert not isinstance(info.value, (ValueError, NotImplementedError))
        subject.call_seconds = 30.0
        with pytest.raises(SubjectDied, match="exit code 3"):
            impl.exits(torch.ones(1))
        starts = subject.starts
        assert torch.equal(impl.ok(torch.ones(1)), torch.full((1,), 2.0))  # a fresh subject
        assert subject.starts == starts + 1
    finally:
        subject.call_seconds = 30.0


def test_the_learners_whole_budget_is_enforced(tmp_path):
    (tmp_path / "l99_fake.py").write_text(FAKE_LESSON)
    with Subject(tmp_path / "l99_fake.py", call_seconds=30) as subject:
        impl = RemoteImpl(subject)
        subject.budget_seconds = subject.spent + 1.5
        start = time.monotonic()
        with pytest.raises(SubjectTimeout):
            impl.hangs(1)
        assert time.monotonic() - start < 1.5 + SLACK
        with pytest.raises(SubjectTimeout, match="budget"):
            impl.ok(1)


def test_a_model_crosses_by_role(fake):
    impl, _ = fake
    model = codec.load_role_model("attn-only-1l")
    want = float(sum(p.detach().sum() for p in model.parameters()))
    assert impl.param_sum(model) == pytest.approx(want, rel=1e-6)


def test_an_import_error_is_a_setup_error(tmp_path):
    from mi_course.grading.impl import ImplementationImportError

    (tmp_path / "l99_fake.py").write_text("import os\nraise ValueError('broken at import')\n")
    with Subject(tmp_path / "l99_fake.py") as subject:
        with pytest.raises(ImplementationImportError, match="broken at import"):
            RemoteImpl(subject)


def test_one_subject_serves_several_lessons_each_on_its_own_budget(tmp_path):
    """A learner's lessons share one subject process (one startup); each is imported when first asked, a
    broken or hanging lesson leaves the others working, and each lesson spends its own budget."""
    from mi_course.grading.impl import ImplementationImportError

    (tmp_path / "l98_other.py").write_text("import os\ndef triple(x):\n    return 3 * x\n"
                                           "def leave(x):\n    os._exit(4)\n")
    (tmp_path / "l97_broken.py").write_text("raise ValueError('broken at import')\n")
    (tmp_path / "l99_fake.py").write_text(FAKE_LESSON)
    files = [tmp_path / n for n in ("l99_fake.py", "l98_other.py", "l97_broken.py")]
    with Subject(files, call_seconds=30) as subject:
        fake, other = RemoteImpl(subject, "l99_fake"), RemoteImpl(subject, "l98_other")
        assert subject.starts == 1 and set(subject.loaded) == {"l99_fake", "l98_other"}
        assert other.triple(2) == 6 and torch.equal(fake.ok(torch.ones(1)), torch.full((1,), 2.0))
        with pytest.raises(ImplementationImportError, match="broken at import"):
            RemoteImpl(subject, "l97_broken")
        assert other.triple(3) == 9, "a lesson that fails to import leaves the others working"
        assert not hasattr(other, "ok") and hasattr(fake, "ok"), "each lesson's own names"
        with pytest.raises(SubjectDied, match="exit code 4"):
            other.leave(1)
        assert torch.equal(fake.ok(torch.ones(1)), torch.full((1,), 2.0)), "a fresh subject reloads the lesson"
        assert subject.starts == 2
        subject.spent_by["l99_fake"] = subject.budget_seconds  # this lesson's budget is spent ...
        with pytest.raises(SubjectTimeout, match="budget"):
            fake.ok(torch.ones(1))
        assert other.triple(1) == 3, "... and the other lesson's is not"


def test_an_import_that_hangs_costs_only_the_startup_budget(tmp_path):
    (tmp_path / "l99_fake.py").write_text("while True:\n    pass\n")
    with Subject(tmp_path / "l99_fake.py", start_seconds=3) as subject:
        start = time.monotonic()
        with pytest.raises(SubjectTimeout):
            RemoteImpl(subject)
        assert time.monotonic() - start < 3 + SLACK


def test_a_garbled_reply_is_a_protocol_error(tmp_path):
    lesson = textwrap.dedent('''\
        import os
        def garble():  # the subject's private channel is one of these fds: flood them all
            for fd in range(3, 40):
                try:
                    os.write(fd, b"\\xff" * 8)
                except OSError:
                    pass
            return 1
    ''')
    (tmp_path / "l99_fake.py").write_text(lesson)
    with Subject(tmp_path / "l99_fake.py", call_seconds=10) as subject:
        impl = RemoteImpl(subject)
        with pytest.raises(SubjectDied) as info:
            impl.garble()
        assert isinstance(info.value, ProtocolError) and "bad reply" in str(info.value)


# ------------------------------------------------------------------------------------------ a hostile lesson


def test_a_hostile_lesson_reaches_nothing_of_the_judge(tmp_path, monkeypatch):
    judge_tree = tmp_path / "judge_tree"
    judge_tree.mkdir()
    target = judge_tree / "asserts.py"
    shutil.copy(ROOT / "mi_course" / "grading" / "asserts.py", target)
    before = target.read_bytes()
    monkeypatch.setenv("MI_JUDGE_SECRET", "s3cret-token")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    lesson = ATTACK_LESSON.replace("{target!r}", repr(str(target))).replace("{port}", str(port)) \
        .replace("{judge_pid}", str(os.getpid()))
    (tmp_path / "l99_attack.py").write_text(lesson)
    try:
        with Subject(tmp_path / "l99_attack.py", call_seconds=20) as subject:
            impl = RemoteImpl(subject)
            seen = impl.observations()
            got = impl.answer(torch.ones(3))
    finally:
        try:
            conn, _ = server.accept()
            conn.close()
            connected = True
        except OSError:
            connected = False
        server.close()
    assert seen["write"].startswith("failed") and target.read_bytes() == before
    assert seen["secret"] == "ok: None"
    assert seen["judge_environ"].startswith("failed")
    assert seen["socket"].startswith("failed") and not connected
    assert seen["patch"] == "ok: patched in the subject"  # it may patch its own copy...
    from mi_course.grading.asserts import assert_close

    with pytest.raises(AssertionError):  # ...the judge's assert_close is untouched
        assert_close(got, torch.ones(3), "answer")
    assert pytest.fail.__module__ == "_pytest.outcomes"


# ------------------------------------------------------------------------------------------ real graded tests

CONFTEST = """\
import json, os, sys

import pytest

from mi_course.grading import codec
from mi_course.grading.judge import remote_impl_fixture  # overrides the plugin's `impl` (conftest wins)


@pytest.fixture(scope="module")
def lite1():  # tests/conftest.py's fixtures, registered by role so that they can cross
    return codec.load_role_model("attn-only-1l")


@pytest.fixture(scope="module")
def lite2():
    return codec.load_role_model("attn-only-2l")


def pytest_sessionfinish(session):
    folder = os.path.realpath(session.config._mi_impl)
    loaded = sorted(getattr(m, "__file__", None) or "" for m in list(sys.modules.values()))
    with open(os.environ["JUDGE_PROBE"], "w") as f:
        json.dump([p for p in loaded if p.startswith(folder + os.sep)], f)
"""


def _grade_remotely(tmp_path: Path, lesson: str, impl_folder: Path) -> tuple[dict, list, str]:
    """Run tests/graded/test_<lesson>.py in a judge process (pytest) whose ``impl`` is a RemoteImpl over
    ``impl_folder``'s lesson file: (points earned / possible per kind, learner files the judge imported,
    pytest's output)."""
    run = tmp_path / "judge_run"
    run.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "graded" / f"test_{lesson}.py", run / f"test_{lesson}.py")
    (run / "conftest.py").write_text(CONFTEST)
    jsonl, probe = tmp_path / "grades.jsonl", tmp_path / "probe.json"
    env = {**os.environ, "JUDGE_PROBE": str(probe), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", str(run), "-c", os.devnull, "--rootdir", str(run),
                           "-p", "mi_course.grading.plugin", "-p", "no:cacheprovider", "-q",
                           "--impl", str(impl_folder), "--grade-jsonl", str(jsonl)],
                          capture_output=True, text=True, env=env, cwd=run, timeout=300)
    earned = {"earned": 0, "possible": 0, "kinds": []}
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        if rec["event"] == "collected":
            earned["possible"] += rec["points"]
        elif rec["event"] == "result":
            earned["kinds"].append(rec["kind"])
            earned["earned"] += rec["points"] if rec["kind"] == "passed" else 0
    return earned, json.loads(probe.read_text()), done.stdout + done.stderr


@pytest.mark.parametrize("lesson, points", [("l00_start_here", 4),
                                            pytest.param("l05_transformer_circuits", 20, marks=pytest.mark.slow)])
def test_a_lesson_graded_remotely_solution_full_stub_zero(tmp_path, lesson, points):
    solution = (ROOT / "solutions" / f"{lesson}.py").read_text()
    for name, source, want in (("solution", solution, "full"), ("stub", make_stubs(solution, lesson), "zero")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{lesson}.py").write_text(source)
        result, imported, output = _grade_remotely(tmp_path / f"{name}_run", lesson, folder)
        assert result["possible"] == points, output
        assert imported == [], f"the judge imported the learner's file: {imported}"
        if want == "full":
            assert result["earned"] == points and set(result["kinds"]) == {"passed"}, output
        else:
            assert result["earned"] == 0 and set(result["kinds"]) == {"not_started"}, output
