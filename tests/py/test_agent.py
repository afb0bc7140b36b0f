# SPDX-License-Identifier: GPL-2.0-only
"""memswap-agent (agent/memswap-agent.c): the guest side of contract B.

The agent is run for real: its --stdout mode, and its xenstore path against
a small xenstored speaking libxenstore's wire protocol over a Unix socket
(XENSTORED_PATH), both the libxenstore-linked and the static build. The
hardware counters come from this machine's perf (which has none: every one
must be listed unavailable and have no key) and from a fake PMU preloaded
into the agent (tests/cext/fake_perf.c), which has some; the software
counters from /proc; the application gauges from files.
"""
import errno
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import fixtures
from memswap import perf

REPO = fixtures.REPO
BUILD = os.path.join(REPO, 'build')
AGENT = os.path.join(BUILD, 'memswap-agent')
AGENT_STATIC = AGENT + '-static'
FAKE_PERF = os.path.join(BUILD, 'tests', 'cext', 'fake_perf.so')
UNIT = os.path.join(REPO, 'agent', 'memswap-agent.service')
HW = {'instructions': 'instructions', 'cycles': 'cycles',
      'cache-references': 'llc_references', 'cache-misses': 'llc_misses'}
SW = ('task_clock_ns', 'page_faults', 'context_switches')
DOMID = 7
HOME = '/local/domain/%d' % DOMID
PREFIX = HOME + '/data/memswap'


@pytest.fixture(scope='module', autouse=True)
def built():
    """make is the build graph: bring the agents and the fake PMU up to date."""
    subprocess.run(['make', '-s', '-C', REPO, 'build/memswap-agent', 'build/memswap-agent-static',
                    'build/tests/cext/fake_perf.so'], check=True, capture_output=True)


@pytest.fixture
def app_dir(tmp_path):
    d = tmp_path / 'app'
    d.mkdir()
    return d


def ncpus():
    n = 0
    for part in open('/sys/devices/system/cpu/online').read().strip().split(','):
        a, _, b = part.partition('-')
        n += int(b or a) - int(a) + 1
    return n


def run_once(*args, env=None, binary=AGENT):
    r = subprocess.run([binary, '--stdout', '--once', *map(str, args)], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, **(env or {})))
    assert r.returncode == 0, r.stderr
    return parse_block(r.stdout.split('\n\n')[0]), r.stderr


def parse_block(text):
    """--stdout's lines: prefix/key=value, or prefix/key (removed)."""
    values, removed = {}, set()
    for line in text.strip().splitlines():
        m = re.fullmatch(r'data/memswap/(\S+) \(removed\)', line)
        if m:
            removed.add(m.group(1))
            continue
        m = re.fullmatch(r'data/memswap/([^=\s]+)=(.*)', line)
        assert m, line
        values[m.group(1)] = m.group(2)
    return values, removed


def check_layout(values, removed):
    """Contract B, whatever the machine: an unavailable counter has no key."""
    unav = values['unavailable'].split()
    for key in HW.values():
        assert (key in unav) == (key in removed) == (key not in values), key
        if key in values:
            assert re.fullmatch(r'\d+', values[key])
    for key in SW:
        assert (key in unav) == (key not in values)
    assert re.fullmatch(r'\d+\.\d{9}', values['timestamp'])
    assert abs(float(values['timestamp']) - time.time()) < 30
    assert re.fullmatch(r'[1-9]\d*', values['seq'])
    assert float(values['interval']) > 0
    for key in values:
        if key.startswith('app/'):
            assert re.fullmatch(r'app/[a-z0-9_]{1,32}', key)
            assert re.fullmatch(r'-?\d+(\.\d+)?', values[key])
    return unav


# ---- counters ---------------------------------------------------------------------------

@pytest.mark.parametrize('binary', [AGENT, AGENT_STATIC])
def test_real_perf_and_proc(app_dir, binary):
    """This machine's own perf: a hardware event perf cannot count CPU-wide is
    listed unavailable (never 0); the software counters match /proc."""
    with perf.open_group(events=list(HW)) as g:
        machine_unavailable = {HW[e] for e in g.unavailable}
    stat0 = open('/proc/stat').read()
    faults0 = int(re.search(r'^pgfault (\d+)', open('/proc/vmstat').read(), re.M).group(1))
    (values, removed), err = run_once('--app-dir', app_dir, binary=binary)
    stat1 = open('/proc/stat').read()
    faults1 = int(re.search(r'^pgfault (\d+)', open('/proc/vmstat').read(), re.M).group(1))
    unav = check_layout(values, removed)
    assert set(unav) == machine_unavailable
    for key in machine_unavailable:
        assert key not in values and key in removed
        assert '%s unavailable' % [e for e, k in HW.items() if k == key][0] in err
    assert values['seq'] == '1'

    hz = os.sysconf('SC_CLK_TCK')

    def busy(text):
        v = [int(x) for x in text.splitlines()[0].split()[1:]]
        return (v[0] + v[1] + v[2] + v[5] + v[6]) * (10**9 // hz)

    def ctxt(text):
        return int(re.search(r'^ctxt (\d+)', text, re.M).group(1))

    assert busy(stat0) <= int(values['task_clock_ns']) <= busy(stat1)
    assert ctxt(stat0) <= int(values['context_switches']) <= ctxt(stat1)
    assert faults0 <= int(values['page_faults']) <= faults1


def test_this_machine_has_no_cache_misses():
    """The premise of the test above on this host: cache-misses is not
    supported here, so the agent must have listed it unavailable."""
    with perf.open_group(events=['cache-misses', 'task-clock']) as g:
        if 'cache-misses' not in g.unavailable:
            pytest.skip('this machine counts cache-misses')
    (values, removed), _ = run_once('--app-dir', '/nonexistent')
    assert 'llc_misses' in values['unavailable'].split() and 'llc_misses' in removed


def fake(spec):
    return {'LD_PRELOAD': FAKE_PERF, 'FAKE_PERF': spec}


def test_fake_pmu_counts_scaled_and_summed(app_dir):
    """Three counters available, cache-misses not supported; multiplexed (the
    counters ran half the time): values scaled by 2 and summed over CPUs."""
    spec = 'cycles=1000+100,instructions=5000+500,cache-references=200+20,' \
           'cache-misses=EOPNOTSUPP,scale=2'
    p = subprocess.Popen([AGENT, '--stdout', '--interval', '0.1', '--app-dir', str(app_dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, **fake(spec)))
    try:
        blocks = read_blocks(p, 3)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert p.returncode == 0
    assert 'cache-misses unavailable (Operation not supported)' in err
    n = ncpus()
    for k, (values, removed) in enumerate(blocks):
        assert check_layout(values, removed) == ['llc_misses']
        assert values['seq'] == str(k + 1)
        assert int(values['cycles']) == n * 2 * (1000 + 100 * k)
        assert int(values['instructions']) == n * 2 * (5000 + 500 * k)
        assert int(values['llc_references']) == n * 2 * (200 + 20 * k)
        assert 'llc_misses' in removed and 'llc_misses' not in values


def test_fake_pmu_counter_that_never_ran_is_unavailable(app_dir):
    """A read in which the counters were enabled but never scheduled: not 0."""
    (values, removed), _ = run_once('--app-dir', app_dir,
                                    env=fake('cycles=1000+1,instructions=5+1,scale=0'))
    unav = check_layout(values, removed)
    assert set(unav) == set(HW.values())


def test_fake_pmu_all_missing_still_publishes_software(app_dir):
    (values, removed), err = run_once('--app-dir', app_dir, env=fake('scale=1'))
    assert set(check_layout(values, removed)) == set(HW.values())
    for key in SW:
        assert int(values[key]) > 0


def test_proc_unreadable_lists_software_unavailable(app_dir, tmp_path):
    proc = tmp_path / 'proc'
    proc.mkdir()
    (proc / 'stat').write_text('cpu  1 2 3 4 5 6 7 8 0 0\nctxt 99\n')
    (values, removed), err = run_once('--app-dir', app_dir, '--proc', proc)
    assert 'page_faults' in values['unavailable'].split() and 'page_faults' in removed
    assert values['task_clock_ns'] == str((1 + 2 + 3 + 6 + 7) * 10**9 // os.sysconf('SC_CLK_TCK'))
    assert values['context_switches'] == '99'
    assert 'vmstat' in err


# ---- application gauges ----------------------------------------------------------------

def test_app_gauges(app_dir):
    good = {'latency_ms': '12.5', 'queue': '3', 'neg': '-0.25', 'spaced': '  7.0\n',
            'x' * 32: '1'}
    for name, v in good.items():
        (app_dir / name).write_text(v)
    bad_values = {'nan': 'nan', 'inf': 'inf', 'exp': '1e3', 'empty': '', 'junk': '12abc',
                  'two': '1 2', 'long': '1' * 40, 'dot': '1.', 'comma': '1,5'}
    for name, v in bad_values.items():
        (app_dir / name).write_text(v)
    for name in ('Upper', 'dash-name', 'x' * 33, 'sp ace'):
        (app_dir / name).write_text('1')
    (app_dir / 'link').symlink_to(app_dir / 'queue')           # never followed
    os.mkfifo(app_dir / 'fifo')                                 # never blocks on it
    (app_dir / 'subdir').mkdir()
    t0 = time.monotonic()
    (values, removed), err = run_once('--app-dir', app_dir)
    assert time.monotonic() - t0 < 10
    apps = {k[4:]: v for k, v in values.items() if k.startswith('app/')}
    assert apps == {'latency_ms': '12.5', 'queue': '3', 'neg': '-0.25', 'spaced': '7.0',
                    'x' * 32: '1'}
    for name in list(bad_values) + ['link', 'fifo', 'subdir']:
        assert '%s/%s:' % (app_dir, name) in err, name
    assert 'not a gauge name' in err and 'dash-name' in err


def test_at_most_32_gauges(app_dir):
    for i in range(40):
        (app_dir / ('g%02d' % i)).write_text(str(i))
    (values, removed), err = run_once('--app-dir', app_dir)
    apps = sorted(k for k in values if k.startswith('app/'))
    assert apps == ['app/g%02d' % i for i in range(32)]
    assert 'more than 32 gauges, 8 not published' in err


def read_blocks(p, n, timeout=20):
    """n publishes of a running --stdout agent."""
    blocks, cur, end = [], [], time.monotonic() + timeout
    while len(blocks) < n:
        assert time.monotonic() < end, 'the agent stopped publishing'
        r, _, _ = select.select([p.stdout], [], [], 1)
        if not r:
            continue
        line = p.stdout.readline()
        assert line, 'agent exited: %r' % (p.stderr.read(),)
        if line == '\n':
            blocks.append(parse_block(''.join(cur)))
            cur = []
        else:
            cur.append(line)
    return blocks


def next_block_where(p, pred, most=4):
    """The first of the next few publishes for which pred holds (a publish
    may already be on its way when a test changes something)."""
    for _ in range(most):
        (values, removed), = read_blocks(p, 1)
        if pred(values, removed):
            return values, removed
    raise AssertionError('not within %d publishes: %r %r' % (most, values, removed))


def test_stale_gauge_is_withdrawn_and_comes_back(app_dir):
    interval = 0.3
    (app_dir / 'lat').write_text('5')
    (app_dir / 'other').write_text('1')
    p = subprocess.Popen([AGENT, '--stdout', '--interval', str(interval), '--app-dir',
                          str(app_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        (values, removed), = read_blocks(p, 1)
        assert values['app/lat'] == '5'
        old = time.time() - 4 * interval                      # older than 3 intervals
        os.utime(app_dir / 'lat', (old, old))
        (app_dir / 'other').write_text('1')                   # kept fresh
        values, removed = next_block_where(p, lambda v, r: 'app/lat' not in v)
        assert 'app/lat' in removed and values['app/other'] == '1'
        (values, removed), = read_blocks(p, 1)
        assert 'app/lat' not in values and 'app/lat' not in removed   # said once
        (app_dir / 'lat').write_text('6')
        (app_dir / 'other').write_text('2')
        values, removed = next_block_where(p, lambda v, r: v.get('app/other') == '2')
        assert values['app/lat'] == '6'
        (app_dir / 'other').unlink()
        values, removed = next_block_where(p, lambda v, r: 'app/other' in r)
        assert 'app/other' not in values
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert p.returncode == 0
    assert 'stale' not in err           # an expected withdrawal is not a complaint


def test_problems_are_logged_once(app_dir):
    (app_dir / 'bad').write_text('x')
    p = subprocess.Popen([AGENT, '--stdout', '--interval', '0.1', '--app-dir', str(app_dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_blocks(p, 5)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert err.count('/bad: not a decimal number') == 1


# ---- arguments --------------------------------------------------------------------------

@pytest.mark.parametrize('args', [['--interval', '0'], ['--interval', 'nan'],
                                  ['--interval', '-1'], ['--interval', '5s'],
                                  ['--interval', '1e9'], ['--bogus'], ['extra'],
                                  ['--prefix', '']])
def test_bad_arguments(args):
    r = subprocess.run([AGENT, '--stdout', '--once', *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, (args, r.stderr)
    assert r.stderr and 'usage' in r.stderr or '--interval' in r.stderr or 'prefix' in r.stderr


def test_help():
    r = subprocess.run([AGENT, '--help'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and 'usage: memswap-agent' in r.stdout


def test_no_xenstore_is_a_clear_error(tmp_path):
    r = subprocess.run([AGENT, '--once'], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, XENSTORED_PATH=str(tmp_path / 'nothing')))
    assert r.returncode == 1
    assert 'xs_open' in r.stderr


# ---- xenstore -----------------------------------------------------------------------------

XS_DIRECTORY, XS_READ, XS_TRANSACTION_START, XS_TRANSACTION_END = 1, 2, 6, 7
XS_WRITE, XS_MKDIR, XS_RM, XS_ERROR = 11, 12, 13, 16


class FakeXenstored:
    """xenstored's wire protocol (xs_wire.h) for one guest's connection:
    relative paths under /local/domain/<domid>, nodes created with their
    parents, transactions on a private copy committed only if nothing else
    changed meanwhile (else EAGAIN). Records what the client did."""

    def __init__(self, path, domid=DOMID):
        self.path, self.domid = str(path), domid
        self.nodes = {'/': ''}
        self.lock = threading.Lock()
        self.generation = 0
        self.tx = {}
        self.next_tx = 1
        self.commits = 0
        self.aborts = 0
        self.writes_outside_tx = 0
        self.fail_commits = 0           # answer the next N commits with EAGAIN
        self.published = threading.Condition(self.lock)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.threads = []
        self.closing = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def close(self):
        self.closing = True
        self.srv.close()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _abs(self, p):
        return p if p.startswith('/') else '/local/domain/%d/%s' % (self.domid, p)

    def _recv(self, c, n):
        b = b''
        while len(b) < n:
            chunk = c.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def _serve(self, c):
        try:
            while True:
                typ, rid, txid, n = struct.unpack('<IIII', self._recv(c, 16))
                body = self._recv(c, n) if n else b''
                with self.lock:
                    rtype, reply = self._handle(typ, txid, body)
                c.sendall(struct.pack('<IIII', rtype, rid, txid, len(reply)) + reply)
        except (EOFError, OSError):
            c.close()

    def _err(self, name):
        return XS_ERROR, name.encode() + b'\0'

    def _handle(self, typ, txid, body):
        if txid and txid not in self.tx and typ != XS_TRANSACTION_START:
            return self._err('ENOENT')
        nodes = self.tx[txid][0] if txid else self.nodes
        if typ == XS_TRANSACTION_START:
            tid = self.next_tx
            self.next_tx += 1
            self.tx[tid] = (dict(self.nodes), self.generation)
            return typ, b'%d\0' % tid
        if typ == XS_TRANSACTION_END:
            copy, gen = self.tx.pop(txid)
            if body.rstrip(b'\0') != b'T':
                self.aborts += 1
                return typ, b'OK\0'
            if self.fail_commits or gen != self.generation:
                self.fail_commits = max(0, self.fail_commits - 1)
                return self._err('EAGAIN')
            self.nodes = copy
            self.generation += 1
            self.commits += 1
            self.published.notify_all()
            return typ, b'OK\0'
        path, _, value = body.partition(b'\0')
        path = self._abs(path.decode())
        if typ == XS_READ:
            if path not in nodes:
                return self._err('ENOENT')
            return typ, nodes[path].encode()
        if typ == XS_DIRECTORY:
            if path not in nodes:
                return self._err('ENOENT')
            pre = path.rstrip('/') + '/'
            kids = sorted({k[len(pre):].split('/')[0] for k in nodes
                           if k.startswith(pre) and k != pre})
            return typ, b''.join(k.encode() + b'\0' for k in kids)
        if typ in (XS_WRITE, XS_MKDIR):
            parts = path.strip('/').split('/')
            for i in range(1, len(parts)):
                nodes.setdefault('/' + '/'.join(parts[:i]), '')
            nodes[path] = value.decode() if typ == XS_WRITE else nodes.get(path, '')
            if not txid:
                self.writes_outside_tx += 1
                self.generation += 1
            return typ, b'OK\0'
        if typ == XS_RM:
            for k in [k for k in nodes if k == path or k.startswith(path + '/')]:
                del nodes[k]
            if not txid:
                self.writes_outside_tx += 1
                self.generation += 1
            return typ, b'OK\0'
        return self._err('ENOSYS')

    def data(self):
        """The agent's keys and the number of commits that made them."""
        with self.lock:
            pre = PREFIX + '/'
            return ({k[len(pre):]: v for k, v in self.nodes.items() if k.startswith(pre)},
                    self.commits)

    def wait_commits(self, n, timeout=20):
        with self.lock:
            assert self.published.wait_for(lambda: self.commits >= n, timeout), \
                'only %d publishes' % self.commits


@pytest.fixture
def xenstored(tmp_path):
    x = FakeXenstored(tmp_path / 'xs.sock')
    yield x
    x.close()


def start_agent(xs, app_dir, *args, binary=AGENT, env=None):
    e = dict(os.environ, XENSTORED_PATH=xs.path, **(env or {}))
    return subprocess.Popen([binary, '--interval', '0.2', '--app-dir', str(app_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


def stop_agent(p):
    p.terminate()
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    return err


@pytest.mark.parametrize('binary', [AGENT, AGENT_STATIC])
def test_xenstore_publish(xenstored, app_dir, binary):
    """One transaction per publish under the guest's home, nothing written
    outside one; seq continues a previous run's; keys of counters that are
    unavailable now and gauges nobody supplies any more are removed."""
    xs = xenstored
    with xs.lock:
        for k, v in (('seq', '41'), ('llc_misses', '0'), ('app/gone', '5'), ('app/lat', '1')):
            xs.nodes[PREFIX + '/' + k] = v
    (app_dir / 'lat').write_text('2.5')
    p = start_agent(xs, app_dir, binary=binary)
    try:
        xs.wait_commits(2)
        (app_dir / 'lat').write_text('2.5')         # fresh (stale after 3 intervals)
        xs.wait_commits(4)
        d, commits = xs.data()
        assert xs.writes_outside_tx == 0
        seq = int(d['seq'])
        assert seq >= 42 + 3 and seq - 41 == commits         # one commit per publish
        assert 'llc_misses' not in d and 'app/gone' not in d
        assert d['app/lat'] == '2.5'
        unav = d['unavailable'].split()
        for key in list(HW.values()) + list(SW):
            assert (key in d) != (key in unav), key
        assert d['interval'] == '0.2'
        (app_dir / 'lat').unlink()
        xs.wait_commits(commits + 2)
        d, _ = xs.data()
        assert not any(k.startswith('app') for k in d)
    finally:
        err = stop_agent(p)
    assert 'publish' not in err


def test_xenstore_fake_pmu_and_conflicts(xenstored, app_dir):
    """Hardware counters reach xenstore; a transaction that conflicts with
    another writer is retried, and the publish still happens once."""
    xs = xenstored
    p = start_agent(xs, app_dir, env=fake('cycles=10+1,instructions=20+2,cache-references=5+0,'
                                          'cache-misses=ENOENT,scale=1'))
    try:
        xs.wait_commits(1)
        with xs.lock:
            xs.fail_commits = 3
        xs.wait_commits(3)
        d, commits = xs.data()
        assert d['unavailable'] == 'llc_misses'
        assert int(d['cycles']) >= ncpus() * 10 and int(d['instructions']) >= ncpus() * 20
        assert int(d['seq']) == commits
    finally:
        stop_agent(p)


def test_systemd_notify(xenstored, app_dir, tmp_path):
    """Type=notify: READY=1 after the first publish, then a watchdog ping per
    publish, STOPPING=1 at the end."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / 'notify'))
    sock.settimeout(20)
    p = start_agent(xenstored, app_dir, env={'NOTIFY_SOCKET': str(tmp_path / 'notify')})
    try:
        first = sock.recv(4096).decode()
        assert first.startswith('READY=1') and xenstored.commits >= 1
        assert sock.recv(4096).decode() == 'WATCHDOG=1'
    finally:
        stop_agent(p)
    msgs = []
    sock.settimeout(1)
    try:
        while True:
            msgs.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert msgs and msgs[-1] == 'STOPPING=1'


def test_not_ready_while_xenstore_fails(tmp_path, app_dir):
    """No READY=1 before a publish succeeded (xenstored refusing every commit)."""
    xs = FakeXenstored(tmp_path / 'xs.sock')
    xs.fail_commits = 10**6
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / 'notify'))
    sock.settimeout(1.5)
    p = start_agent(xs, app_dir, env={'NOTIFY_SOCKET': str(tmp_path / 'notify')})
    try:
        with pytest.raises(socket.timeout):
            sock.recv(4096)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
        xs.close()
    assert err.count('publish: ' + os.strerror(errno.EAGAIN)) == 1      # said once


# ---- the unit ---------------------------------------------------------------------------

def unit_directives():
    out = {}
    for line in open(UNIT):
        line = line.strip()
        if not line or line.startswith(('#', ';', '[')):
            continue
        k, _, v = line.partition('=')
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_directives():
    d = unit_directives()
    assert d['Type'] == ['notify']
    assert d['ExecStart'][0].split()[0] == '/usr/sbin/memswap-agent'
    assert d['ConditionVirtualization'] == ['xen']
    assert 'perf_event_open' in d['SystemCallFilter'][0].split()
    assert d['CapabilityBoundingSet'] == ['CAP_PERFMON']
    assert d.get('PrivateDevices', ['no']) != ['yes']
    assert '/dev/xen/xenbus rw' in d['DeviceAllow']
    assert d['RuntimeDirectory'] == ['memswap-agent memswap-agent/app']
    assert re.fullmatch(r'\d+s?', d['WatchdogSec'][0])
    assert d.get('ProcSubset', ['all']) == ['all']        # /proc/stat and /proc/vmstat


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze not installed')
def test_unit_verifies(tmp_path):
    text = open(UNIT).read().replace('/usr/sbin/memswap-agent', AGENT)
    (tmp_path / 'memswap-agent.service').write_text(text)
    r = subprocess.run(['systemd-analyze', 'verify', str(tmp_path / 'memswap-agent.service')],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SYSTEMD_LOG_COLOR='0',
                                MANPATH=fixtures.man_pages(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert 'memswap-agent.service' not in r.stderr, r.stderr
