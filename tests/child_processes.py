"""Child processes for the multi-process tests (crash and resume, multi-worker): started in
their own session so that a test can kill them and everything they started, whatever happens."""
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawn(script, args, env_extra=None):
    """``python script args`` with the checkout on ``PYTHONPATH``, TensorFlow's C++ logs quiet,
    no inherited ``TF_CONFIG``, then ``env_extra``; output (merged) on a pipe."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, script] + list(args), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(procs, timeout):
    """Waits for every process (total ``timeout`` s) and returns their outputs; kills all of
    them (their process groups) whatever happens."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return outputs


def free_ports(n):
    """``n`` TCP ports on 127.0.0.1 that were free a moment ago (for a test's TF_CONFIG)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports
