#!/usr/bin/env python3
"""End-to-end benchmark of Logferry: logferry-agent tails files and ships batches over
HTTPS/TLS to logferry-aggregator, which writes them to a file sink.

Python 3 standard library only. See bench/README.md for usage and how to read the output.

  python3 bench/run.py                               # pre-written 1 GiB file
  python3 bench/run.py --size 256M --verify          # quick run, check every line once
  python3 bench/run.py --mode steady --rate 50000 --files 100 --seconds 30
  python3 bench/run.py --peer rsyslog --repeat 2      # rsyslog measured alongside, as ../shared/bench does

Prints a human-readable table, then one JSON summary line (the last line of stdout), and
appends that JSON line to .bench/results.jsonl. With --peer or --repeat, every run prints its
table and JSON line, then a side-by-side table of medians and a "comparison" JSON line.
"""
import argparse
import atexit
import glob
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, ".bench")
# Optional side-by-side harness next to the repo: its generator makes the input (so figures
# are comparable with the peers measured there); --peer also uses its configs and receiver.
SHARED_BENCH = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
SHARED_GEN = os.path.join(SHARED_BENCH, "gen_logs.py")
CLK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
GiB = 1 << 30
AVG_LINE = 205  # bytes per line incl. newline of the generated mix (measured)

BARS = {
    "prewritten": {"mib_s": 150.0, "agent_cpu_s_per_gib": 3.0, "agent_peak_rss_mib": 32.0},
    "steady": {"agent_cpu_pct": 5.0, "agent_peak_rss_mib": 20.0},
}

_children = []  # Popen objects to kill if we exit abnormally
_timed_pids = []  # (Popen of /usr/bin/time, pid of the peer shipper it runs), to kill likewise
PIN = {}  # process name -> set of CPUs (--pin)


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def die(msg, code=2):
    log("ERROR: " + msg)
    sys.exit(code)


def parse_size(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", s)
    if not m:
        raise argparse.ArgumentTypeError("bad size %r (use e.g. 256M, 1G, 1073741824)" % s)
    mult = {"": 1, "k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def fmt_size(n):
    for unit, div in (("G", GiB), ("M", MiB), ("K", 1024)):
        if n % div == 0:
            return "%d%s" % (n // div, unit)
    return str(n)


# --------------------------------------------------------------------------- /proc helpers

def proc_cpu(pid):
    """utime+stime of all threads, seconds; None once the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fs = f.read().rsplit(")", 1)[1].split()
        return (int(fs[11]) + int(fs[12])) / CLK
    except (OSError, IndexError, ValueError):
        return None


def proc_status(pid):
    r = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                    k, v = ln.split(":", 1)
                    r[k] = int(v.split()[0])  # kB (Threads: a count)
    except OSError:
        pass
    return r


def proc_io(pid):
    r = {}
    try:
        with open("/proc/%d/io" % pid) as f:
            for ln in f:
                k, v = ln.split(":", 1)
                r[k.strip()] = int(v)
    except (OSError, ValueError):
        pass
    return r


def proc_threads(pid):
    """CPU seconds per thread name (threads with the same name summed)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            fs = s.rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fs[11]) + int(fs[12])) / CLK
        except (OSError, ValueError, IndexError):
            pass
    return out


def sys_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fs = [int(x) for x in f.readline().split()[1:]]
    idle = fs[3] + (fs[4] if len(fs) > 4 else 0)
    total = sum(fs[:8])
    return total - idle, total


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def wait_quiet(max_wait, threshold=0.3, window=2.0):
    """Waits (at most max_wait s) until the rest of the machine uses < threshold cores over
    `window` s; returns the last measured load in cores."""
    t_end = time.monotonic() + max_wait
    announced = False
    while True:
        b0, me0, t0 = sys_cpu()[0], self_cpu(), time.monotonic()
        time.sleep(window)
        busy = ((sys_cpu()[0] - b0) / CLK - (self_cpu() - me0)) / (time.monotonic() - t0)
        if busy < threshold or time.monotonic() >= t_end:
            if busy >= threshold:
                log("machine still busy (%.2f cores used by other processes); starting anyway" % busy)
            return round(busy, 2)
        if not announced:
            log("waiting up to %.0f s for other processes to go quiet (now %.2f cores busy)" % (max_wait, busy))
            announced = True


def self_cpu():
    t = os.times()
    return t.user + t.system


class Proc:
    """A started child with its log files and /proc sampling."""

    def __init__(self, name, cmd, workdir, env=None):
        self.name = name
        self.out_path = os.path.join(workdir, name + ".stdout.log")
        self.err_path = os.path.join(workdir, name + ".stderr.log")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.t_start = time.monotonic()
        self.p = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                  env=env, cwd=workdir)
        _children.append(self.p)
        self.pid = self.p.pid
        if name in PIN:
            try:
                os.sched_setaffinity(self.pid, PIN[name])
            except OSError as e:
                log("warning: cannot pin %s: %s" % (name, e))
        self.max_rss_kb = 0
        self.rss_samples = []
        self.last = {}

    def sample(self):
        """Samples CPU, RSS, HWM and I/O; keeps the latest values (valid until exit)."""
        cpu = proc_cpu(self.pid)
        st = proc_status(self.pid)
        io = proc_io(self.pid)
        if cpu is None or not st:
            return self.last
        rss = st.get("VmRSS", 0)
        self.max_rss_kb = max(self.max_rss_kb, rss)
        self.rss_samples.append(rss)
        self.last = {"cpu_s": cpu, "rss_kb": rss, "hwm_kb": st.get("VmHWM", 0), "threads": st.get("Threads"),
                     "io": io, "t": time.monotonic()}
        return self.last

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout):
        """SIGTERM, wait; returns (exit code, seconds to exit, killed)."""
        if self.p.poll() is not None:
            return self.p.returncode, 0.0, False
        t = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            killed = True
        return self.p.returncode, time.monotonic() - t, killed

    def close_logs(self):
        self._out.close()
        self._err.close()

    def tail(self, n=30):
        out = []
        for path in (self.err_path, self.out_path):
            try:
                with open(path, "rb") as f:
                    f.seek(0, 2)
                    f.seek(max(0, f.tell() - 16384))
                    lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
            except OSError:
                lines = []
            if lines:
                out.append("---- %s (last %d lines of %s) ----" % (self.name, len(lines), os.path.basename(path)))
                out.extend(lines)
        return "\n".join(out)


def _kill_children():
    # Peer shippers run under /usr/bin/time: kill the shipper itself (its pid cannot have been
    # reused while its `time` parent has not exited), or it would outlive `time`.
    for timer, pid in _timed_pids:
        if timer.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for p in _children:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass


atexit.register(_kill_children)


def _sigterm(*_):
    sys.exit(143)  # runs atexit: kills our children


signal.signal(signal.SIGTERM, _sigterm)

# --------------------------------------------------------------------------- HTTP helpers

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=2.0):
    try:
        with _opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except Exception as e:  # noqa: BLE001
        return None, str(e)


def metrics(port):
    """Prometheus text → {name{labels}: value}; {} if unreachable."""
    st, body = http_get("http://127.0.0.1:%d/metrics" % port)
    out = {}
    if st != 200:
        return out
    for ln in body.splitlines():
        if ln.startswith("# TYPE "):
            out["# TYPE " + ln.split()[2]] = 1.0  # families are listed before their first sample
            continue
        if not ln or ln.startswith("#"):
            continue
        try:
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
        except ValueError:
            pass
    return out


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- input data

def _builtin_generate(out_path, target, seed=42):
    """Same mix and contract as shared/bench/gen_logs.py (not byte-identical): 45% nginx
    combined, 35% JSON app lines, 20% syslog; 100..400 bytes; unique seq per line."""
    rnd = random.Random(seed)
    methods = ["GET"] * 8 + ["POST"] * 3 + ["PUT", "DELETE", "HEAD"]
    paths = ["/", "/index.html", "/api/v1/users/{n}", "/api/v1/orders/{n}/items", "/static/js/app.{h}.js",
             "/images/products/{n}.jpg", "/search?q=wireless+headphones&page={p}", "/api/v2/cart/{n}/checkout",
             "/health", "/login", "/api/v1/products?category=electronics&sort=price_asc&limit=50&offset={n}"]
    status = [200] * 20 + [201, 204, 301, 302, 304, 304, 400, 401, 403, 404, 404, 500, 502, 503]
    refs = ["-", "https://www.example.com/", "https://www.google.com/search?q=example+shop",
            "https://shop.example.com/products/{n}"]
    uas = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
           "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
           "curl/7.88.1", "Go-http-client/1.1", "kube-probe/1.29"]
    levels = ["info"] * 12 + ["debug"] * 4 + ["warn"] * 2 + ["error"]
    loggers = ["app.http", "app.db", "app.cache", "worker.billing", "worker.email", "auth.session"]
    msgs = ["request completed", "cache miss for key", "retrying upstream call after timeout",
            "user session refreshed", "payment authorized", "slow query detected",
            "connection pool exhausted, waiting for free connection", "scheduled job finished"]
    hosts = ["web-%02d" % i for i in range(1, 13)] + ["db-01", "db-02", "lb-01"]
    progs = [("sshd", "Accepted publickey for deploy from 10.{a}.{b}.{c} port {p} ssh2: ED25519 SHA256:{h}{h}"),
             ("sshd", "Connection closed by authenticating user root 203.0.{a}.{b} port {p} [preauth]"),
             ("CRON", "(root) CMD (/usr/local/bin/backup.sh --incremental --target s3://backups/{h} >/dev/null 2>&1)"),
             ("kernel", "[{p}.{c}] TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies."),
             ("systemd", "Started session {p} of user deploy."),
             ("dockerd", "time=\"2024-10-10T13:55:{b:02d}.{p}Z\" level=info msg=\"ignoring event\" container={h}{h}")]
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt".split()
    written = seq = 0
    t = 1728568536
    buf = []
    with open(out_path, "w", buffering=1 << 20) as f:
        while written < target:
            seq += 1
            if seq % 40 == 0:
                t += 1
            hr, mi, sec = (t // 3600) % 24, (t // 60) % 60, t % 60
            k = rnd.random()
            h = "%08x" % rnd.getrandbits(32)
            if k < 0.45:
                n = rnd.randint(1, 999999)
                line = '%d.%d.%d.%d - - [10/Oct/2024:%02d:%02d:%02d +0000] "%s %s HTTP/1.1" %d %d "%s" "%s" rt=%.3f seq=%d' % (
                    rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254), hr, mi, sec,
                    rnd.choice(methods), rnd.choice(paths).format(n=n, h=h, p=rnd.randint(1, 40)), rnd.choice(status),
                    rnd.randint(0, 250000), rnd.choice(refs).format(n=n), rnd.choice(uas), rnd.random() * 2, seq)
            elif k < 0.80:
                extra = (',"path":"/api/v1/orders/%d","status":%d' % (rnd.randint(1, 10**6), rnd.choice(status))
                         if rnd.random() < 0.5 else "")
                line = ('{"ts":"2024-10-10T%02d:%02d:%02d.%03dZ","level":"%s","logger":"%s","msg":"%s",'
                        '"trace_id":"%032x","user_id":%d,"duration_ms":%.2f,"seq":%d%s}') % (
                    hr, mi, sec, rnd.randint(0, 999), rnd.choice(levels), rnd.choice(loggers), rnd.choice(msgs),
                    rnd.getrandbits(128), rnd.randint(1, 5000000), rnd.random() * 900, seq, extra)
            else:
                prog, msg = rnd.choice(progs)
                msg = msg.format(a=rnd.randint(0, 255), b=rnd.randint(0, 59), c=rnd.randint(1, 254),
                                 p=rnd.randint(1024, 65535), h=h)
                line = "Oct 10 %02d:%02d:%02d %s %s[%d]: %s seq=%d" % (hr, mi, sec, rnd.choice(hosts), prog,
                                                                    rnd.randint(100, 99999), msg, seq)
            while len(line) < 100:
                line += " " + rnd.choice(filler)
            if len(line) > 400:
                line = line[:380] + " seq=%d" % seq
            buf.append(line)
            written += len(line) + 1
            if len(buf) >= 4096:
                f.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            f.write("\n".join(buf) + "\n")
    return seq, written


def ensure_input(size, generator):
    """Returns (path, meta) of the cached input of `size` bytes, generating it once."""
    os.makedirs(CACHE, exist_ok=True)
    use_shared = generator == "shared" or (generator == "auto" and os.path.isfile(SHARED_GEN))
    if generator == "shared" and not os.path.isfile(SHARED_GEN):
        die("--generator shared but %s does not exist" % SHARED_GEN)
    if use_shared:
        with open(SHARED_GEN, "rb") as f:
            gen_id = "shared-" + hashlib.sha256(f.read()).hexdigest()[:12]
    else:
        gen_id = "builtin-v1"
    path = os.path.join(CACHE, "input-%s-%d.log" % (gen_id, size))
    meta_path = path + ".json"
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("bytes") == os.path.getsize(path):
            return path, meta
    tmp = path + ".tmp"
    t = time.monotonic()
    log("generating %s input (%s) with the %s generator; cached for later runs" % (
        fmt_size(size), os.path.basename(path), "shared" if use_shared else "built-in"))
    if use_shared:
        r = subprocess.run([sys.executable, SHARED_GEN, tmp, str(size)], capture_output=True, text=True,
                           timeout=1800)
        if r.returncode != 0:
            die("generator failed: %s" % r.stderr[-2000:])
        m = re.search(r"lines=(\d+) bytes=(\d+)", r.stdout)
        if not m:
            die("cannot parse generator output %r" % r.stdout[-500:])
        lines, nbytes = int(m.group(1)), int(m.group(2))
    else:
        lines, nbytes = _builtin_generate(tmp, size)
    if os.path.getsize(tmp) != nbytes:
        die("generator wrote %d bytes, reported %d" % (os.path.getsize(tmp), nbytes))
    os.replace(tmp, path)
    meta = {"lines": lines, "bytes": nbytes, "target_bytes": size, "generator": gen_id,
            "generator_path": SHARED_GEN if use_shared else "builtin", "seed": 42,
            "generate_s": round(time.monotonic() - t, 1)}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    log("generated %d lines, %d bytes in %.0f s" % (lines, nbytes, meta["generate_s"]))
    return path, meta


def warm_cache(path):
    """Reads the file once so every run starts with it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MiB)
        while f.readinto(buf):
            pass


# --------------------------------------------------------------------------- sink and verify

class SinkCounter:
    """Counts newlines of the sink file incrementally (reads only new bytes)."""

    def __init__(self, path):
        self.path = path
        self.f = None
        self.lines = 0
        self.bytes = 0
        self.buf = bytearray(8 * MiB)

    def poll(self, max_bytes=512 * MiB):
        if self.f is None:
            try:
                self.f = open(self.path, "rb", buffering=0)
            except FileNotFoundError:
                return self.lines
        got = 0
        while got < max_bytes:
            n = self.f.readinto(self.buf)
            if not n:
                break
            self.lines += self.buf.count(b"\n", 0, n)
            self.bytes += n
            got += n
        return self.lines

    def mtime(self):
        try:
            return os.stat(self.path).st_mtime
        except OSError:
            return None

    def close(self):
        if self.f:
            self.f.close()


SEQ_RE = re.compile(rb'seq(?:=|\\?":)(\d+)')


def verify_seqs(path, n_expected):
    """Every seq 1..N exactly once? Regex over raw bytes (no JSON parsing), set arithmetic in
    C; a line with more than one seq token (a truncated one plus the real one) counts its
    last token."""
    t = time.monotonic()
    seen = set()
    in_range = out_of_range = no_seq = lines = 0
    dup_examples = set()
    findall = SEQ_RE.findall

    def add(ms):
        nonlocal in_range, out_of_range
        ints = list(map(int, ms))
        if not ints:
            return
        if min(ints) < 1 or max(ints) > n_expected:
            good = [s for s in ints if 0 < s <= n_expected]
            out_of_range += len(ints) - len(good)
            ints = good
        in_range += len(ints)
        chunk = set(ints)
        cross = chunk & seen
        if len(chunk) < len(ints) or cross:
            if len(dup_examples) < 10:
                dup_examples.update(sorted(cross)[:10])
                if len(chunk) < len(ints):
                    once = set()
                    for s in ints:
                        if s in once:
                            dup_examples.add(s)
                        once.add(s)
        seen.update(chunk)

    rest = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(64 * MiB)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            data = data[:cut]
            nl = data.count(b"\n")
            lines += nl
            ms = findall(data)
            if len(ms) != nl:  # slow path: line by line
                ms = []
                for ln in data.split(b"\n")[:-1]:
                    found = findall(ln)
                    if found:
                        ms.append(found[-1])
                    else:
                        no_seq += 1
            add(ms)
        if rest:  # unterminated last line
            lines += 1
            found = findall(rest)
            if found:
                add(found[-1:])
            else:
                no_seq += 1
    present = len(seen)
    missing = n_expected - present
    first_missing = []
    if missing:
        for s in range(1, n_expected + 1):
            if s not in seen:
                first_missing.append(s)
                if len(first_missing) >= 10:
                    break
    return {"lines": lines, "present": present, "missing": missing, "duplicates": in_range - present,
            "out_of_range": out_of_range, "no_seq": no_seq, "first_missing": first_missing,
            "some_duplicated": sorted(dup_examples)[:10], "ok": missing == 0 and in_range == present
            and out_of_range == 0 and no_seq == 0, "verify_s": round(time.monotonic() - t, 2)}


# --------------------------------------------------------------------------- setup

def build(args):
    if args.bin_dir:
        bin_dir = os.path.abspath(args.bin_dir)
    else:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
        bin_dir = os.path.join(target, "release")
        cmd = ["cargo", "build", "--release", "--bins", "-p", "logferry-agent", "-p", "logferry-aggregator"]
        log("building: " + " ".join(cmd))
        t = time.monotonic()
        try:
            r = subprocess.run(cmd, cwd=REPO, timeout=args.build_timeout)
        except subprocess.TimeoutExpired:
            die("cargo build took longer than %d s" % args.build_timeout)
        if r.returncode != 0:
            die("cargo build failed (exit %d)" % r.returncode)
        log("build done in %.0f s" % (time.monotonic() - t))
    for b in ("logferry-agent", "logferry-aggregator"):
        if not os.access(os.path.join(bin_dir, b), os.X_OK):
            die("%s not found in %s" % (b, bin_dir))
    return bin_dir


def version_of(binary):
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except Exception:  # noqa: BLE001
        return None


def setup_work(args, bin_dir):
    if args.work_dir:
        work = os.path.abspath(args.work_dir)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    else:
        # Under .bench/ so the input can be hard-linked (same file system) and nothing lands in /tmp.
        os.makedirs(CACHE, exist_ok=True)
        work = os.path.join(CACHE, "work-%s-%d" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid()))
        os.makedirs(work)
    for d in ("in", "agg", "agent"):
        os.makedirs(os.path.join(work, d))
    agg_bin = os.path.join(bin_dir, "logferry-aggregator")
    r = subprocess.run([agg_bin, "certs", "--out", os.path.join(work, "certs")], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        die("logferry-aggregator certs failed: %s" % (r.stderr or r.stdout))
    token = secrets.token_hex(24)
    with open(os.path.join(work, "token"), "w") as f:
        f.write(token)
    os.chmod(os.path.join(work, "token"), 0o600)
    ports = {"ingest": free_port(), "agg_admin": free_port(), "agent_admin": free_port()}
    while len(set(ports.values())) < 3:
        ports["agent_admin"] = free_port()
    q = json.dumps  # TOML basic strings accept JSON string escapes for plain paths
    agg_cfg = os.path.join(work, "aggregator.toml")
    with open(agg_cfg, "w") as f:
        f.write("""data_dir = %s

[ingest]
listen = "127.0.0.1:%d"
tokens = [%s]

[ingest.tls]
cert = %s
key = %s

[admin]
listen = "127.0.0.1:%d"

[sinks.out]
type = "file"
path = %s
""" % (q(work + "/agg"), ports["ingest"], q(token), q(work + "/certs/server.pem"),
            q(work + "/certs/server-key.pem"), ports["agg_admin"], q(work + "/events.jsonl")))
    agent_cfg = os.path.join(work, "agent.toml")
    with open(agent_cfg, "w") as f:
        f.write("""data_dir = %s
host = "bench"

[[inputs]]
include = [%s]

[output]
url = "https://127.0.0.1:%d"
token = %s
compression = %s
%s
[output.tls]
ca = %s

[admin]
listen = "127.0.0.1:%d"
""" % (q(work + "/agent"), q(work + "/in/*.log"), ports["ingest"], q(token), q(args.compression),
            "" if args.compression_level is None else "compression_level = %d\n" % args.compression_level,
            q(work + "/certs/ca.pem"), ports["agent_admin"]))
    for b, cfg in ((agg_bin, agg_cfg), (os.path.join(bin_dir, "logferry-agent"), agent_cfg)):
        r = subprocess.run([b, "validate", "--config", cfg], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            die("%s validate failed: %s" % (os.path.basename(b), (r.stderr or r.stdout).strip()))
    return work, ports, agg_cfg, agent_cfg


def start_aggregator(bin_dir, work, cfg, ports, env):
    agg = Proc("aggregator", [os.path.join(bin_dir, "logferry-aggregator"), "--config", cfg], work, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not agg.alive():
            die("aggregator exited with %s before answering /healthz\n%s" % (agg.p.returncode, agg.tail()))
        st, _ = http_get("http://127.0.0.1:%d/healthz" % ports["agg_admin"], timeout=1)
        if st == 200:
            return agg
        time.sleep(0.05)
    die("aggregator /healthz did not answer within 30 s\n" + agg.tail())


def child_env():
    env = dict(os.environ)
    env.setdefault("LOGFERRY_LOG", "info")
    env.pop("LOGFERRY_CONFIG", None)
    for k in list(env):  # config overrides from the caller's environment would skew the run
        if k.startswith(("LOGFERRY_AGENT__", "LOGFERRY_AGGREGATOR__")):
            env.pop(k)
    return env


# --------------------------------------------------------------------------- thread states (optional)

# x86_64 numbers of the syscalls a blocked thread of these programs is usually in.
SYSCALLS = {0: "read", 1: "write", 3: "close", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev",
            23: "select", 35: "nanosleep", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 74: "fsync",
            75: "fdatasync", 76: "truncate", 77: "ftruncate", 82: "rename", 87: "unlink", 202: "futex",
            230: "clock_nanosleep", 277: "sync_file_range", 232: "epoll_wait", 257: "openat", 271: "ppoll", 281: "epoll_pwait",
            285: "fallocate", 316: "renameat2", 441: "epoll_pwait2"}


class ThreadStates(threading.Thread):
    """Samples every thread's state (R = running or runnable; otherwise the syscall it is
    blocked in) of the given processes at ~`hz`: an off-CPU view of where threads wait."""

    def __init__(self, procs, hz=100.0):
        super().__init__(daemon=True)
        self.procs = procs
        self.period = 1.0 / hz
        self.stop_ev = threading.Event()
        self.counts = {}

    def run(self):
        while not self.stop_ev.is_set():
            for p in self.procs:
                try:
                    tids = os.listdir("/proc/%d/task" % p.pid)
                except OSError:
                    continue
                for tid in tids:
                    base = "/proc/%d/task/%s/" % (p.pid, tid)
                    try:
                        with open(base + "stat") as f:
                            st = f.read()
                        comm = st[st.index("(") + 1:st.rindex(")")]
                        state = st.rsplit(")", 1)[1].split()[0]
                        if state == "R":
                            label = "running/runnable"
                        else:
                            with open(base + "syscall") as f:
                                sc = f.read().split()[0]
                            label = "%s:%s" % (state, SYSCALLS.get(int(sc), sc) if sc.lstrip("-").isdigit() else sc)
                    except (OSError, ValueError):
                        continue
                    d = self.counts.setdefault("%s/%s" % (p.name, comm), {})
                    d[label] = d.get(label, 0) + 1
            self.stop_ev.wait(self.period)

    def result(self, min_pct=2.0):
        rows = []
        for key, d in self.counts.items():
            tot = sum(d.values())
            busy = d.get("running/runnable", 0) + sum(v for k, v in d.items() if k.startswith("D:"))
            if tot < 20 or 100.0 * busy / tot < 1.0:
                continue  # idle helper threads
            rows.append((busy / tot, key, {k: round(100.0 * v / tot, 1) for k, v in
                                           sorted(d.items(), key=lambda kv: -kv[1]) if 100.0 * v / tot >= min_pct}))
        return {key: d for _, key, d in sorted(rows, key=lambda r: -r[0])}


# --------------------------------------------------------------------------- perf (optional)

def perf_start(procs, out_dir):
    """Attaches `perf record -e cpu-clock` (flat, no call graphs) to each process."""
    if not shutil.which("perf"):
        log("warning: --perf given but perf is not installed")
        return []
    started = []
    for p in procs:
        data = os.path.join(out_dir, "%s.perf.data" % p.name)
        log_f = open(os.path.join(out_dir, "%s.perf.log" % p.name), "wb")
        pp = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-p", str(p.pid), "-o", data],
                              stdout=log_f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _children.append(pp)
        started.append((p.name, pp, data, log_f))
    return started


def perf_stop(started, out_dir, res):
    """Stops the recorders and writes `perf report` top symbols next to the results."""
    for _, pp, _, _ in started:
        if pp.poll() is None:
            pp.send_signal(signal.SIGINT)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name, pp, data, log_f in started:
        try:
            pp.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pp.kill()
            pp.wait()
        log_f.close()
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol",
                            "--percent-limit", "0.5"], capture_output=True, text=True, timeout=300)
        report = os.path.join(CACHE, "perf-%s-%s.txt" % (stamp, name))
        with open(report, "w") as f:
            f.write(r.stdout)
        top = []
        for ln in r.stdout.splitlines():
            m = re.match(r"\s+(\d+\.\d+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", ln)
            if m:
                top.append([float(m.group(1)), m.group(2), re.split(r"\s{2,}", m.group(3).strip())[0][:100]])
        res.setdefault("perf_top", {})[name] = top[:15]
        res.setdefault("perf_reports", {})[name] = report


# --------------------------------------------------------------------------- runs

def proc_summary(p, first, final, wall, in_bytes):
    cpu = (final.get("cpu_s") or 0.0) - (first.get("cpu_s") or 0.0)
    return {
        "cpu_s": round(cpu, 3),
        "cpu_pct_of_core": round(100 * cpu / wall, 1) if wall else None,
        "cpu_s_per_gib": round(cpu / (in_bytes / GiB), 3) if in_bytes else None,
        "peak_rss_mib": round(final.get("hwm_kb", 0) / 1024, 1),
        "max_sampled_rss_mib": round(p.max_rss_kb / 1024, 1),
        "avg_rss_mib": round(sum(p.rss_samples) / len(p.rss_samples) / 1024, 1) if p.rss_samples else None,
        "threads": final.get("threads"),
        "io_write_bytes": final.get("io", {}).get("write_bytes"),
        "io_read_bytes": final.get("io", {}).get("read_bytes"),
        "io_rchar": final.get("io", {}).get("rchar"),
        "io_wchar": final.get("io", {}).get("wchar"),
        "io_cancelled_write_bytes": final.get("io", {}).get("cancelled_write_bytes"),
    }


def top_threads(pid, n=6):
    th = proc_threads(pid)
    return [[k, round(v, 2)] for k, v in sorted(th.items(), key=lambda kv: -kv[1])[:n]]


def settle_and_sample(agent, agg, sink, ports, expected, res):
    """After completion: wait until the agent's spool is empty (every batch acknowledged and
    deleted, up to 15 s) while still counting the sink, then take the final samples."""
    t = time.monotonic()
    spool = None
    while time.monotonic() - t < 15:
        m = metrics(ports["agent_admin"])
        spool = m.get("logferry_agent_spool_batches")
        sink.poll()
        if spool == 0 and time.monotonic() - t >= 0.5:
            break
        time.sleep(0.1)
    res["agent_spool_batches_at_stop"] = spool
    res["settle_s"] = round(time.monotonic() - t, 2)
    am, gm = metrics(ports["agent_admin"]), metrics(ports["agg_admin"])
    fa, fg = agent.sample(), agg.sample()
    res["agent_threads_cpu_s"] = top_threads(agent.pid)
    res["aggregator_threads_cpu_s"] = top_threads(agg.pid)
    return fa, fg, am, gm


def stop_both(agent, agg, res, stop_timeout):
    ok = True
    for p in (agent, agg):  # agent first: it drains, then the aggregator
        rc, took, killed = p.stop(stop_timeout)
        res["%s_exit" % p.name] = rc
        res["%s_stop_s" % p.name] = round(took, 2)
        if killed:
            res["%s_killed_after_timeout" % p.name] = True
        if rc != 0:
            ok = False
    for p in (agent, agg):
        p.close_logs()
    if not ok:
        for p in (agent, agg):
            if res.get("%s_exit" % p.name) != 0:
                log("%s exited with %s (expected 0)\n%s" % (p.name, res.get("%s_exit" % p.name), p.tail()))
    return ok


def metric_summary(res, am, gm):
    res["agent_metrics"] = {k.replace("logferry_agent_", ""): v for k, v in am.items()
                            if k.startswith("logferry_agent_")}
    res["aggregator_metrics"] = {k.replace("logferry_", ""): v for k, v in gm.items()
                                 if k.startswith("logferry_")}
    shipped = gm.get("logferry_ingest_bytes_total")
    res["shipped_compressed_bytes"] = int(shipped) if shipped is not None else None
    wb = res["agent"].get("io_write_bytes")
    res["write_amplification"] = round(wb / shipped, 2) if wb is not None and shipped else None
    if shipped:
        res["compression_ratio"] = round(res["input_bytes"] / shipped, 1)


def prewritten_input(args):
    """(path, meta) of the pre-written input (--size, default 1 GiB), generated once."""
    return ensure_input(args.size or GiB, args.generator)


def run_prewritten(args, bin_dir, inp):
    """One pre-written run of agent -> aggregator on the input `inp` = (path, meta); returns
    the result dict (printed and logged by finish())."""
    in_path, meta = inp
    n = meta["lines"]
    warm_cache(in_path)
    work, ports, agg_cfg, agent_cfg = setup_work(args, bin_dir)
    dst = os.path.join(work, "in", "input.log")
    try:
        os.link(in_path, dst)
    except OSError:
        shutil.copyfile(in_path, dst)
    env = child_env()
    res = base_result(args, "prewritten", bin_dir, work, ports)
    res.update({"input": os.path.basename(in_path), "input_bytes": meta["bytes"], "lines": n,
                "generator": meta["generator"]})
    if args.wait_quiet:
        res["busy_cores_before"] = wait_quiet(args.wait_quiet)
    agg = start_aggregator(bin_dir, work, agg_cfg, ports, env)
    g0 = agg.sample()
    sink = SinkCounter(os.path.join(work, "events.jsonl"))
    deadline_s = args.deadline or (120 + meta["bytes"] / (2 * MiB))
    sys0, me0 = sys_cpu(), self_cpu()
    log("pre-written: %d lines, %.1f MiB; agent starting (deadline %.0f s, stall limit %.0f s)" % (
        n, meta["bytes"] / MiB, deadline_s, args.stall))
    t0_wall = time.time()
    t0 = time.monotonic()
    agent = Proc("agent", [os.path.join(bin_dir, "logferry-agent"), "--config", agent_cfg], work, env)
    a0 = {"cpu_s": 0.0}
    perf = perf_start([agent, agg], work) if args.perf else []
    ts = None
    if args.thread_states:
        ts = ThreadStates([agent, agg])
        ts.start()
    last_lines, last_change, next_sample, next_report = -1, t0, t0, t0 + 5
    status = "ok"
    # Counting: reading the ~2x-input-sized sink while it grows costs this script a few
    # CPU-seconds per GiB on a 2-core machine, so by default (--count metrics) the loop
    # polls the aggregator's logferry_sink_events_total (counted after the fsync) and reads
    # the file only once the metric reaches N, to confirm the file holds N lines.
    use_metrics = args.count == "metrics"
    spool_max = inbox_max = 0.0
    sink_metric = 'logferry_sink_events_total{sink="out"}'
    t_obs = mt = None
    while True:
        time.sleep(args.poll)
        now = time.monotonic()
        if use_metrics:
            m = metrics(ports["agg_admin"])
            inbox_max = max(inbox_max, m.get("logferry_inbox_bytes", 0))
            if m and "# TYPE logferry_sink_events" not in m:
                log("aggregator exports no %s: counting the sink file instead" % sink_metric)
                use_metrics = False
            lines = int(m.get(sink_metric, 0))
            if lines >= n:
                t_obs = now
                t_obs_wall = time.time()
                cpu_obs = sys_cpu(), self_cpu()
                lines = sink.poll(max_bytes=1 << 62)  # confirm with the file itself
        else:
            lines = sink.poll()
            t_obs, t_obs_wall = now, time.time()
            cpu_obs = sys_cpu(), self_cpu()
        if lines >= n and sink.lines >= n:
            mt = sink.mtime()
            break
        t_obs = None
        now = time.monotonic()
        if lines != last_lines:
            last_lines, last_change = lines, now
        if now >= next_sample:
            agent.sample()
            agg.sample()
            spool_max = max(spool_max, metrics(ports["agent_admin"]).get("logferry_agent_spool_bytes", 0))
            next_sample = now + 0.5
        if now >= next_report:
            log("  %5.1f s: %d/%d lines in the sink (%.0f%%)" % (now - t0, lines, n, 100.0 * lines / n))
            next_report = now + 5
        if not agent.alive() or not agg.alive():
            status = "crashed"
            break
        if now - last_change > args.stall:
            status = "stalled"
            break
        if now - t0 > deadline_s:
            status = "deadline"
            break
    if status == "ok":
        # End = the sink's last modification (its last append), never later than the poll
        # that saw N lines.
        elapsed_obs = t_obs - t0
        elapsed = elapsed_obs
        if mt is not None and mt <= t_obs_wall:
            elapsed = max(0.001, mt - t0_wall)
        res["elapsed_s"] = round(elapsed, 3)
        res["elapsed_polled_s"] = round(elapsed_obs, 3)
        res["mib_s"] = round(meta["bytes"] / MiB / elapsed, 1)
        res["lines_s"] = round(n / elapsed)
    else:
        res["elapsed_s"] = round(time.monotonic() - t0, 3)
        res["lines_in_sink_at_failure"] = sink.poll(max_bytes=1 << 62)
    sys1, me1 = cpu_obs if status == "ok" else (sys_cpu(), self_cpu())
    res["status"] = status
    res["agent_max_spool_mib"] = round(spool_max / MiB, 1)  # sampled every 0.5 s
    if use_metrics:  # the aggregator's inbox (batches accepted, not yet in the sink), if it has one
        res["aggregator_max_inbox_mib"] = round(inbox_max / MiB, 1)
    if ts:
        ts.stop_ev.set()
        ts.join()
        res["thread_states_pct"] = ts.result()
    if perf:
        res["perf"] = True  # perf's own overhead slows the run: do not compare these figures
        perf_stop(perf, work, res)
    if agent.alive() and agg.alive():
        fa, fg, am, gm = settle_and_sample(agent, agg, sink, ports, n, res)
    else:
        fa, fg, am, gm = agent.last, agg.last, {}, {}
    wall = res["elapsed_s"]
    res["agent"] = proc_summary(agent, a0, fa, wall, meta["bytes"])
    res["aggregator"] = proc_summary(agg, g0, fg, wall, meta["bytes"])
    res["harness_cpu_s"] = round(me1 - me0, 2)
    busy = (sys1[0] - sys0[0]) / CLK
    res["machine_busy_cores"] = round(busy / wall, 2) if wall else None
    res["other_processes_cores"] = round(max(0.0, busy - res["agent"]["cpu_s"] - res["aggregator"]["cpu_s"]
                                             - res["harness_cpu_s"]) / wall, 2) if wall else None
    metric_summary(res, am, gm)
    res["loadavg_end"] = loadavg()
    clean = stop_both(agent, agg, res, args.stop_timeout)
    sink.poll()
    res["sink_lines"] = sink.lines
    res["sink_bytes"] = sink.bytes
    sink.close()
    if status != "ok":
        log("run %s: %d of %d lines in the sink\n%s" % (status, sink.lines, n, "\n".join(
            p.tail() for p in (agent, agg) if res.get("%s_exit" % p.name) == 0)))
    if args.verify:
        log("verifying sequence numbers 1..%d in the sink" % n)
        res["verify"] = verify_seqs(os.path.join(work, "events.jsonl"), n)
    return finish(args, res, work, clean and status == "ok" and res.get("verify", {"ok": True})["ok"]
                  and res["sink_lines"] == n)


def steady_input(args):
    """(path, meta, total, src) for steady mode: the cached input that holds rate x seconds
    lines and its first `total` lines (seq 1..total, in order), which the writer appends."""
    total = args.rate * args.seconds
    size = args.size
    if not size:
        size = 256 * MiB
        while size / AVG_LINE < total * 1.1:
            size *= 2
        # Prefer an input already cached (same generator) that holds enough lines.
        gen_prefix = ("input-shared-" if (args.generator != "builtin" and os.path.isfile(SHARED_GEN))
                      else "input-builtin-v1-")
        cached = []
        for name in os.listdir(CACHE) if os.path.isdir(CACHE) else []:
            if name.startswith(gen_prefix) and name.endswith(".log.json"):
                try:
                    with open(os.path.join(CACHE, name)) as f:
                        m = json.load(f)
                    if m["lines"] >= total:
                        cached.append(m["target_bytes"])
                except (OSError, ValueError, KeyError):
                    pass
        if cached:
            size = min(cached)
    in_path, meta = ensure_input(size, args.generator)
    if meta["lines"] < total:
        die("input %s has %d lines, %d needed: use a larger --size" % (in_path, meta["lines"], total))
    src = []
    with open(in_path, "rb") as f:
        for _ in range(total):
            src.append(f.readline())
    if SEQ_RE.findall(src[0])[-1] != b"1" or int(SEQ_RE.findall(src[-1])[-1]) != total:
        die("input lines do not carry seq 1..N in order")
    return in_path, meta, total, src


def run_steady(args, bin_dir, inp):
    """One steady-rate run: the writer appends rate lines/s round-robin over --files files for
    --seconds; returns the result dict."""
    in_path, meta, total, src = inp
    work, ports, agg_cfg, agent_cfg = setup_work(args, bin_dir)
    fds = [os.open(os.path.join(work, "in", "app-%03d.log" % i), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
           for i in range(args.files)]
    env = child_env()
    res = base_result(args, "steady", bin_dir, work, ports)
    res.update({"input": os.path.basename(in_path), "lines": total, "generator": meta["generator"],
                "rate_lps": args.rate, "files": args.files, "seconds": args.seconds})
    if args.wait_quiet:
        res["busy_cores_before"] = wait_quiet(args.wait_quiet)
    agg = start_aggregator(bin_dir, work, agg_cfg, ports, env)
    g0 = agg.sample()
    sink = SinkCounter(os.path.join(work, "events.jsonl"))
    agent = Proc("agent", [os.path.join(bin_dir, "logferry-agent"), "--config", agent_cfg], work, env)
    # Wait until the agent tracks every (empty) file, then measure it idle for a moment.
    t = time.monotonic()
    while time.monotonic() - t < 30:
        if not agent.alive():
            die("agent exited with %s at start\n%s" % (agent.p.returncode, agent.tail()))
        if metrics(ports["agent_admin"]).get("logferry_agent_files_open") == args.files:
            break
        time.sleep(0.1)
    else:
        log("warning: agent does not report %d open files after 30 s" % args.files)
    res["agent_start_s"] = round(time.monotonic() - t, 2)
    i0 = agent.sample()
    time.sleep(args.idle)
    i1 = agent.sample()
    res["agent_idle_cpu_pct"] = round(100 * (i1["cpu_s"] - i0["cpu_s"]) / (i1["t"] - i0["t"]), 2)
    log("steady: %d lines/s over %d files for %d s (%d lines); agent idle CPU %.2f%%" % (
        args.rate, args.files, args.seconds, total, res["agent_idle_cpu_pct"]))
    a0, g1 = agent.sample(), agg.sample()
    ts = None
    if args.thread_states:
        ts = ThreadStates([agent, agg], hz=50.0)
        ts.start()
    sys0, me0 = sys_cpu(), self_cpu()
    t0 = time.monotonic()
    written, next_sample, next_report, status = 0, t0, t0 + 5, "ok"
    spool_max = 0.0
    nf = args.files
    max_behind = 0
    while written < total:
        now = time.monotonic()
        due = min(total, int((now - t0) * args.rate))
        if due > written:
            max_behind = max(max_behind, due - written)
            per = [[] for _ in range(nf)]
            for i in range(written, due):
                per[i % nf].append(src[i])
            for k in range(nf):
                if per[k]:
                    os.write(fds[k], b"".join(per[k]))
            written = due
        if now >= next_sample:
            agent.sample()
            agg.sample()
            sink.poll()
            spool_max = max(spool_max, metrics(ports["agent_admin"]).get("logferry_agent_spool_bytes", 0))
            next_sample = now + 0.25
            if not agent.alive() or not agg.alive():
                status = "crashed"
                break
        if now >= next_report:
            log("  %4.1f s: written %d, in sink %d" % (now - t0, written, sink.lines))
            next_report = now + 5
        time.sleep(max(0.0, args.tick - (time.monotonic() - now)))
    t_w = time.monotonic()
    for fd in fds:
        os.close(fd)
    if ts:
        ts.stop_ev.set()
        ts.join()
        res["thread_states_pct"] = ts.result()
    aw = agent.sample()
    gw = agg.sample()
    res["agent_max_spool_mib"] = round(spool_max / MiB, 1)  # sampled every 0.25 s
    res["write_s"] = round(t_w - t0, 3)
    res["achieved_rate_lps"] = round(written / (t_w - t0))
    res["writer_max_lines_behind"] = max_behind
    # Drain: until the sink holds every line.
    lag = None
    while status == "ok":
        lines = sink.poll()
        now = time.monotonic()
        if lines >= total:
            lag = now - t_w
            break
        if not agent.alive() or not agg.alive():
            status = "crashed"
            break
        if now - t_w > args.stall:
            status = "drain_timeout"
            break
        time.sleep(args.poll)
    res["status"] = status
    res["drain_lag_s"] = round(lag, 3) if lag is not None else None
    sys1, me1 = sys_cpu(), self_cpu()
    wall_all = time.monotonic() - t0
    if agent.alive() and agg.alive():
        fa, fg, am, gm = settle_and_sample(agent, agg, sink, ports, total, res)
    else:
        fa, fg, am, gm = agent.last, agg.last, {}, {}
    in_bytes = sum(len(s) for s in src)
    res["input_bytes"] = in_bytes
    res["agent"] = proc_summary(agent, a0, fa, wall_all, in_bytes)
    res["agent"]["cpu_pct_during_write"] = round(100 * (aw.get("cpu_s", a0["cpu_s"]) - a0["cpu_s"]) / (t_w - t0), 2)
    res["agent"]["peak_rss_mib"] = round(fa.get("hwm_kb", 0) / 1024, 1)
    res["aggregator"] = proc_summary(agg, g1, fg, wall_all, in_bytes)
    res["aggregator"]["cpu_pct_during_write"] = round(
        100 * (gw.get("cpu_s", g1["cpu_s"]) - g1["cpu_s"]) / (t_w - t0), 2)
    res["harness_cpu_s"] = round(me1 - me0, 2)
    busy = (sys1[0] - sys0[0]) / CLK
    res["machine_busy_cores"] = round(busy / wall_all, 2)
    res["other_processes_cores"] = round(max(0.0, busy - res["agent"]["cpu_s"] - res["aggregator"]["cpu_s"]
                                             - res["harness_cpu_s"]) / wall_all, 2)
    metric_summary(res, am, gm)
    res["loadavg_end"] = loadavg()
    clean = stop_both(agent, agg, res, args.stop_timeout)
    sink.poll()
    res["sink_lines"] = sink.lines
    res["sink_bytes"] = sink.bytes
    sink.close()
    res["verify"] = verify_seqs(os.path.join(work, "events.jsonl"), total)
    if status != "ok":
        log("run %s: %d of %d lines in the sink\n%s" % (status, sink.lines, total, "\n".join(
            p.tail() for p in (agent, agg) if res.get("%s_exit" % p.name) == 0)))
    return finish(args, res, work, clean and status == "ok" and res["verify"]["ok"])


def base_result(args, mode, bin_dir, work, ports):
    return {"bench": "logferry", "mode": mode, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": git_rev(), "agent_version": version_of(os.path.join(bin_dir, "logferry-agent")),
            "compression": args.compression, "compression_level": args.compression_level, "transport": "https (TLS, 127.0.0.1)",
            "cpus": os.cpu_count(), "pinned": bool(args.pin), "loadavg_start": loadavg(), "work_dir": work}


# --------------------------------------------------------------------------- peers (../shared/bench)
#
# A peer is an existing shipper measured the way ../shared/bench/bench.py measures it, in the
# same invocation and on the same input as Logferry: its config template from
# ../shared/bench/conf is rendered into a work dir of ours with bench.py's substitutions (TLS
# mode), it forwards over TLS to the harness's C receiver recv_sink.c (compiled into .bench/)
# with a self-signed certificate made as make-certs.sh makes it, it runs under
# `/usr/bin/time -v`, its CPU comes from /proc/PID/stat, its RSS is sampled from
# /proc/PID/status and its peak is time's maximum RSS, and the receiver counts the lines and
# checks (`--verify N`) that sequence numbers 1..N arrived exactly once.

PEER_STALL_S = 20.0  # bench.py: a pre-written run gives up when the receiver's count is still for 20 s
PEER_START_S = 2.0  # bench.py, steady: time for the shipper to start and open the empty file
PEER_TICK_S = 0.005  # bench.py, steady: the writer's sleep between appends
PEER_DRAIN_S = 60.0  # bench.py, steady: longest wait for the last lines after the last write
PEER_STOP_S = 30.0  # bench.py: SIGTERM, then SIGKILL after 30 s
SYSTEMD = "/run/systemd/system"
POLICY_RC_D = "/usr/sbin/policy-rc.d"


def _has_header(rel):
    return any(os.path.isfile(os.path.join(d, rel)) for d in ["/usr/include"] + glob.glob("/usr/include/*-linux-gnu"))


# What the harness itself needs for any peer: (what, check, Debian package).
HARNESS_NEEDS = [
    ("gcc (compiles recv_sink.c)", lambda: shutil.which("gcc") is not None, "gcc"),
    ("OpenSSL headers (openssl/ssl.h, for recv_sink.c)", lambda: _has_header("openssl/ssl.h"), "libssl-dev"),
    ("openssl (the receiver's certificate)", lambda: shutil.which("openssl") is not None, "openssl"),
    ("/usr/bin/time (the shipper's peak RSS)", lambda: os.access("/usr/bin/time", os.X_OK), "time"),
]


class Peer:
    """A peer shipper of ../shared/bench. A subclass says how to find, configure and start it;
    measuring it is common (run_peer_prewritten / run_peer_steady). To add a peer, add a
    subclass for a template in ../shared/bench/conf and list it in PEERS."""
    name = ""
    template = ""  # config template in ../shared/bench/conf
    conf_name = ""  # the rendered config's name in the work dir
    daemon = ""  # its process name (/proc/PID/comm)
    services = ()  # systemd units a package install may start
    input_files = 1  # files its template reads (@INPUT@): steady mode writes every line to it
    transport = ""

    def needs(self):
        """[(what, check, Debian package)] the peer needs installed."""
        return []

    def command(self, work, conf):
        raise NotImplementedError

    def version(self):
        return None


class Rsyslog(Peer):
    """rsyslogd with ../shared/bench/conf/rsyslog.conf.in: imfile (inotify) -> omfwd over TLS
    (ossl driver, anonymous auth), started with `-n` (foreground), its own config and pid file;
    the port is in the config."""
    name = "rsyslog"
    template = "rsyslog.conf.in"
    conf_name = "rsyslog.conf"
    daemon = "rsyslogd"
    services = ("rsyslog.service", "syslog.socket")
    transport = "imfile (inotify) -> omfwd, RSYSLOG_ForwardFormat over TLS (ossl driver), no compression"

    @staticmethod
    def binary():
        return shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

    def needs(self):
        def ossl():
            return bool(glob.glob("/usr/lib/*/rsyslog/lmnsd_ossl.so") + glob.glob("/usr/lib/rsyslog/lmnsd_ossl.so"))
        return [("rsyslogd", lambda: os.access(self.binary(), os.X_OK), "rsyslog"),
                ("rsyslog's OpenSSL driver (lmnsd_ossl.so)", ossl, "rsyslog-openssl")]

    def command(self, work, conf):
        return [self.binary(), "-n", "-f", conf, "-i", os.path.join(work, "rsyslogd.pid")]

    def version(self):
        try:
            out = subprocess.run([self.binary(), "-v"], capture_output=True, text=True, timeout=10).stdout
            return " ".join(out.split("\n")[0].split(" (")[0].split())
        except Exception:  # noqa: BLE001
            return None


PEERS = {p.name: p for p in (Rsyslog(),)}


def parse_peers(values):
    """--peer values (repeatable, or comma-separated) -> [Peer], in order, without repeats."""
    out = []
    for v in values or []:
        for name in filter(None, (x.strip() for x in v.split(","))):
            if name not in PEERS:
                die("unknown --peer %r (known: %s)" % (name, ", ".join(sorted(PEERS))))
            if PEERS[name] not in out:
                out.append(PEERS[name])
    return out


def require_shared_bench():
    """--peer measures with ../shared/bench; without it, say so and stop (the repo itself
    never needs it)."""
    needed = [SHARED_GEN, os.path.join(SHARED_BENCH, "recv_sink.c"), os.path.join(SHARED_BENCH, "conf")]
    missing = [p for p in needed if not os.path.exists(p)]
    if missing:
        die("--peer needs the side-by-side harness ../shared/bench next to the repo (%s), which is not "
            "there (missing: %s). Run without --peer to measure Logferry alone." % (SHARED_BENCH, ", ".join(missing)))


def daemon_pids(comm):
    """Pids of the processes named `comm`."""
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == comm:
                        out.add(int(d))
            except OSError:
                pass
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def ensure_peer_tools(peers):
    """Checks what the peers and the harness need; as root, installs what is missing
    (`apt-get update`, then `apt-get install -y` the packages), otherwise says what to install."""
    needs = HARNESS_NEEDS + [n for p in peers for n in p.needs()]
    missing = [(what, pkg) for what, ok, pkg in needs if not ok()]
    if not missing:
        return
    pkgs = sorted(set(pkg for _, pkg in missing))
    what = ", ".join(w for w, _ in missing)
    if os.geteuid() != 0:
        die("--peer needs %s; install them (apt-get update && apt-get install -y %s) or run this script as "
            "root, which installs them itself" % (what, " ".join(pkgs)))
    log("--peer needs %s: installing %s" % (what, " ".join(pkgs)))
    apt_install(pkgs, peers)
    still = [w for w, ok, _ in needs if not ok()]
    if still:
        die("still missing after apt-get install: %s" % ", ".join(still))


def apt_install(pkgs, peers):
    """`apt-get update` and `apt-get install -y PKGS`, keeping the packages' services from
    starting (a temporary policy-rc.d that answers 101, unless one is already there), then stops
    any instance of a peer daemon that started during the install all the same: the bench runs
    its own instances (own config, -n, own pid file, own port) and no system one may compete."""
    before = {p.name: daemon_pids(p.daemon) for p in peers}
    made_policy = False
    if not os.path.exists(POLICY_RC_D):
        with open(POLICY_RC_D, "w") as f:
            f.write("#!/bin/sh\n# temporary, written by logferry bench/run.py for its apt-get install\nexit 101\n")
        os.chmod(POLICY_RC_D, 0o755)
        made_policy = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y"] + pkgs):
            log("running: " + " ".join(cmd))
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, timeout=1800)
            if r.returncode != 0:
                die("%s failed (exit %d)" % (" ".join(cmd), r.returncode))
    finally:
        if made_policy:
            os.remove(POLICY_RC_D)
    for p in peers:
        stop_started_daemons(p, before[p.name])


def stop_started_daemons(peer, before):
    """Stops the instances of `peer.daemon` that were not running before the install (its
    systemd units if systemd runs, then SIGTERM/SIGKILL by pid)."""
    new = daemon_pids(peer.daemon) - before
    if not new:
        return
    log("the package install started %s (pid %s): stopping it" % (peer.daemon, ", ".join(map(str, sorted(new)))))
    if os.path.isdir(SYSTEMD) and shutil.which("systemctl") and peer.services:
        subprocess.run(["systemctl", "stop"] + list(peer.services), stdin=subprocess.DEVNULL, timeout=60)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        alive = new & daemon_pids(peer.daemon)
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        t = time.monotonic()
        while time.monotonic() - t < wait and new & daemon_pids(peer.daemon):
            time.sleep(0.1)
    if new & daemon_pids(peer.daemon):
        die("could not stop the system %s started by the install" % peer.daemon)


def file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def peer_tools():
    """Compiles ../shared/bench/recv_sink.c into .bench/ (once per version of the source) and
    makes the receiver's self-signed certificate as make-certs.sh does (once); returns
    {"recv_sink", "crt", "key"}."""
    os.makedirs(CACHE, exist_ok=True)
    src = os.path.join(SHARED_BENCH, "recv_sink.c")
    binary = os.path.join(CACHE, "recv_sink-%s" % file_hash(src))
    if not os.access(binary, os.X_OK):
        cmd = ["gcc", "-O3", "-pthread", "-o", binary + ".tmp", src, "-lssl", "-lcrypto"]
        log("compiling the receiver: " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            die("gcc failed: %s" % r.stderr[-3000:])
        os.replace(binary + ".tmp", binary)
    tls = os.path.join(CACHE, "peer-tls")
    crt, key = os.path.join(tls, "server.crt"), os.path.join(tls, "server.key")
    if not (os.path.isfile(crt) and os.path.isfile(key)):
        os.makedirs(tls, exist_ok=True)
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key, "-out", crt], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            die("openssl req failed: %s" % r.stderr[-2000:])
    return {"recv_sink": binary, "crt": crt, "key": key}


def shared_subs(work, input_file, port, ca):
    """bench.py's substitutions for its templates, TLS mode."""
    return {"@WORK@": work, "@INPUT@": input_file, "@PORT@": str(port), "@CA@": ca,
            "@RSYSLOG_TLS@": 'StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="anon"',
            "@SNG_TLS@": 'transport("tls") tls(peer-verify(optional-untrusted))',
            "@FB_TLS@": "    tls         On\n    tls.verify  Off\n",
            "@VECTOR_TLS@": "tls.enabled = true\ntls.verify_certificate = false\n",
            "@FB_INPUT_EXTRA@": ""}


def render_template(template, dst, subs):
    """Renders ../shared/bench/conf/TEMPLATE into dst as bench.py does (plain replacement)."""
    with open(os.path.join(SHARED_BENCH, "conf", template)) as f:
        s = f.read()
    for k, v in subs.items():
        s = s.replace(k, v)
    left = sorted(set(re.findall(r"@[A-Z_]+@", s)))
    if left:
        die("%s: placeholders this script does not know: %s" % (template, ", ".join(left)))
    with open(dst, "w") as f:
        f.write(s)


class Receiver:
    """../shared/bench/recv_sink on 127.0.0.1:PORT over TLS, as bench.py starts it; it rewrites
    its stats file every 100 ms ({"lines", "bytes", "conns", "first", "last", ...})."""

    def __init__(self, binary, work, port, crt, key, verify_n):
        self.stats_path = os.path.join(work, "recv.json")
        cmd = [binary, "--port", str(port), "--stats", self.stats_path, "--tls", crt, key,
               "--verify", str(verify_n), "--head", os.path.join(work, "recv_head.txt")]
        self._log = open(os.path.join(work, "recv.log"), "wb")
        self.p = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _children.append(self.p)
        self.pid = self.p.pid
        for _ in range(100):
            if self.stats() is not None or self.p.poll() is not None:
                break
            time.sleep(0.05)
        if self.p.poll() is not None:
            die("recv_sink exited with %s at start (see %s)" % (self.p.returncode, self._log.name))

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def cpu(self):
        return proc_cpu(self.pid)

    def stop(self):
        """SIGTERM (it then writes its final stats, with the verification), wait."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._log.close()


class TimedShipper:
    """A peer shipper started as bench.py starts it: `/usr/bin/time -v -o time.txt CMD`, its
    output in shipper.out; `pid` is the shipper itself (time's child), whose /proc is sampled."""

    def __init__(self, cmd, work):
        self.timef = os.path.join(work, "time.txt")
        self.out_path = os.path.join(work, "shipper.out")
        self._out = open(self.out_path, "wb")
        self.p = subprocess.Popen(["/usr/bin/time", "-v", "-o", self.timef] + cmd, stdout=self._out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work)
        _children.append(self.p)
        self.pid = None
        for _ in range(200):
            try:
                with open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)) as f:
                    c = f.read().split()
                if c:
                    self.pid = int(c[0])
                    break
            except OSError:
                pass
            if self.p.poll() is not None:
                break
            time.sleep(0.01)
        if not self.pid:
            die("%s did not start (see %s)" % (cmd[0], self.out_path))
        _timed_pids.append((self.p, self.pid))

    def alive(self):
        return self.p.poll() is None

    def cpu(self):
        return proc_cpu(self.pid)

    def rss_kb(self):
        return proc_status(self.pid).get("VmRSS")

    def stop(self, res):
        """bench.py's stop: SIGTERM, SIGKILL after 30 s; notes an early exit or the kill in res."""
        if self.p.poll() is None:
            t = time.monotonic()
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.p.wait(timeout=PEER_STOP_S)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
                res["killed"] = True
            res["shipper_stop_s"] = round(time.monotonic() - t, 2)
        else:
            res["shipper_exited_early_rc"] = self.p.returncode
        res["shipper_exit"] = self.p.returncode
        self._out.close()

    def time_v(self):
        """/usr/bin/time -v's report as {label: value}."""
        tv = {}
        try:
            with open(self.timef) as f:
                for ln in f:
                    if ":" in ln:
                        k, v = ln.strip().rsplit(":", 1)
                        tv[k.strip()] = v.strip()
        except OSError:
            pass
        return tv

    def tail(self, n=20):
        try:
            with open(self.out_path, "rb") as f:
                return "\n".join(f.read()[-8192:].decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""


def peer_setup(args, peer, tools, mode, in_path, meta):
    """A fresh work dir for one peer run, its rendered config and result skeleton; returns
    (work, input_file, conf, port, res). The input is hard-linked (pre-written) or created
    empty (steady) in work/in/."""
    if args.work_dir:
        work = os.path.abspath(args.work_dir) + "-" + peer.name
        shutil.rmtree(work, ignore_errors=True)
    else:
        work = os.path.join(CACHE, "work-%s-%d-%s" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid(), peer.name))
    os.makedirs(os.path.join(work, "in"))
    if mode == "prewritten":
        input_file = os.path.join(work, "in", "input.log")
        try:
            os.link(in_path, input_file)
        except OSError:
            shutil.copyfile(in_path, input_file)
    else:
        input_file = os.path.join(work, "in", "live.log")
        open(input_file, "w").close()
    port = free_port()
    conf = os.path.join(work, peer.conf_name)
    render_template(peer.template, conf, shared_subs(work, input_file, port, tools["crt"]))
    res = {"bench": "peer", "tool": peer.name, "version": peer.version(), "mode": mode, "case": mode,
           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "transport": "tls", "transport_detail": peer.transport,
           "receiver": "recv_sink", "harness": SHARED_BENCH, "input": os.path.basename(in_path),
           "generator": meta["generator"], "cpus": os.cpu_count(), "loadavg_start": loadavg(), "work_dir": work}
    others = sorted(daemon_pids(peer.daemon))
    if others:
        log("warning: other %s processes are running and compete for the CPU: %s" % (peer.daemon, "; ".join(
            "%d %s" % (pid, cmdline(pid)) for pid in others)))
        res["other_instances"] = others
    if args.wait_quiet:
        res["busy_cores_before"] = wait_quiet(args.wait_quiet)
    return work, input_file, conf, port, res


def run_peer_prewritten(args, peer, inp, tools):
    """One pre-written run of a peer, measured as bench.py's `prewritten` case: the clock runs
    from starting the shipper until the receiver's last byte once it counted N lines; CPU is
    the shipper's utime+stime at that moment."""
    in_path, meta = inp
    n, nbytes = meta["lines"], meta["bytes"]
    warm_cache(in_path)
    work, _, conf, port, res = peer_setup(args, peer, tools, "prewritten", in_path, meta)
    res.update({"expected_lines": n, "lines": n, "input_bytes": nbytes})
    recv = Receiver(tools["recv_sink"], work, port, tools["crt"], tools["key"], n)
    deadline_s = args.deadline or (120 + nbytes / (2 * MiB))
    log("peer %s pre-written: %d lines, %.1f MiB; starting it" % (peer.name, n, nbytes / MiB))
    sys0, me0 = sys_cpu(), self_cpu()
    t0 = time.time()
    sh = TimedShipper(peer.command(work, conf), work)
    rss_samples = []
    last_lines, last_change, next_report = -1, t0, t0 + 5
    status = "ok"
    while True:
        time.sleep(0.05)
        st = recv.stats() or {}
        rss = sh.rss_kb()
        if rss:
            rss_samples.append(rss)
        lines = st.get("lines", 0)
        now = time.time()
        if lines != last_lines:
            last_lines, last_change = lines, now
        if lines >= n:
            cpu_done = sh.cpu()
            recv_cpu_done = recv.cpu()
            t1 = st["last"]
            break
        if not sh.alive() or now - last_change > PEER_STALL_S or now - t0 > deadline_s:
            cpu_done = sh.cpu()
            recv_cpu_done = recv.cpu()
            t1 = st.get("last") or now
            res["stalled"] = True
            status = "exited" if not sh.alive() else ("stalled" if now - last_change > PEER_STALL_S else "deadline")
            break
        if now >= next_report:
            log("  %5.1f s: %d/%d lines at the receiver (%.0f%%)" % (now - t0, lines, n, 100.0 * lines / n))
            next_report = now + 5
    sys1, me1, wall = sys_cpu(), self_cpu(), time.time() - t0
    elapsed = t1 - t0
    res.update({"status": status, "elapsed_s": round(elapsed, 3), "mib_s": round(nbytes / elapsed / MiB, 1),
                "lines_s": round(lines / elapsed), "cpu_s_to_done": cpu_done,
                "cpu_s_per_gib": round(cpu_done / (nbytes / GiB), 2) if cpu_done else None,
                "receiver_cpu_s_to_done": recv_cpu_done,
                "receiver_cpu_s_per_gib": round(recv_cpu_done / (nbytes / GiB), 2) if recv_cpu_done else None})
    noise(res, sys0, sys1, me1 - me0, wall, (cpu_done or 0) + (recv_cpu_done or 0))
    return peer_finish(args, peer, res, sh, recv, rss_samples, work, n)


def run_peer_steady(args, peer, inp, tools):
    """One steady run of a peer, measured as bench.py's `steady` case: 2 s after starting it,
    the writer appends the same rate x seconds lines as Logferry's run, all to the one file
    the template reads (5 ms ticks); CPU % over the writing, RSS sampled every 0.25 s, then
    up to 60 s for the receiver to count every line. The receiver also verifies seq 1..N
    (bench.py does not in this case)."""
    in_path, meta, total, src = inp
    work, input_file, conf, port, res = peer_setup(args, peer, tools, "steady", in_path, meta)
    rate = args.rate
    res.update({"expected_lines": total, "lines": total, "rate_lps": rate, "seconds": args.seconds,
                "files": peer.input_files, "input_bytes": sum(len(s) for s in src)})
    recv = Receiver(tools["recv_sink"], work, port, tools["crt"], tools["key"], total)
    sh = TimedShipper(peer.command(work, conf), work)
    time.sleep(PEER_START_S)
    log("peer %s steady: %d lines/s into %d file for %d s (%d lines)" % (
        peer.name, rate, peer.input_files, args.seconds, total))
    sys0, me0 = sys_cpu(), self_cpu()
    cpu_a, rcpu_a, w_a = sh.cpu(), recv.cpu(), time.time()
    status = "ok" if cpu_a is not None else "exited"
    rss_samples = []
    written, next_sample, next_report = 0, w_a, w_a + 5
    with open(input_file, "ab", buffering=0) as out_f:
        while written < total and status == "ok":
            now = time.time()
            due = min(total, int((now - w_a) * rate))
            if due > written:
                out_f.write(b"".join(src[written:due]))
                written = due
            if now >= next_sample:
                rss = sh.rss_kb()
                if rss:
                    rss_samples.append(rss)
                next_sample = now + 0.25
                if not sh.alive():
                    status = "exited"
            if now >= next_report:
                log("  %4.1f s: written %d, at the receiver %d" % (now - w_a, written, (recv.stats() or {}).get(
                    "lines", 0)))
                next_report = now + 5
            time.sleep(PEER_TICK_S)
    cpu_b, rcpu_b, w_b = sh.cpu(), recv.cpu(), time.time()
    sys1, me1 = sys_cpu(), self_cpu()
    lag = None
    while status == "ok" and time.time() < w_b + PEER_DRAIN_S:
        st = recv.stats() or {}
        if st.get("lines", 0) >= total:
            lag = round(st["last"] - w_b, 3)
            break
        time.sleep(0.05)
    if status == "ok" and lag is None:
        status = "drain_timeout"
    cpu_c = sh.cpu()
    known = cpu_a is not None and cpu_b is not None  # None: the shipper had exited
    res.update({"status": status, "append_wall_s": round(w_b - w_a, 2),
                "achieved_rate_lps": round(written / (w_b - w_a)),
                "cpu_pct_during_append": round(100 * (cpu_b - cpu_a) / (w_b - w_a), 1) if known else None,
                "cpu_s_append_plus_drain": round(cpu_c - cpu_a, 2) if known and cpu_c is not None else None,
                "drain_lag_after_last_write_s": lag,
                "rss_avg_mib": round(sum(rss_samples) / len(rss_samples) / 1024, 1) if rss_samples else None,
                "receiver_cpu_pct_during_append": round(100 * (rcpu_b - rcpu_a) / (w_b - w_a), 1)})
    noise(res, sys0, sys1, me1 - me0, w_b - w_a, (cpu_b - cpu_a if known else 0) + rcpu_b - rcpu_a)
    return peer_finish(args, peer, res, sh, recv, rss_samples, work, total)


def noise(res, sys0, sys1, harness_s, wall, measured_s):
    """Machine busy cores over `wall`, and the cores used by everything but the measured
    processes and this script (other_processes_cores: well above 0 means disturbed figures)."""
    busy = (sys1[0] - sys0[0]) / CLK
    res["harness_cpu_s"] = round(harness_s, 2)
    res["machine_busy_cores"] = round(busy / wall, 2) if wall > 0 else None
    res["other_processes_cores"] = round(max(0.0, busy - measured_s - harness_s) / wall, 2) if wall > 0 else None


def peer_finish(args, peer, res, sh, recv, rss_samples, work, expected):
    """bench.py's end of a run: stop the shipper, then the receiver (final stats with the
    verification), peak RSS and CPU from /usr/bin/time; prints, records and returns the result."""
    time.sleep(0.2)
    res["receiver_cpu_s"] = recv.cpu()
    sh.stop(res)
    recv.stop()
    st = recv.stats() or {}
    tv = sh.time_v()
    res.update({"delivered_lines": st.get("lines"), "received_bytes": st.get("bytes"), "conns": st.get("conns"),
                "all_delivered": st.get("lines") == expected,
                "time_user_s": float(tv.get("User time (seconds)", "nan")),
                "time_sys_s": float(tv.get("System time (seconds)", "nan")),
                "peak_rss_mib": round(int(tv.get("Maximum resident set size (kbytes)", "0")) / 1024, 1),
                "sampled_max_rss_mib": round(max(rss_samples) / 1024, 1) if rss_samples else None})
    for k in ("verify_present", "verify_missing", "verify_duplicates", "verify_out_of_range"):
        if k in st:
            res[k] = st[k]
    res["loadavg_end"] = loadavg()
    res["ok"] = bool(res["status"] == "ok" and res["all_delivered"] and res.get("verify_missing") == 0
                     and res.get("verify_duplicates") == 0 and res.get("verify_out_of_range") == 0
                     and not res.get("killed"))
    if res["status"] != "ok":
        log("peer %s run %s: %s of %d lines at the receiver\n%s" % (
            peer.name, res["status"], res["delivered_lines"], expected, sh.tail()))
    print_peer_table(res)
    if res["ok"] and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log("work dir kept: %s" % work)
    record(args, res)
    return res


# --------------------------------------------------------------------------- output

def verdict(value, bar, higher_is_better):
    if value is None:
        return "n/a"
    ok = value >= bar if higher_is_better else value <= bar
    return "PASS" if ok else "MISS"


def print_table(res):
    a, g = res.get("agent", {}), res.get("aggregator", {})
    # Figures of an incomplete run are not comparable to the bars.
    vd = verdict if res.get("status") == "ok" else (lambda *_: "n/a")
    rows = []
    if res["mode"] == "prewritten":
        b = BARS["prewritten"]
        title = "Logferry end-to-end, pre-written %.1f MiB, %s lines, %s over TLS -> file sink" % (
            res["input_bytes"] / MiB, "{:,}".format(res["lines"]), res["compression"])
        rows += [
            ("throughput", "%s MiB/s" % res.get("mib_s", "-"), ">= %.0f MiB/s" % b["mib_s"],
             vd(res.get("mib_s"), b["mib_s"], True)),
            ("lines/s", "{:,}".format(res["lines_s"]) if res.get("lines_s") else "-", "", ""),
            ("wall time (agent start -> all in sink)", "%.2f s" % res["elapsed_s"], "", ""),
            ("agent CPU", "%.2f s = %.2f s/GiB (%.0f%% of a core)" % (a["cpu_s"], a["cpu_s_per_gib"],
                                                                   a["cpu_pct_of_core"]),
             "<= %.0f s/GiB" % b["agent_cpu_s_per_gib"], vd(a.get("cpu_s_per_gib"), b["agent_cpu_s_per_gib"], False)),
            ("agent peak RSS (VmHWM)", "%.1f MiB (largest spool seen: %s MiB)" % (
                a["peak_rss_mib"], res.get("agent_max_spool_mib")), "<= %.0f MiB" % b["agent_peak_rss_mib"],
             vd(a.get("peak_rss_mib"), b["agent_peak_rss_mib"], False)),
            ("aggregator CPU", "%.2f s = %.2f s/GiB (%.0f%% of a core)" % (g["cpu_s"], g["cpu_s_per_gib"],
                                                                        g["cpu_pct_of_core"]), "", ""),
            ("aggregator peak RSS (VmHWM)", "%.1f MiB%s" % (g["peak_rss_mib"], (
                " (largest inbox seen: %s MiB)" % res["aggregator_max_inbox_mib"])
                if "aggregator_max_inbox_mib" in res else ""), "", ""),
        ]
    else:
        b = BARS["steady"]
        title = "Logferry steady %s lines/s over %d files for %d s (%s lines), %s over TLS" % (
            "{:,}".format(res["rate_lps"]), res["files"], res["seconds"], "{:,}".format(res["lines"]),
            res["compression"])
        rows += [
            ("achieved write rate", "{:,} lines/s".format(res["achieved_rate_lps"]), "", ""),
            ("agent CPU while writing", "%.2f%% of a core" % a["cpu_pct_during_write"],
             "< %.0f%%" % b["agent_cpu_pct"], vd(a["cpu_pct_during_write"], b["agent_cpu_pct"], False)),
            ("agent CPU incl. drain", "%.2f s (%.2f%% of a core)" % (a["cpu_s"], a["cpu_pct_of_core"]), "", ""),
            ("agent idle CPU (files open, no data)", "%.2f%% of a core" % res["agent_idle_cpu_pct"], "", ""),
            ("agent peak RSS (VmHWM)", "%.1f MiB (avg %.1f; largest spool seen %s MiB)" % (
                a["peak_rss_mib"], a["avg_rss_mib"] or 0, res.get("agent_max_spool_mib")),
             "< %.0f MiB" % b["agent_peak_rss_mib"], vd(a["peak_rss_mib"], b["agent_peak_rss_mib"], False)),
            ("end-to-end lag after last write", "%s s" % res.get("drain_lag_s"), "", ""),
            ("aggregator CPU while writing", "%.2f%% of a core" % g["cpu_pct_during_write"], "", ""),
            ("aggregator peak RSS (VmHWM)", "%.1f MiB" % g["peak_rss_mib"], "", ""),
        ]
    wa = res.get("write_amplification")
    rows.append(("agent spool write amplification",
                 "%s (%s MiB written by agent / %s MiB shipped compressed)" % (
                     wa, round((a.get("io_write_bytes") or 0) / MiB, 1),
                     round((res.get("shipped_compressed_bytes") or 0) / MiB, 1)) if wa is not None else "n/a", "", ""))
    if res.get("compression_ratio"):
        rows.append(("compression ratio (input / shipped)", "%.1fx" % res["compression_ratio"], "", ""))
    v = res.get("verify")
    if v:
        rows.append(("verify seq 1..N exactly once",
                     "%s: %s present, %d missing, %d duplicates, %d out of range, %d without seq" % (
                         "OK" if v["ok"] else "FAILED", "{:,}".format(v["present"]), v["missing"], v["duplicates"],
                         v["out_of_range"], v["no_seq"]), "", "PASS" if v["ok"] else "FAIL"))
    else:
        rows.append(("sink lines", "%s of %s" % ("{:,}".format(res.get("sink_lines", 0)), "{:,}".format(res["lines"])),
                     "", "PASS" if res.get("sink_lines") == res["lines"] else "FAIL"))
    rows.append(("exit codes (SIGTERM)", "agent %s (%.1f s), aggregator %s (%.1f s)" % (
        res.get("agent_exit"), res.get("agent_stop_s", 0), res.get("aggregator_exit"), res.get("aggregator_stop_s", 0)),
        "0 / 0", "PASS" if res.get("agent_exit") == 0 and res.get("aggregator_exit") == 0 else "FAIL"))
    rows.append(("noise: other processes / harness", "%.2f cores / %.2f CPU-s (loadavg %s -> %s)" % (
        res.get("other_processes_cores") or 0, res.get("harness_cpu_s") or 0, res.get("loadavg_start"),
        res.get("loadavg_end")), "", ""))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    print()
    print(title + "  [status: %s]" % res.get("status"))
    print("-" * (w0 + w1 + w2 + 14))
    for r in rows:
        print("%-*s  %-*s  %-*s  %s" % (w0, r[0], w1, r[1], w2, r[2], r[3]))
    for who in ("agent", "aggregator"):
        th = res.get("%s_threads_cpu_s" % who)
        if th:
            print("%s CPU by thread: %s" % (who, ", ".join("%s %.2fs" % (k, v) for k, v in th)))
    for key, d in (res.get("thread_states_pct") or {}).items():
        print("thread states %s: %s" % (key, ", ".join("%s %.0f%%" % kv for kv in d.items())))
    for who, top in (res.get("perf_top") or {}).items():
        print("%s perf top symbols (%% of its samples; full report %s):" % (who, res["perf_reports"][who]))
        for pct, dso, sym in top[:12]:
            print("  %5.1f%%  %-22s %s" % (pct, dso[:22], sym))
    print()


def print_peer_table(res):
    """The table of one peer run (the figures bench.py reports)."""
    if res["mode"] == "prewritten":
        title = "%s (%s), pre-written %.1f MiB, %s lines, over TLS -> recv_sink" % (
            res["tool"], res.get("version"), res["input_bytes"] / MiB, "{:,}".format(res["lines"]))
        rows = [("throughput", "%s MiB/s (%s lines/s)" % (res.get("mib_s"), "{:,}".format(res.get("lines_s") or 0))),
                ("wall time (start -> last line at the receiver)", "%.2f s" % res["elapsed_s"]),
                ("%s CPU" % res["tool"], "%s s = %s s/GiB" % (res.get("cpu_s_to_done"), res.get("cpu_s_per_gib"))),
                ("receiver CPU", "%s s = %s s/GiB" % (res.get("receiver_cpu_s_to_done"),
                                                      res.get("receiver_cpu_s_per_gib")))]
    else:
        title = "%s (%s), steady %s lines/s into %d file for %d s (%s lines), over TLS -> recv_sink" % (
            res["tool"], res.get("version"), "{:,}".format(res["rate_lps"]), res["files"], res["seconds"],
            "{:,}".format(res["lines"]))
        rows = [("achieved write rate", "{:,} lines/s".format(res.get("achieved_rate_lps") or 0)),
                ("%s CPU while writing" % res["tool"], "%s%% of a core" % res.get("cpu_pct_during_append")),
                ("%s CPU incl. drain" % res["tool"], "%s s" % res.get("cpu_s_append_plus_drain")),
                ("%s avg RSS" % res["tool"], "%s MiB" % res.get("rss_avg_mib")),
                ("lag after last write", "%s s" % res.get("drain_lag_after_last_write_s")),
                ("receiver CPU while writing", "%s%% of a core" % res.get("receiver_cpu_pct_during_append"))]
    rows += [("%s peak RSS (/usr/bin/time)" % res["tool"], "%s MiB (sampled max %s)" % (
                 res.get("peak_rss_mib"), res.get("sampled_max_rss_mib"))),
             ("delivered", "%s of %s lines, %s connection(s)" % (
                 "{:,}".format(res.get("delivered_lines") or 0), "{:,}".format(res["expected_lines"]),
                 res.get("conns"))),
             ("verify seq 1..N exactly once", "%s: %s present, %s missing, %s duplicates, %s out of range" % (
                 "OK" if res["ok"] else "FAILED", res.get("verify_present"), res.get("verify_missing"),
                 res.get("verify_duplicates"), res.get("verify_out_of_range"))),
             ("exit code (SIGTERM)", "%s%s" % (res.get("shipper_exit"), " (killed after %d s)" % PEER_STOP_S
                                               if res.get("killed") else " (exited before SIGTERM)"
                                               if "shipper_exited_early_rc" in res else "")),
             ("noise: other processes / harness", "%.2f cores / %.2f CPU-s (loadavg %s -> %s)" % (
                 res.get("other_processes_cores") or 0, res.get("harness_cpu_s") or 0, res.get("loadavg_start"),
                 res.get("loadavg_end")))]
    rows = [(k, re.sub(r"\bNone\b", "-", v)) for k, v in rows]
    w0 = max(len(r[0]) for r in rows)
    print()
    print(title + "  [status: %s]" % res.get("status"))
    print("-" * (w0 + 2 + max(len(r[1]) for r in rows)))
    for r in rows:
        print("%-*s  %s" % (w0, r[0], r[1]))
    print()


def _g(*keys):
    """Accessor for a nested result value (None when absent)."""
    def get(r):
        for k in keys:
            r = r.get(k) if isinstance(r, dict) else None
        return r
    return get


def _ours_delivery(r):
    v = r.get("verify")
    if v:
        return "yes" if v["ok"] else "NO (%d missing, %d dup)" % (v["missing"], v["duplicates"])
    return "%s (not verified)" % ("all" if r.get("sink_lines") == r.get("lines") else "NOT all")


def _peer_delivery(r):
    if r.get("ok"):
        return "yes"
    return "NO (%s/%s, %s missing, %s dup)" % (r.get("delivered_lines"), r.get("expected_lines"),
                                              r.get("verify_missing"), r.get("verify_duplicates"))


# Rows of the side-by-side table: (key, label, Logferry's value, a peer's value, format).
# "Shipper" is the agent for Logferry and the peer itself (rsyslogd) for a peer; the
# receiving side is the aggregator (TLS, decompression, JSON, fsynced file) vs recv_sink.
COMPARE = {
    "prewritten": [
        ("mib_s", "throughput, MiB/s", _g("mib_s"), _g("mib_s"), "{:.1f}"),
        ("lines_s", "lines/s", _g("lines_s"), _g("lines_s"), "{:,.0f}"),
        ("shipper_cpu_s_per_gib", "shipper CPU-s per GiB", _g("agent", "cpu_s_per_gib"), _g("cpu_s_per_gib"),
         "{:.2f}"),
        ("shipper_peak_rss_mib", "shipper peak RSS, MiB", _g("agent", "peak_rss_mib"), _g("peak_rss_mib"), "{:.1f}"),
        ("receiver_cpu_s_per_gib", "receiving side CPU-s per GiB", _g("aggregator", "cpu_s_per_gib"),
         _g("receiver_cpu_s_per_gib"), "{:.2f}"),
        ("other_processes_cores", "noise: other processes, cores", _g("other_processes_cores"),
         _g("other_processes_cores"), "{:.2f}"),
    ],
    "steady": [
        ("files", "input files", _g("files"), _g("files"), "{:,.0f}"),
        ("achieved_rate_lps", "achieved write rate, lines/s", _g("achieved_rate_lps"), _g("achieved_rate_lps"),
         "{:,.0f}"),
        ("shipper_cpu_pct", "shipper CPU while writing, % of a core", _g("agent", "cpu_pct_during_write"),
         _g("cpu_pct_during_append"), "{:.1f}"),
        ("shipper_avg_rss_mib", "shipper avg RSS, MiB", _g("agent", "avg_rss_mib"), _g("rss_avg_mib"), "{:.1f}"),
        ("shipper_peak_rss_mib", "shipper peak RSS, MiB", _g("agent", "peak_rss_mib"), _g("peak_rss_mib"), "{:.1f}"),
        ("lag_s", "lag after the last write, s", _g("drain_lag_s"), _g("drain_lag_after_last_write_s"), "{:.2f}"),
        ("receiver_cpu_pct", "receiving side CPU while writing, %", _g("aggregator", "cpu_pct_during_write"),
         _g("receiver_cpu_pct_during_append"), "{:.1f}"),
        ("other_processes_cores", "noise: other processes, cores", _g("other_processes_cores"),
         _g("other_processes_cores"), "{:.2f}"),
    ],
}


def median_cell(values, fmt):
    """'median (min-max)' of the values that are not None, '-' if none."""
    v = [x for x in values if x is not None]
    if not v:
        return "-", None
    med = statistics.median(v)
    med = round(med, 4) if isinstance(med, float) else med
    if len(v) == 1:
        return fmt.format(v[0]), med
    return "%s (%s-%s)" % (fmt.format(med), fmt.format(min(v)), fmt.format(max(v))), med


def print_comparison(args, mode, runs):
    """Side-by-side table of every tool's runs in this invocation: medians (min-max) over the
    runs; returns the summary dict (printed as the last JSON line by main)."""
    tools = list(runs)
    cells = {t: {} for t in tools}
    summary = {"bench": "comparison", "mode": mode, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "repeat": args.repeat, "order": " -> ".join(tools) + " (per round)", "tools": {}}
    for t in tools:
        rs = runs[t]
        med = {}
        for key, label, ours, peer, fmt in COMPARE[mode]:
            get = ours if t == "logferry" else peer
            cells[t][label], med[key] = median_cell([get(r) for r in rs], fmt)
        deliv = [(_ours_delivery if t == "logferry" else _peer_delivery)(r) for r in rs]
        cells[t]["every line exactly once"] = ("yes" if all(d == "yes" for d in deliv) else ", ".join(deliv)) + (
            " (%d/%d runs)" % (sum(d == "yes" for d in deliv), len(deliv))) if deliv else "-"
        cells[t]["runs complete"] = "%d/%d" % (sum(1 for r in rs if r.get("ok")), len(rs))
        first = rs[0] if rs else {}
        summary["tools"][t] = {"runs": len(rs), "ok": sum(1 for r in rs if r.get("ok")), "median": med,
                               "every_line_exactly_once": bool(deliv) and all(d == "yes" for d in deliv),
                               "version": first.get("agent_version") if t == "logferry" else first.get("version")}
    labels = [c[1] for c in COMPARE[mode]] + ["every line exactly once", "runs complete"]
    heads = ["%s (%s)" % (t, summary["tools"][t]["version"]) if t != "logferry" else t for t in tools]
    w0 = max(len(x) for x in labels)
    ws = [max([len(h)] + [len(cells[t][lb]) for lb in labels]) for t, h in zip(tools, heads)]
    first = runs[tools[0]][0] if runs[tools[0]] else {}
    if mode == "prewritten":
        what = "pre-written %.1f MiB (%s lines)" % (first.get("input_bytes", 0) / MiB,
                                                    "{:,}".format(first.get("lines") or 0))
    else:
        what = "steady %s lines/s for %d s (Logferry over %d files; a peer into its one input file)" % (
            "{:,}".format(args.rate), args.seconds, args.files)
    print()
    print("SIDE BY SIDE, %s, %d round(s), median (min-max)" % (what, args.repeat))
    print("%-*s  %s" % (w0, "", "  ".join("%-*s" % (w, h) for w, h in zip(ws, heads))))
    print("-" * (w0 + sum(w + 2 for w in ws)))
    for lb in labels:
        print("%-*s  %s" % (w0, lb, "  ".join("%-*s" % (w, cells[t][lb]) for w, t in zip(ws, tools))))
    print("logferry: shipper = logferry-agent (%s over HTTPS/TLS, spooled, acknowledged batches), receiving "
          "side = logferry-aggregator (TLS, decompression, JSON, fsynced file sink)" % args.compression)
    for t in tools[1:]:
        print("%s: shipper = the %s process (%s), receiving side = ../shared/bench/recv_sink (TLS, counts and "
              "verifies lines)" % (t, PEERS[t].daemon, PEERS[t].transport))
    print()
    summary["input"] = first.get("input")
    return summary


def record(args, res):
    """Prints the JSON line of a result and appends it to .bench/results.jsonl (and --json-out)."""
    line = json.dumps(res, sort_keys=False)
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "results.jsonl"), "a") as f:
        f.write(line + "\n")
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    print(line, flush=True)


def finish(args, res, work, ok):
    """Prints the table and JSON line of one Logferry run, removes its work dir if it passed
    (unless --keep); returns the result with res["ok"] set."""
    res["ok"] = bool(ok)
    print_table(res)
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log("work dir kept: %s" % work)
    record(args, res)
    return res


def main():
    ap = argparse.ArgumentParser(description="Logferry end-to-end benchmark (agent -> TLS -> aggregator -> file)")
    ap.add_argument("--mode", choices=("prewritten", "steady"), default="prewritten")
    ap.add_argument("--size", type=parse_size, default=None,
                    help="input size, e.g. 256M, 1G (pre-written default 1G; steady: smallest that fits)")
    ap.add_argument("--verify", action="store_true", help="check every seq 1..N arrives exactly once "
                    "(always done in steady mode)")
    ap.add_argument("--bin-dir", help="use the binaries in DIR instead of building release binaries")
    ap.add_argument("--compression", choices=("zstd", "gzip", "none"), default="zstd")
    ap.add_argument("--compression-level", type=int, default=None,
                    help="the agent's output.compression_level (default: the agent's own)")
    ap.add_argument("--generator", choices=("auto", "shared", "builtin"), default="auto",
                    help="auto: ../shared/bench/gen_logs.py if present, else the built-in generator")
    ap.add_argument("--rate", type=int, default=50000, help="steady: lines per second in total")
    ap.add_argument("--files", type=int, default=100, help="steady: number of files written")
    ap.add_argument("--seconds", type=int, default=30, help="steady: how long to write")
    ap.add_argument("--tick", type=float, default=0.02, help="steady: writer tick in seconds")
    ap.add_argument("--idle", type=float, default=5.0, help="steady: seconds to measure the idle agent")
    ap.add_argument("--poll", type=float, default=0.05, help="sink poll interval, seconds")
    ap.add_argument("--count", choices=("metrics", "file"), default="metrics",
                    help="pre-written: poll the aggregator's sink_events metric and confirm with the file "
                    "(default), or count the sink file's newlines at every poll")
    ap.add_argument("--deadline", type=float, default=None, help="pre-written: give up after this many seconds "
                    "(default 120 + 1 s per 2 MiB of input)")
    ap.add_argument("--stall", type=float, default=60.0, help="give up when the sink does not grow for this long")
    ap.add_argument("--stop-timeout", type=float, default=60.0, help="seconds to wait for exit after SIGTERM")
    ap.add_argument("--build-timeout", type=int, default=3600)
    ap.add_argument("--perf", action="store_true", help="pre-written: profile both processes with "
                    "`perf record -e cpu-clock` (flat) and print their top symbols; slows the run")
    ap.add_argument("--thread-states", action="store_true", help="sample every thread's state (running or "
                    "the syscall it waits in) at 100 Hz (50 Hz in steady mode): where threads wait")
    ap.add_argument("--pin", action="store_true", help="pin the agent to CPU 0 and the aggregator and this "
                    "script to CPU 1 (diagnostic: shows each process's speed on a core of its own)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before measuring, wait up to SECONDS until other processes use < 0.3 cores")
    ap.add_argument("--work-dir", help="work directory (default: a new one under .bench/)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (sink, spool, logs)")
    ap.add_argument("--json-out", help="also append the JSON result lines to this file")
    ap.add_argument("--peer", action="append", metavar="NAME[,NAME]",
                    help="also measure this shipper the way ../shared/bench/bench.py does, on the same input "
                    "in the same invocation, and print a side-by-side table (repeatable; known: %s)" % ", ".join(
                        sorted(PEERS)))
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="rounds; each round runs Logferry, then every --peer (alternating); medians are printed")
    args = ap.parse_args()
    if args.rate <= 0 or args.files <= 0 or args.seconds <= 0:
        ap.error("--rate, --files and --seconds must be positive")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    peers = parse_peers(args.peer)
    tools = None
    if peers:
        if args.pin:
            ap.error("--pin is a diagnostic of Logferry alone; not with --peer")
        require_shared_bench()
        ensure_peer_tools(peers)
        tools = peer_tools()
        args.verify = True  # a side-by-side table says whether every line arrived exactly once
    bin_dir = build(args)
    if args.pin:
        if len(os.sched_getaffinity(0)) < 2:
            ap.error("--pin needs 2 CPUs")
        cpus = sorted(os.sched_getaffinity(0))
        PIN.update({"agent": {cpus[0]}, "aggregator": {cpus[1]}})
        os.sched_setaffinity(0, {cpus[1]})
    if args.mode == "prewritten":
        inp, ours, theirs = prewritten_input(args), run_prewritten, run_peer_prewritten
    else:
        inp, ours, theirs = steady_input(args), run_steady, run_peer_steady
    runs = {"logferry": []}
    runs.update((p.name, []) for p in peers)
    for i in range(args.repeat):
        if args.repeat > 1 or peers:
            log("round %d of %d: %s" % (i + 1, args.repeat, " -> ".join(runs)))
        runs["logferry"].append(ours(args, bin_dir, inp))
        for p in peers:
            runs[p.name].append(theirs(args, p, inp, tools))
    all_ok = all(r.get("ok") for rs in runs.values() for r in rs)
    if peers or args.repeat > 1:
        summary = print_comparison(args, args.mode, runs)
        summary["ok"] = all_ok
        record(args, summary)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
