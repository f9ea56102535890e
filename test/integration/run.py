#!/usr/bin/env python3
"""Runs the integration tests: every test_* function of every
test/integration/test_*.py module, against the real binary.

Each module gets a fresh temporary directory and a lazily created default
mock upstream and proxy (ctx.mock, ctx.proxy); tests that need another
configuration start their own.  Prints one line per test and ends with
"N passed, N failed".

  run.py [-k SUBSTRING] [--tsan]    (--tsan: only modules with TSAN = True)
"""
import importlib.util
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


class Ctx:
    def __init__(self, tmp):
        self.tmp = tmp
        self._mock = None
        self._proxy = None
        self.cleanup = []

    @property
    def mock(self):
        if self._mock is None:
            self._mock = harness.Mock(self.tmp)
        return self._mock

    @property
    def proxy(self):
        if self._proxy is None:
            self._proxy = harness.Proxy(self.tmp, self.mock.url)
        return self._proxy

    def new_proxy(self, **kw):
        p = harness.Proxy(self.tmp, kw.pop("upstream", self.mock.url), **kw)
        self.cleanup.append(p)
        return p

    def close(self):
        errors = []
        for p in self.cleanup + ([self._proxy] if self._proxy else []):
            try:
                p.stop()
            except Exception as e:  # report, keep closing the rest
                errors.append(str(e))
        if self._mock:
            self._mock.stop()
        return errors


def main():
    args = sys.argv[1:]
    pattern = None
    tsan = "--tsan" in args
    if "-k" in args:
        pattern = args[args.index("-k") + 1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for exe in (harness.BIN, harness.MOCK):
        if not os.access(exe, os.X_OK):
            print(f"missing executable {exe}; run make first")
            return 2

    passed = failed = 0
    failures = []
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(HERE, name))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if tsan and not getattr(mod, "TSAN", False):
            continue
        tests = [(n, f) for n, f in vars(mod).items() if n.startswith("test_") and callable(f)]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        if pattern:
            tests = [t for t in tests if pattern in f"{name}::{t[0]}"]
        if not tests:
            continue
        tmp = tempfile.mkdtemp(prefix="whyops-it-")
        ctx = Ctx(tmp)
        for tname, fn in tests:
            t0 = time.monotonic()
            label = f"{name[:-3]}::{tname}"
            try:
                fn(ctx)
                passed += 1
                print(f"ok   {label} ({time.monotonic() - t0:.2f}s)", flush=True)
            except Exception as e:
                failed += 1
                failures.append(label)
                print(f"FAIL {label} ({time.monotonic() - t0:.2f}s): {e}", flush=True)
                traceback.print_exc(limit=4)
        for err in ctx.close():
            failed += 1
            failures.append(f"{name[:-3]} teardown")
            print(f"FAIL {name[:-3]} teardown: {err}", flush=True)
        if not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"     (kept {tmp} for inspection)")
    if failures:
        print("failed: " + ", ".join(failures))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
