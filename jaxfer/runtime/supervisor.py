"""One line, not a C++ stack, when jax's distributed runtime ends a process of a multi-process run.

jax's coordination service ends a process from C++ (an abort, with its log and a stack trace on stderr)
when another process of the run has died, two processes took the same ``--process-id``, or the service
is gone; no Python handler runs. So a process of a multi-process run works in a child process that
this one watches: the child's stderr passes through, except the runtime's C++ log lines, which are held
back; if the child aborts they become one line naming the runtime's reason and exit status 2, otherwise
they are passed on at the end. Ctrl-C and SIGTERM are forwarded (the child stops itself, see ``cli``),
and the child dies with this process (``PR_SET_PDEATHSIG``), so a kill -9 of either ends both.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys

CHILD = "JAXFER_SUPERVISED"  # set in the child's environment: it runs the command itself
_CPP_LOG = re.compile(rb"^([EFWI]\d{4} \d\d:\d\d:\d\d|\*\*\* |    @ |RPC: |\n)")  # glog, stack, RPC, blank
_UNDECIDED = 16  # a partial line this short that may still become a C++ log line waits for more bytes
_PR_SET_PDEATHSIG = 1


def is_child() -> bool:
    return os.environ.get(CHILD) == "1"


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: a kill -9 of the parent leaves the child running
        pass


def _split(fd: int, write) -> list[bytes]:
    """Pass the child's stderr to ``write`` as it comes (a progress bar's ``\\r`` updates too), holding
    back C++ log lines; returns them."""
    held, buf, passing = [], b"", False
    while chunk := os.read(fd, 65536):
        buf += chunk
        while buf:
            end = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
            if end < 0 and (passing or len(buf) >= _UNDECIDED or buf[:1] not in b"EFWI*R \t"):
                passing = True  # this line is not a C++ log line: pass on what has come of it
                write(buf)
                buf = b""
            elif end < 0:
                break  # wait: the line may still become a C++ log line
            else:
                line, buf = buf[:end + 1], buf[end + 1:]
                (write if passing or not _CPP_LOG.match(line) else held.append)(line)
                passing = False
    if buf:  # the child's last bytes, with no line end
        (write if passing or not _CPP_LOG.match(buf) else held.append)(buf)
    return held


def run(argv: list[str]) -> int:
    """Run ``jaxfer argv`` in a watched child process; returns the exit status this process should have."""
    child = subprocess.Popen([sys.executable, "-m", "jaxfer.cli", *argv], env=os.environ | {CHILD: "1"},
                             stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: child.send_signal(signum))

    def write(data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.flush()

    held = _split(child.stderr.fileno(), write)
    code = child.wait()
    if code == -signal.SIGABRT:
        text = b"".join(held).decode(errors="replace")
        reason = text.split("absl::Status:", 1)[1].strip().splitlines()[0] if "absl::Status:" in text else "no reason"
        print(f"jaxfer: error: jax's distributed runtime ended this process ({reason[:300]}); another process of "
              f"the run may have died, or two were given the same --process-id", file=sys.stderr)
        return 2
    write(b"".join(held))
    return code if code >= 0 else 128 - code
