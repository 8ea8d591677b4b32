"""Runs a command on a pseudo-terminal of its own (as its controlling terminal) and answers its
password prompts, or presses Ctrl-C at the first one. Checks what a person at that terminal would see:
that echo is off while the password is typed, that the password never appears, and that echo is on
again when the command has ended however it ended.

usage: prompt_pty.py (type PASSWORD | interrupt) COMMAND...
Prints the command's exit status (negative: the signal that ended it) on the last line.
"""
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time

mode = sys.argv[1]
if mode == "type":
    password, command = sys.argv[2].encode(), sys.argv[3:]
else:
    password, command = None, sys.argv[2:]

master, slave = os.openpty()


def controlling_terminal():
    # A person's terminal delivers Ctrl-C: undo an ignored SIGINT inherited from a background job.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


env = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}
child = subprocess.Popen(
    command,
    stdin=slave,
    stdout=slave,
    stderr=slave,
    preexec_fn=controlling_terminal,
    env=env,
)
seen = b""


def read_until(text, timeout=30):
    global seen
    end = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([master], [], [], max(0, end - time.monotonic()))
        if not ready:
            sys.exit(f"timed out waiting for {text!r}; the terminal shows {seen!r}")
        seen += os.read(master, 4096)


def echo_on():
    return bool(termios.tcgetattr(slave)[3] & termios.ECHO)


def wait_for_echo_off():
    end = time.monotonic() + 30
    while echo_on():
        if time.monotonic() > end:
            sys.exit("echo stayed on at the password prompt")
        time.sleep(0.01)


read_until(b"Enter password for private key")
wait_for_echo_off()
if password is None:
    os.write(master, b"\x03")
else:
    os.write(master, password + b"\n")
    read_until(b"again")
    wait_for_echo_off()
    os.write(master, password + b"\n")
status = child.wait(timeout=30)
# Whatever is left on the terminal.
while select.select([master], [], [], 0.2)[0]:
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data
if password is not None and password in seen:
    sys.exit(f"the password was shown on the terminal: {seen!r}")
if not echo_on():
    sys.exit(f"echo is still off after the command ended; the terminal shows {seen!r}")
sys.stdout.write(seen.decode("utf-8", "replace"))
print()
print(status)
