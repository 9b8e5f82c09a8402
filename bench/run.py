#!/usr/bin/env python3
"""End-to-end benchmark of Logferry: logferry-agent tails files and ships batches over
HTTPS/TLS to logferry-aggregator, which writes them to a file sink.

Python 3 standard library only. See bench/README.md for usage and how to read the output.

  python3 bench/run.py                               # pre-written 1 GiB file
  python3 bench/run.py --size 256M --verify          # quick run, check every line once
  python3 bench/run.py --mode steady --rate 50000 --files 100 --seconds 30

Prints a human-readable table, then one JSON summary line (the last line of stdout), and
appends that JSON line to .bench/results.jsonl.
"""
import argparse
import atexit
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, ".bench")
# Optional shared generator, so figures are comparable with the peers measured there.
SHARED_GEN = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "gen_logs.py"))
CLK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
GiB = 1 << 30
AVG_LINE = 205  # bytes per line incl. newline of the generated mix (measured)

BARS = {
    "prewritten": {"mib_s": 150.0, "agent_cpu_s_per_gib": 3.0, "agent_peak_rss_mib": 32.0},
    "steady": {"agent_cpu_pct": 5.0, "agent_peak_rss_mib": 20.0},
}

_children = []  # Popen objects to kill if we exit abnormally
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

[output.tls]
ca = %s

[admin]
listen = "127.0.0.1:%d"
""" % (q(work + "/agent"), q(work + "/in/*.log"), ports["ingest"], q(token), q(args.compression),
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


def run_prewritten(args, bin_dir):
    size = args.size or GiB
    in_path, meta = ensure_input(size, args.generator)
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


def run_steady(args, bin_dir):
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
            "compression": args.compression, "transport": "https (TLS, 127.0.0.1)",
            "cpus": os.cpu_count(), "pinned": bool(args.pin), "loadavg_start": loadavg(), "work_dir": work}


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


def finish(args, res, work, ok):
    res["ok"] = bool(ok)
    print_table(res)
    line = json.dumps(res, sort_keys=False)
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "results.jsonl"), "a") as f:
        f.write(line + "\n")
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log("work dir kept: %s" % work)
    print(line, flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="Logferry end-to-end benchmark (agent -> TLS -> aggregator -> file)")
    ap.add_argument("--mode", choices=("prewritten", "steady"), default="prewritten")
    ap.add_argument("--size", type=parse_size, default=None,
                    help="input size, e.g. 256M, 1G (pre-written default 1G; steady: smallest that fits)")
    ap.add_argument("--verify", action="store_true", help="check every seq 1..N arrives exactly once "
                    "(always done in steady mode)")
    ap.add_argument("--bin-dir", help="use the binaries in DIR instead of building release binaries")
    ap.add_argument("--compression", choices=("zstd", "gzip", "none"), default="zstd")
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
    ap.add_argument("--json-out", help="also append the JSON result line to this file")
    args = ap.parse_args()
    if args.rate <= 0 or args.files <= 0 or args.seconds <= 0:
        ap.error("--rate, --files and --seconds must be positive")
    bin_dir = build(args)
    if args.pin:
        if len(os.sched_getaffinity(0)) < 2:
            ap.error("--pin needs 2 CPUs")
        cpus = sorted(os.sched_getaffinity(0))
        PIN.update({"agent": {cpus[0]}, "aggregator": {cpus[1]}})
        os.sched_setaffinity(0, {cpus[1]})
    if args.mode == "prewritten":
        return run_prewritten(args, bin_dir)
    return run_steady(args, bin_dir)


if __name__ == "__main__":
    sys.exit(main())
