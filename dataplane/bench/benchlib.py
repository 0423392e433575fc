"""What the bench scripts share: their processes, CPU accounting and wrk runs."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PIN_LOAD = ["taskset", "-c", "0"] if os.cpu_count() >= 2 else []
PIN_PROXY = ["taskset", "-c", "1"] if os.cpu_count() >= 2 else []
CLK = os.sysconf("SC_CLK_TCK")


def logger(name):
    def log(msg):
        print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    return log


class Procs:
    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, args, name, **kw):
        out = open(os.path.join(self.work, name + ".log"), "ab")
        p = subprocess.Popen(args, stdout=kw.pop("stdout", out), stderr=out, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def wait_port(port, proc=None, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def all_cpu():
    """pid -> (parent pid, CPU seconds) of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK)
            except (OSError, IndexError):
                pass
    return out


def other_cpu(before, after, seconds):
    """Share of a core used by processes this run did not start (its own descendants
    excluded): above 10 % the measurement is marked disturbed."""
    me = os.getpid()

    def ours(pid, table):
        for _ in range(64):
            if pid == me:
                return True
            if pid not in table or pid <= 1:
                return False
            pid = table[pid][0]
        return False

    used = sum(c - before[p][1] for p, (_, c) in after.items()
               if p in before and not ours(p, after))
    return used / seconds


def core_busy():
    with open("/proc/stat") as f:
        rows = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in f if l.startswith("cpu")}
    return {k: (sum(v) - v[3] - v[4], sum(v)) for k, v in rows.items()}


def busy_share(a, b, cpu):
    (busy0, total0), (busy1, total1) = a[cpu], b[cpu]
    return (busy1 - busy0) / max(1, total1 - total0)


def wrk_all(body, key, urls, seconds, conns, stream=False):
    """One wrk per URL (body file POSTed with `key`), started together, `conns`
    shared among them. Returns per URL wrk's summary plus `ok` (2xx answers)."""
    per = max(1, conns // len(urls))
    env = dict(os.environ, BENCH_BODY=body, BENCH_KEY=key, BENCH_STREAM="1" if stream else "0")
    lua = os.path.join(HERE, "post.lua")
    procs = [subprocess.Popen(PIN_LOAD + ["wrk", "-t", "1", "-c", str(per), "-d", f"{seconds}s",
                                          "-s", lua, url], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env, text=True) for url in urls]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        line = next((l for l in out.splitlines() if l.startswith("WRK_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary: {out[-500:]}")
        r = json.loads(line[len("WRK_JSON "):])
        r["ok"] = r["requests"] - r["status_errors"] - r["errors"]
        results.append(r)
    return results




def make_test_pki(work):
    """A test CA (ca.pem) and an ECDSA P-256 certificate for 127.0.0.1 signed by it
    (server.pem, server.key), made with openssl in `work`."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=work)

    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", "/CN=bench test CA", "-out", "ca.pem")
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    run("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    with open(os.path.join(work, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")


def repo_rev():
    return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def write_results(work, report, render, name, log):
    """Keeps the raw figures in `work`, prints the report and writes it to bench/`name`."""
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = render(report)
    print(text)
    with open(os.path.join(HERE, name), "w") as f:
        f.write(text)
    # The rest (audit logs, fixtures, Redis dumps) runs to gigabytes over a few runs.
    for entry in os.listdir(work):
        if entry != "report.json":
            path = os.path.join(work, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    log(f"raw figures: {work}/report.json")
