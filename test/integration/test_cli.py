"""The command line as whyops-proxy(8) describes it: the options, short and
long, their output, and the exit statuses (0, 1 for a configuration that
cannot be used, 2 for a usage error)."""
import os
import re
import subprocess

from harness import BIN, check, eq


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_help_and_version(ctx):
    for opt in ("-h", "--help"):
        rc, out, err = run(opt)
        eq(rc, 0, f"{opt} exit status")
        for want in ("usage: whyops-proxy [-htV] [-c file]", "-c, --config file",
                     "-t, --test", "-V, --version", "-h, --help", "--new-key",
                     "/etc/whyops.conf"):
            check(want in out, f"{opt} mentions {want!r}:\n{out}")
    for opt in ("-V", "--version"):
        rc, out, _ = run(opt)
        eq(rc, 0, f"{opt} exit status")
        check(re.fullmatch(r"whyops-proxy \d+\.\d+\.\d+\n", out), f"{opt}: {out!r}")


def test_usage_errors(ctx):
    for args in (["-x"], ["--nope"], ["-c"], ["extra-argument"], ["-t", "a", "b"]):
        rc, out, err = run(*args)
        eq(rc, 2, f"{args} exit status")
        check("usage: whyops-proxy" in err and out == "", f"{args}: usage on stderr: {err!r}")


def test_check_long_and_short(ctx):
    conf = ctx.proxy.conf
    for args in (["-t", "-c", conf], ["--test", "--config", conf], ["--test", f"--config={conf}"]):
        rc, out, err = run(*args)
        eq((rc, out), (0, "configuration OK\n"), f"{args}: {err}")
    missing = os.path.join(ctx.tmp, "no-such.conf")
    rc, out, err = run("-t", "-c", missing)
    eq(rc, 1, "-t on a missing file")
    check(missing in err, f"names the file: {err!r}")
    rc, out, err = run("-c", missing)
    eq(rc, 1, "start with a missing file")
    check("not starting" in err, f"says it does not start: {err!r}")
